"""Study v2: the subset hypothesis judged at real minima. The runs of each design (``studies.DESIGNS``, fixed before
the runs), trained or loaded (stored runs are never retrained), and what an analysis page starts with.

Every phase that stands for a minimum is trained with a cosine-annealed learning rate and checked by budget
doubling (``verdicts.converged``): the conventional arm on B and 2B epochs, each subset phase on S and 2S steps.
Where a pair fails, the ladder goes on (4B, 8B, …, up to ``max_doublings``; ``long_doublings`` for a subset phase
that question 1 judges): the rule decides the budget, never the other way round. Per width and seed, every subset
phase starts from the same initial weights as its conventional run.
"""

import math

from subsetlib.studies import Design, design
from subsetlib.study2_analysis import analyse
from subsetlib.verdicts import converged


def subset_epochs(d: Design, k: int) -> int:
    """Epochs over a subset of K examples for its first rung: ``d.epochs`` epochs, but at least
    ``d.min_subset_steps`` optimizer steps (a tiny subset needs steps, a large one needs epochs)."""
    return max(d.epochs, math.ceil(d.min_subset_steps / math.ceil(k / d.batch_size)))


def finetune_epochs(d: Design, subset_epochs_: int, k: int, n: int) -> int:
    """Fine-tuning epochs that bring the arm's total to the conventional budget (at least one)."""
    return max(1, round(d.epochs - subset_epochs_ * k / n))


def _end_of(result, phase: str) -> dict:
    """The last evaluation of ``phase`` in a run's curve."""
    return [row for row in result.curve if row["phase"] == phase][-1]


def run_width(ds, d: Design, model: str, fractions: tuple[float, ...], seed: int, results_dir: str) -> list[str]:
    """One width and seed: the conventional ladder, then each fraction's subset-phase ladder (the main width's
    first rung is the equal-compute arm, whose subset phase is that rung). A subset phase that question 1 judges
    (Q ≥ ``rules.q_high``, and this seed's conventional ladder converged) may take ``d.long_doublings`` pairs instead
    of ``d.max_doublings``. Returns the run ids, loaded or trained."""
    from subsetlib import protocols
    from subsetlib.planner import count_parameters
    from subsetlib.q import overdetermination_ratio
    from subsetlib.subsets import subset_indices

    cfg = d.run_config(model)
    ids: list[str] = []

    def ladder(first: int, train, loss, pairs: int) -> bool:
        """Pairs (B, 2B) … (2^(n-1)·B, 2^n·B), n = ``pairs`` at most, until one passes the rule: whether one did."""
        budget = first
        for _ in range(pairs):
            low, high = train(budget), train(2 * budget)
            ids.extend(r.summary["run_id"] for r in (low, high) if r.summary["run_id"] not in ids)
            if converged(loss(low), loss(high), d.rules):
                return True
            budget *= 2
        return False

    reference = ladder(d.epochs, lambda e: protocols.conventional(ds, cfg, seed, e, results_dir=results_dir),
                       lambda r: r.summary["final_train_loss"], d.max_doublings)
    n, p = len(ds.y_train), count_parameters(model, ds.spec)
    for f in fractions:
        k = len(subset_indices(ds.y_train, f, seed, cfg.stratified))
        first = subset_epochs(d, k)
        judged = reference and overdetermination_ratio(k, ds.num_classes, p) >= d.rules.q_high

        def train(epochs: int, f: float = f, first: int = first, k: int = k):
            if model == d.model and epochs == first:  # the equal-compute arm carries the first rung
                return protocols.subset_pretraining(ds, cfg, seed, epochs, finetune_epochs(d, epochs, k, n),
                                                    fraction=f, results_dir=results_dir)
            return protocols.subset_phase(ds, cfg, seed, epochs, f, results_dir=results_dir)

        ladder(first, train, lambda r: _end_of(r, "subset")["subset_loss"],
               d.long_doublings if judged else d.max_doublings)
    return ids


def run_equal_compute(ds, d: Design, seed: int, results_dir: str) -> list[str]:
    """One of the design's ``equal_seeds``, for question 2 only: the main width's conventional run on B and each
    equal-compute arm, no ladders. Returns the run ids, loaded or trained."""
    from subsetlib import protocols
    from subsetlib.subsets import subset_indices

    cfg, n = d.run_config(d.model), len(ds.y_train)
    runs = [protocols.conventional(ds, cfg, seed, d.epochs, results_dir=results_dir)]
    for f in d.fractions:
        k = len(subset_indices(ds.y_train, f, seed, cfg.stratified))
        first = subset_epochs(d, k)
        runs.append(protocols.subset_pretraining(ds, cfg, seed, first, finetune_epochs(d, first, k, n), fraction=f,
                                                 results_dir=results_dir))
    return [r.summary["run_id"] for r in runs]


def run_design(ds, d: Design, model: str, results_dir: str) -> list[str]:
    """Every seed of one width of a design (the cells of the study v2 grid are widths); the main width also runs
    the ``equal_seeds`` of question 2."""
    arms = {m: (f, s) for m, f, s in d.arms()}
    if model not in arms:
        from subsetlib.errors import UserError

        raise UserError(f"study v2's {d.dataset} design has no width {model!r}: choose one of {', '.join(arms)}")
    fractions, seeds = arms[model]
    ids = [rid for seed in seeds for rid in run_width(ds, d, model, fractions, seed, results_dir)]
    if model == d.model:
        ids += [rid for seed in d.equal_seeds for rid in run_equal_compute(ds, d, seed, results_dir)]
    return ids


def load(ds, d: Design, results_dir: str) -> dict:
    """The analysis of a dataset's design from its stored runs (the runs pages trained them; a missing run is
    trained here, so the page also works on its own)."""
    from subsetlib import results

    ids = [rid for model, _, _ in d.arms() for rid in run_design(ds, d, model, results_dir)]
    return analyse(*results.load_runs(results_dir, ids), d)


def page(name: str, device: str, results_dir: str) -> dict:
    """What an analysis page of study v2 starts with: the threads, the design called ``name``, its analysis from the
    stored runs, and its dataset's title."""
    from subsetlib import data
    from subsetlib.present import dataset_title
    from subsetlib.train import set_threads

    set_threads()
    d = design(name)
    return {**load(data.load(d.dataset, device=device), d, results_dir), "title": dataset_title(d.dataset)}


def stored(name: str, results_dir: str, device: str = "auto") -> dict | None:
    """The analysis of the design called ``name`` if every run it asks for is stored, else None. Trains nothing:
    the progress page asks this while the grid still runs."""
    from subsetlib import protocols

    try:
        with protocols.stored_runs_only():
            return page(name, device, results_dir)
    except protocols.NotStored:
        return None

