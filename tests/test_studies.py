"""The study's one configuration: the grids name it, the pages read it, and the stored runs are its runs.

A page run with its grid's parameters must load every run it asks for from ``results/<profile>/`` and train nothing;
the stored runs' ids must still be what their recorded configuration hashes to."""

import math
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import ROOT

from subsetlib import batch, grids, protocols, results, studies, study
from subsetlib.data import load
from subsetlib.errors import UserError
from subsetlib.registry import DATASETS, data_roots

STUDY_PAGES = ("study.ipynb", "study_widths.ipynb", "study_baselines.ipynb", "claims.ipynb")


def have_data(*names: str) -> bool:
    return all(any((root / DATASETS[n].folder).is_dir() for root in data_roots()) for n in names)


def page_run_ids(page: str, params: dict, results_dir: Path) -> list[str]:
    """The run ids a study page asks for with these parameters, through the library calls the page makes."""
    config = studies.study_config(params["study_name"], params.get("dataset"))
    datasets = [params["dataset"]] if "dataset" in params else list(config.datasets)
    ids = []
    for dataset in datasets:
        ds = load(dataset, device="cpu")
        main = study.hypothesis_arms(ds, config, str(results_dir))
        ids += main
        if page in ("study_baselines.ipynb", "claims.ipynb") and dataset == config.datasets[0]:
            best = study.best_fraction(study.analyse(*results.load_runs(results_dir, main))["costs"])
            ids += study.switch_arms(ds, config, best, str(results_dir))
            if page == "study_baselines.ipynb":
                ids += study.growing_arms(ds, config, best, str(results_dir))[0]
        if page in ("study_widths.ipynb", "claims.ipynb") and dataset == config.datasets[0]:
            ids += study.hypothesis_arms(ds, config, str(results_dir), config.narrow_model)
    return ids


@pytest.mark.parametrize("grid", ["study.yaml", "study-cifar.yaml"])
def test_the_study_pages_load_their_grids_stored_runs_and_train_nothing(grid, monkeypatch):
    loaded = batch.load_grid(ROOT / "grids" / grid)
    cells = [c for c in loaded.cells if Path(c.notebook).name in STUDY_PAGES]
    assert cells, f"no study page in {grid}"
    config = studies.study_config(cells[0].parameters["study_name"])
    if not have_data(*config.datasets):
        pytest.skip(f"the data of {grid} is not in the data roots")

    def refuse(*args, **kwargs):
        raise AssertionError("a study page would train a run that is not stored")

    monkeypatch.setattr(protocols, "_train_phases", refuse)
    stored = {p.stem for p in (loaded.results / "runs").glob("*.parquet")}
    for cell in cells:
        ids = page_run_ids(Path(cell.notebook).name, cell.parameters, loaded.results)
        assert ids and set(ids) <= stored, (cell.notebook, sorted(set(ids) - stored)[:3])


def test_a_study_page_without_its_runs_would_train(monkeypatch, tmp_path):
    """The guard above can fail: with no stored runs, the same calls train."""
    def refuse(*args, **kwargs):
        raise AssertionError("would train")

    monkeypatch.setattr(protocols, "_train_phases", refuse)
    with pytest.raises(AssertionError, match="would train"):
        study.hypothesis_arms(load("synthetic", device="cpu"), studies.STUDIES["smoke"], str(tmp_path))


PROTOCOL_PARAMS = {"conventional": ("epochs",), "subset": ("fraction", "target_q", "subset_epochs", "finetune_epochs"),
                   "growing": ("fraction", "growth", "stage_epochs", "uniform")}


WHOLE = {"epochs", "subset_epochs", "finetune_epochs"}  # a column that is NaN for other protocols reads back as float


def plain(value, name: str = ""):
    """A Parquet cell as the Python value the run id was hashed from (NaN was None; numpy scalars plain)."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and math.isnan(value):
        return None
    return int(value) if name in WHOLE else value


@pytest.mark.parametrize("profile", ["study", "study-cifar"])
def test_stored_run_ids_are_what_their_recorded_configuration_hashes_to(profile):
    folder = ROOT / "results" / profile
    if not (folder / "runs").is_dir():
        pytest.skip(f"no stored runs in results/{profile}")
    runs = results.load(folder)
    config_fields = [f.name for f in fields(protocols.RunConfig)]
    for _, run in runs.iterrows():
        cfg = protocols.RunConfig(**{k: plain(run[k]) for k in config_fields if k in run})
        params = {k: plain(run[k], k) for k in PROTOCOL_PARAMS[run["protocol"]]}
        assert protocols.run_id(run["protocol"], cfg, int(run["seed"]), **params) == run["run_id"]


def test_every_study_config_makes_a_valid_run_config():
    for name, config in studies.STUDIES.items():
        for dataset in config.datasets:
            for model in filter(None, (config.model, config.narrow_model)):
                cfg = study.run_config(config, dataset, model)
                assert (cfg.dataset, cfg.model, cfg.eval_every) == (dataset, model, config.eval_every), name
    with pytest.raises(UserError, match="unknown study"):
        studies.study_config("stdy")
    with pytest.raises(UserError, match="not in study"):
        studies.study_config("study", "cifar10-jpeg")


def test_scale_text_is_the_configs():
    text = studies.STUDIES["study"].scale_text()
    assert text == "5 seeds, cnn-simple; conventional 12 epochs; subsets of at least 1,500 steps + 4 fine-tuning epochs"
    assert "with augmentation" in studies.STUDIES["study-cifar"].scale_text()


def test_design_scale_text_names_other_widths_seeds_only_where_they_differ():
    assert "cnn-simple-w3, 5 seeds (3 seeds at the other widths; 5 more" in studies.DESIGNS["mnist"].scale_text()
    cifar = studies.DESIGNS["cifar10-jpeg"].scale_text()
    assert "cifar-cpu-w8, 3 seeds (7 more for the equal-compute arms); conventional" in cifar
    assert "other widths" not in cifar


@pytest.mark.parametrize("path", sorted((ROOT / "grids").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_grid_passes_its_checks(path):
    """A grid names notebooks, parameters and designs: after a rename in a notebook or in STUDIES/DESIGNS, every
    committed grid must still load (the GPU grids too, which no CI machine runs)."""
    grid = grids.load_grid(path)
    assert grid.cells
