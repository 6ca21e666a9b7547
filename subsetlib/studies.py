"""The study's configurations, frozen in one place: the grids name one (``study_name``) and every study page reads
it, so a page cannot silently disagree with its grid (and retrain instead of loading the stored runs).

A ``StudyConfig`` holds every setting of the study pages (hypothesis, widths, baselines, claims) that defines a run;
``run_fields`` turns it into the ``protocols.RunConfig`` fields of one dataset and model. Changing a value here
changes run ids: the stored runs in ``results/study*/`` are those of these values (``tests/test_studies.py``).
Study v2's ``Design``s live here too, for the same reason (``study2`` runs and analyses them).
No torch: the grid loader and the pages' parameter checks import it.
"""

from dataclasses import dataclass, field

from subsetlib.errors import UserError
from subsetlib.registry import dataset_title
from subsetlib.verdicts import RULES, Rules


@dataclass(frozen=True)
class StudyConfig:
    """One study: its datasets, models, seeds, arms and budgets, and the RunConfig settings all its runs share."""

    datasets: tuple[str, ...]  # the hypothesis page runs once per dataset; the widths and baselines pages on the first
    model: str
    seeds: tuple[int, ...]
    fractions: tuple[float, ...]  # the subset arms
    conventional_epochs: int
    subset_steps: int  # optimizer steps of every subset phase (whole epochs over the subset, at least this many)
    finetune_epochs: int
    narrow_model: str | None = None  # the second width of the widths page ("Q or the fraction?")
    narrow_fractions: tuple[float, ...] = ()
    narrow_finetune_epochs: int = 1
    switch_steps: tuple[int, ...] = ()  # the baselines page: subset-phase lengths at the best fraction …
    switch_seeds: tuple[int, ...] = ()  # … on these seeds
    growth: float = 2.0  # the growing baseline's factor per stage
    # RunConfig settings shared by every run of the study (the rest keep RunConfig's defaults)
    augment: bool = False
    batch_size: int = 128
    precision: str = "fp32"
    eval_every: float = 1.0
    eval_dense: int = 3
    eval_train_examples: int | None = 5000

    def run_fields(self, dataset: str, model: str | None = None) -> dict:
        """The RunConfig fields of this study's runs on ``dataset`` with ``model`` (default: the study's model)."""
        return {"dataset": dataset, "model": model or self.model, "augment": self.augment,
                "batch_size": self.batch_size, "precision": self.precision, "eval_every": self.eval_every,
                "eval_dense": self.eval_dense, "eval_train_examples": self.eval_train_examples}

    def scale_text(self) -> str:
        """The study's budget in words, as the claims table states it."""
        return (f"{len(self.seeds)} seeds, {self.model}{' with augmentation' if self.augment else ''}; conventional "
                f"{self.conventional_epochs} epochs; subsets of at least {self.subset_steps:,} steps + "
                f"{self.finetune_epochs} fine-tuning epochs")


STUDIES = {
    # grids/study.yaml: real MNIST and Fashion-MNIST, 5 seeds; cnn-simple (P = 23,946) and its narrow twin
    "study": StudyConfig(
        datasets=("mnist", "fashion-mnist"), model="cnn-simple", seeds=(0, 1, 2, 3, 4),
        fractions=(1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 128), conventional_epochs=12, subset_steps=1500,
        finetune_epochs=4, narrow_model="cnn-simple-narrow", narrow_fractions=(1 / 8, 1 / 32, 1 / 128, 1 / 512),
        switch_steps=(250, 500, 1000, 3000), switch_seeds=(0, 1, 2)),
    # grids/study-cifar.yaml: CIFAR-10 (JPEG) with augmentation, 3 seeds, cifar-cpu (P = 113,962)
    "study-cifar": StudyConfig(
        datasets=("cifar10-jpeg",), model="cifar-cpu", seeds=(0, 1, 2), fractions=(1 / 2, 1 / 4, 1 / 16),
        conventional_epochs=15, subset_steps=800, finetune_epochs=3, augment=True, eval_train_examples=2000),
    # grids/paper.yaml (for a GPU): the same plan at a paper-like budget, with and without augmentation
    **{f"paper{suffix}": StudyConfig(
        datasets=("mnist", "fashion-mnist"), model="cnn-simple", seeds=(0, 1, 2, 3, 4),
        fractions=(1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256), conventional_epochs=100,
        subset_steps=20000, finetune_epochs=20, augment=augment, precision="bf16", eval_train_examples=10000)
       for suffix, augment in (("", False), ("-augment", True))},
    **{f"paper-cifar{suffix}": StudyConfig(
        datasets=("cifar10-jpeg", "cifar10", "cifar100"), model="vgg-small", seeds=(0, 1, 2, 3, 4),
        fractions=(1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32), conventional_epochs=100, subset_steps=20000,
        finetune_epochs=20, augment=augment, precision="bf16", eval_train_examples=10000)
       for suffix, augment in (("", False), ("-augment", True))},
    # SMOKE mode (CI): the synthetic set, one seed, a few steps
    "smoke": StudyConfig(
        datasets=("synthetic",), model="cnn-simple", seeds=(0,), fractions=(0.5, 0.125), conventional_epochs=2,
        subset_steps=20, finetune_epochs=1, narrow_model="cnn-simple-narrow", narrow_fractions=(0.5, 0.125),
        switch_steps=(10,), switch_seeds=(0,), eval_train_examples=300),
}


def study_config(name: str, dataset: str | None = None) -> StudyConfig:
    """The named study (checking that ``dataset``, if given, is one of its datasets), or a UserError naming the fix."""
    if name not in STUDIES:
        raise UserError(f"unknown study {name!r}: choose one of {', '.join(STUDIES)}")
    study = STUDIES[name]
    if dataset is not None and dataset not in study.datasets:
        raise UserError(f"dataset {dataset!r} is not in study {name!r}: choose one of {', '.join(study.datasets)}")
    return study


# ---------------------------------------------------------------------------------------------------------------------
# Study v2 (book/plan-v2.md): one design per dataset, run by study2


@dataclass(frozen=True)
class Design:
    """One dataset's arms. ``model`` is the main width (it also gets the equal-compute arms: subset phase, then
    fine-tuning on the full set to a total of ``epochs`` epoch-equivalents); ``widths`` are other widths of the same
    family, run on ``width_seeds`` for the Q-or-fraction question."""

    dataset: str
    model: str = "cnn-simple"
    fractions: tuple[float, ...] = (1 / 4, 1 / 8, 1 / 32)  # the main width's subset arms
    widths: dict[str, tuple[float, ...]] = field(default_factory=dict)  # other widths → their subset fractions
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    width_seeds: tuple[int, ...] = (0, 1, 2)
    # more seeds for question 2 only (the conventional run on B and the equal-compute arms, no ladders): a second
    # stage where the first stage's intervals were too wide to decide (plan amendment of 2026-12-05)
    equal_seeds: tuple[int, ...] = ()
    epochs: int = 8  # conventional budget B (its check: 2B); also the equal-compute arms' total budget
    min_subset_steps: int = 500  # a subset phase: `epochs` epochs over its subset, but at least this many steps
    max_doublings: int = 3  # the ladder: pairs (B, 2B), (2B, 4B), (4B, 8B) at most
    # a subset phase that question 1 judges (Q ≥ rules.q_high, its seed's conventional ladder converged) may go on to
    # this many pairs (plan amendment of 2026-12-05): without a converged reference no closeness verdict can follow
    long_doublings: int = 6
    augment: bool = False
    batch_size: int = 128
    eval_train_examples: int | None = 10_000  # the full-set training loss on this fixed sample of the set (None: all)
    rules: Rules = RULES

    def run_config(self, model: str):
        """The RunConfig of every run of this design at one width."""
        from subsetlib.protocols import RunConfig

        return RunConfig(dataset=self.dataset, model=model, batch_size=self.batch_size, augment=self.augment,
                         eval_every=1.0, eval_dense=3, eval_train_examples=self.eval_train_examples,
                         lr_schedule="cosine")

    def scale_text(self, model: str | None = None) -> str:
        """The design's budget in words, for a "Scale:" line: widths and seeds (of one width, ``model``, if given),
        the first budgets and the ladder's cap."""
        def seeds(n: int) -> str:
            return f"{n} seed{'s' if n != 1 else ''}"

        more = [f"{len(self.equal_seeds)} more for the equal-compute arms"] if self.equal_seeds else []
        if model is not None:
            main = model == self.model
            which = (f"{model}, {seeds(len(self.seeds if main else self.width_seeds))}"
                     + (f" ({more[0]})" if main and more else ""))
        else:
            others = [f"{seeds(len(self.width_seeds))} at the other widths"] * bool(
                self.widths and len(self.width_seeds) != len(self.seeds)) + more
            which = (f"{', '.join([self.model, *self.widths])}, {seeds(len(self.seeds))}"
                     + (f" ({'; '.join(others)})" if others else ""))
        return (f"{dataset_title(self.dataset)}: {which}; conventional "
                f"from B = {self.epochs} epochs, subsets from B epochs (at least {self.min_subset_steps} steps), "
                f"doubled until converged, at most to {self.epochs * 2 ** self.max_doublings} epochs")

    def arms(self) -> list[tuple[str, tuple[float, ...], tuple[int, ...]]]:
        """(model, subset fractions, seeds) for every width, the main one first."""
        return [(self.model, self.fractions, self.seeds)] + [(m, f, self.width_seeds) for m, f in self.widths.items()]


DESIGNS: dict[str, Design] = {
    # MNIST's loss still fell 30-44 % from 4 to 8 epochs at widths 6 and 16 (sizing runs): the main width is 6, whose
    # ladder is affordable on 2 CPU cores; the width sweep runs on Fashion-MNIST, where the loss flattens sooner
    "mnist": Design("mnist", model="cnn-simple-narrow", fractions=(1 / 8, 1 / 32, 1 / 256),
                    widths={"cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)}, equal_seeds=(5, 6, 7, 8, 9)),
    "fashion-mnist": Design("fashion-mnist", model="cnn-simple", fractions=(1 / 4, 1 / 8, 1 / 32),
                            widths={"cnn-simple-narrow": (1 / 8, 1 / 32, 1 / 128, 1 / 512),
                                    "cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)}),
    # CIFAR-10 re-encoded as JPEG (its own dataset), without augmentation: the question is where the training loss's
    # minimum lies, and augmentation changes that loss every epoch. Width 16 puts Q = 3.7 at a quarter of the set
    "cifar10-jpeg": Design("cifar10-jpeg", model="cifar-cpu-narrow", fractions=(1 / 4, 1 / 8, 1 / 32), seeds=(0, 1, 2),
                           widths={"cifar-cpu-w8": (1 / 8, 1 / 32, 1 / 128)}, equal_seeds=(3, 4, 5, 6, 7, 8, 9)),
    # The same plan and rules for a GPU (grids/study-v2-gpu.yaml; not run on this book's CPUs): the full-width model,
    # B = 32 epochs (ladder to 256), the full-set loss on the whole set, every seed on every width. MNIST at width 16
    # puts Q = 1.6 / 3.1 / 6.3 at 1/16, 1/8, 1/4: the target Qs 1.5-3 a secondary summary suggests (our inference)
    "mnist-gpu": Design("mnist", model="cnn-simple", fractions=(1 / 4, 1 / 8, 1 / 16, 1 / 64),
                        widths={"cnn-simple-narrow": (1 / 8, 1 / 32, 1 / 128, 1 / 512),
                                "cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)},
                        width_seeds=(0, 1, 2, 3, 4), epochs=32, min_subset_steps=2000, eval_train_examples=None),
    "fashion-mnist-gpu": Design("fashion-mnist", model="cnn-simple", fractions=(1 / 4, 1 / 8, 1 / 16, 1 / 64),
                                widths={"cnn-simple-narrow": (1 / 8, 1 / 32, 1 / 128, 1 / 512),
                                        "cnn-simple-w3": (1 / 32, 1 / 128, 1 / 512, 1 / 2048)},
                                width_seeds=(0, 1, 2, 3, 4), epochs=32, min_subset_steps=2000,
                                eval_train_examples=None),
    "cifar10-jpeg-gpu": Design("cifar10-jpeg", model="cifar-cpu-narrow", fractions=(1 / 4, 1 / 8, 1 / 32),
                               widths={"cifar-cpu": (1 / 2, 1 / 4, 1 / 8), "cifar-cpu-w8": (1 / 8, 1 / 32, 1 / 128)},
                               width_seeds=(0, 1, 2, 3, 4), epochs=32, min_subset_steps=2000,
                               eval_train_examples=None),
    # seconds, for tests and SUBSETLIB_SMOKE
    "synthetic": Design("synthetic", fractions=(1 / 4,), widths={"cnn-simple-narrow": (1 / 4,)}, seeds=(0, 1),
                        width_seeds=(0,), epochs=1, min_subset_steps=4, max_doublings=1, long_doublings=2,
                        batch_size=250,
                        eval_train_examples=300),
}


def design(name: str) -> Design:
    """The design called ``name``: a dataset's name for the CPU designs this book runs, ``<dataset>-gpu`` for the
    same plan at GPU budgets."""
    if name not in DESIGNS:
        raise UserError(f"study v2 has no design {name!r}: choose one of {', '.join(DESIGNS)}")
    return DESIGNS[name]
