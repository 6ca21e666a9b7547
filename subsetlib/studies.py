"""The study's configurations, frozen in one place: the grids name one (``study_name``) and every study page reads
it, so a page cannot silently disagree with its grid (and retrain instead of loading the stored runs).

A ``StudyConfig`` holds every setting of the study pages (hypothesis, widths, baselines, claims) that defines a run;
``run_fields`` turns it into the ``protocols.RunConfig`` fields of one dataset and model. Changing a value here
changes run ids: the stored runs in ``results/study*/`` are those of these values (``tests/test_studies.py``).
No torch: the grid loader and the pages' parameter checks import it.
"""

from dataclasses import dataclass

from subsetlib.errors import UserError


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

    def budget_text(self) -> str:
        """The study's budget in words, as the claims table states it."""
        return (f"{len(self.seeds)} seeds, {self.model}{' with augmentation' if self.augment else ''}; conventional "
                f"{self.conventional_epochs} epochs; subsets {self.subset_steps:,} steps + {self.finetune_epochs} "
                "fine-tuning epochs")


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
