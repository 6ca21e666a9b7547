"""What goes wrong in practice, one test per case: bad input wherever a user types something, damaged data files,
runs killed half-way, several writers at once, reruns that must give the same numbers, and a damaged results file.
Each test checks the message, the exit status, and that nothing was written or lost."""

import argparse
import gzip
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import papermill
import pytest
import torch
import yaml
from conftest import (
    PARAMETERS,
    PYTHON,
    REAL_DATA,
    assert_refused_in_one_line,
    child_env,
    files_under,
    main_in_process,
    one_error_line,
    tiny_config,
    wait_for,
    write_notebook,
)

from subsetlib import batch, data, formats, grids, protocols, q, results, subsets, train
from subsetlib.errors import UserError
from subsetlib.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: CLI flags

SYN = ["--dataset", "synthetic", "--device", "cpu"]
BAD_FLAGS = {
    "unknown dataset": (["run", "--dataset", "nope"], ["unknown dataset 'nope'", "mnist", "synthetic"]),
    "unknown model": (["run", *SYN, "--model", "nope"], ["unknown model 'nope'", "cnn-simple", "mnist-fast"]),
    "fraction 0": (["run", *SYN, "--protocol", "subset", "--fraction", "0"], ["fraction must lie in (0, 1]"]),
    "fraction above 1": (["run", *SYN, "--protocol", "subset", "--fraction", "1.5"], ["(0, 1] (got 1.5)"]),
    "fraction negative": (["run", *SYN, "--protocol", "growing", "--fraction", "-0.5"], ["(0, 1] (got -0.5)"]),
    "fraction NaN": (["run", *SYN, "--protocol", "subset", "--fraction", "nan"], ["(0, 1] (got nan)"]),
    "fraction not a number": (["run", *SYN, "--fraction", "half"], ["argument --fraction", "'half'"]),
    "epochs 0": (["run", *SYN, "--epochs", "0"], ["argument --epochs: must be > 0"]),
    "epochs negative": (["run", *SYN, "--epochs", "-3"], ["argument --epochs"]),
    "epochs fractional": (["run", *SYN, "--epochs", "1.5"], ["argument --epochs", "not a whole number"]),
    "subset epochs 0": (["run", *SYN, "--protocol", "subset", "--fraction", "0.5", "--subset-epochs", "0"],
                        ["argument --subset-epochs"]),
    "batch size 0": (["run", *SYN, "--batch-size", "0"], ["argument --batch-size"]),
    "batch larger than training set": (["run", *SYN, "--batch-size", "2001"],
                                       ["batch size 2001 exceeds the 2000 examples of the training set"]),
    "batch larger than subset": (["run", *SYN, "--protocol", "subset", "--fraction", "0.1", "--batch-size", "300"],
                                 ["batch size 300 exceeds the 200 examples of the subset"]),
    "batch larger than Q subset": (["run", *SYN, "--protocol", "subset", "--target-q", "0.5", "--batch-size", "1500"],
                                   ["exceeds the 1200 examples of the subset"]),
    "target Q 0": (["run", *SYN, "--protocol", "subset", "--target-q", "0"], ["target Q must be a number > 0"]),
    "target Q negative": (["run", *SYN, "--protocol", "subset", "--target-q", "-2"], ["target Q", "(got -2.0)"]),
    "target Q NaN": (["run", *SYN, "--protocol", "subset", "--target-q", "nan"], ["target Q", "(got nan)"]),
    "target Q unreachable": (["run", *SYN, "--protocol", "subset", "--target-q", "9"],
                             ["target Q 9.0 needs K=21552 examples but synthetic has 2000"]),
    "subset without its size": (["run", *SYN, "--protocol", "subset"], ["needs --fraction or --target-q"]),
    "fraction and target Q": (["run", *SYN, "--protocol", "subset", "--fraction", "0.5", "--target-q", "1"],
                              ["not both"]),
    "growing by target Q": (["run", *SYN, "--protocol", "growing", "--target-q", "0.1"],
                            ["--target-q does not apply to protocol growing (only to subset)"]),
    "unknown protocol": (["run", *SYN, "--protocol", "magic"], ["invalid choice: 'magic'", "conventional"]),
    "unknown optimizer": (["run", *SYN, "--optimizer", "rmsprop"], ["unknown optimizer 'rmsprop'", "adam, adamw, sgd"]),
    "learning rate 0": (["run", *SYN, "--lr", "0"], ["learning rate must be a finite number > 0"]),
    "learning rate NaN": (["run", *SYN, "--lr", "nan"], ["learning rate must be a finite number > 0 (got nan)"]),
    "eval every 0": (["run", *SYN, "--eval-every", "0"], ["eval_every must be a finite number > 0"]),
    "unknown device": (["run", "--dataset", "synthetic", "--device", "tpu"], ["unknown device 'tpu'", "cpu"]),
    "missing GPU": (["run", "--dataset", "synthetic", "--device", "cuda:0"], ["no CUDA GPU is visible"]),
    "unknown flag": (["run", *SYN, "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
    "unknown command": (["train"], ["invalid choice: 'train'", "'q', 'run'"]),
    "data not there": (["run", "--dataset", "mnist", "--data", "nowhere", "--device", "cpu"],
                       ["dataset 'mnist' not found", "nowhere/MNIST"]),
    "results under a file": (["run", *SYN, "--results", "notes.txt/results"],
                             ["results directory notes.txt/results is not writable"]),
    "q unknown dataset": (["q", "--dataset", "nope"], ["unknown dataset 'nope'", "fashion-mnist"]),
    "q unknown model": (["q", "--model", "nope"], ["unknown model 'nope'"]),
    "q fraction 0": (["q", "--fractions", "0.5", "0"], ["fraction must lie in (0, 1]"]),
    "q target Q 0": (["q", "--target-q", "0"], ["target Q must be a number > 0"]),
    "batch missing grid": (["batch", "grids/none.yaml"], ["grid file grids/none.yaml does not exist"]),
    "seed 2**64": (["run", *SYN, "--seeds", "18446744073709551616"],
                   ["argument --seeds: seed must be a whole number from 0 to 2**63 - 1 (got 18446744073709551616)"]),
    "seed 2**63": (["run", *SYN, "--seeds", "0", "9223372036854775808"], ["(got 9223372036854775808)"]),
    "seed negative": (["run", *SYN, "--seeds", "-1"], ["argument --seeds: seed must be", "(got -1)"]),
    "seed not a number": (["run", *SYN, "--seeds", "abc"], ["argument --seeds: 'abc' is not a whole number"]),
    "fraction for conventional": (["run", *SYN, "--protocol", "conventional", "--fraction", "0.5"],
                                  ["--fraction does not apply to protocol conventional (only to subset, growing)"]),
    "target Q for conventional": (["run", *SYN, "--target-q", "2"], ["--target-q does not apply to protocol conv"]),
    "subset epochs for conventional": (["run", *SYN, "--subset-epochs", "3"],
                                       ["--subset-epochs does not apply to protocol conventional"]),
    "epochs for growing": (["run", *SYN, "--protocol", "growing", "--fraction", "0.5", "--epochs", "2"],
                           ["--epochs does not apply to protocol growing (only to conventional, subset)"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_cli_flags_end_in_one_line_and_write_nothing(case, tmp_path, monkeypatch, capsys):
    argv, expected = BAD_FLAGS[case]
    if case == "missing GPU" and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    monkeypatch.chdir(tmp_path)  # the default --results is results/adhoc below the working directory
    assert_refused_in_one_line(argv, tmp_path, capsys, expected)


def test_bad_flags_in_a_real_process_exit_2_without_traceback(tmp_path):
    """The same through ``python -m subsetlib``: a UserError and an argparse error, each one line and status 2."""
    commands = [["run", "--dataset", "nope", "--results", "res"], ["run", "--dataset", "synthetic", "--epochs", "0"]]
    procs = [subprocess.Popen([PYTHON, "-m", "subsetlib", *argv], cwd=tmp_path, env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in commands]
    for proc, expected in zip(procs, ["unknown dataset 'nope'", "argument --epochs: must be > 0"], strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and out == ""
        assert expected in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: papermill parameters


@pytest.mark.parametrize(("parameters", "expected"), [
    ({"epoch": 3}, "unknown parameter(s) epoch: this notebook takes dataset, epochs, lr, results_dir, scale, seed"),
    ({"epochs": "three"}, "parameter epochs must be int like its default 2 (got 'three')"),
    ({"dataset": "mnsit"}, "parameter dataset: unknown dataset 'mnsit': choose one of cifar10"),
    ({"seed": -1}, "parameter seed: seed must be a whole number from 0 to 2**63 - 1 (got -1)"),
])
def test_notebook_rejects_bad_parameters(tmp_path, monkeypatch, parameters, expected):
    monkeypatch.delenv("SUBSETLIB_SMOKE", raising=False)  # the default of epochs depends on it; CI sets it
    notebook = write_notebook(tmp_path / "nb.ipynb", body="open('body-ran.txt', 'w').write('it ran')")
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters=parameters,
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert caught.value.ename == "UserError"
    assert caught.value.evalue.startswith(expected)
    assert caught.value.traceback == [f"UserError: {caught.value.evalue}"]  # the fix, not 50 lines of traceback
    shown = [line for line in str(caught.value).splitlines() if line.strip()]
    assert len(shown) == 3 and shown[-1] == f"UserError: {caught.value.evalue}", shown
    assert not (tmp_path / "body-ran.txt").exists()  # stopped before the experiment


def test_notebook_parameters_without_a_history(tmp_path):
    """nbval runs cells without a history (In stays empty): end still returns what the parameters cell bound, so
    protocols.config_from(params) builds the config the notebook declares."""
    from subsetlib import notebook as nb

    namespace = {"os": os, "In": [""]}
    namespace["SMOKE"] = nb.begin(namespace)
    declared = {"dataset": "synthetic", "batch_size": 64, "results_dir": str(tmp_path), "scale": "ad hoc"}
    namespace.update(declared)
    params = nb.end(namespace)
    assert params == declared
    assert protocols.config_from(params) == protocols.RunConfig(dataset="synthetic", batch_size=64)


def test_footer_can_name_every_budget_in_the_provenance_box(monkeypatch):
    """A page whose runs come from several grids (the claims page) says every budget in its box, not its grid's."""
    import IPython.display

    from subsetlib import notebook as nb

    monkeypatch.delenv("SUBSETLIB_SMOKE", raising=False)  # a smoke run's box says "smoke test" instead
    boxes = []
    monkeypatch.setattr(IPython.display, "update_display", lambda shown, display_id: boxes.append(shown.data))
    monkeypatch.setattr(IPython.display, "display", lambda *_: None)
    monkeypatch.setitem(nb._state, "params", {"scale": "MNIST only"})
    monkeypatch.setitem(nb._state, "injected", ["scale"])
    runs = pd.DataFrame({"git_commit": ["abcdef1234567"]})
    nb.footer("claims", runs)
    nb.footer("claims", runs, scale="MNIST: 5 seeds; CIFAR-10 (JPEG): 3 seeds")
    assert "<b>MNIST only</b>" in boxes[0] and "<b>MNIST: 5 seeds; CIFAR-10 (JPEG): 3 seeds</b>" in boxes[1]


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: grid files


def grid_case(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    """A grid file with one mistake, and the texts its error must hold."""
    notebook = write_notebook(tmp_path / "nb.ipynb")
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    stage = {"notebook": str(notebook), "output": "cell-{seed}.ipynb", "grid": {"seed": [0, 1]}}
    spec = {"profile": "bad", "results": str(tmp_path / "results"), "output_dir": str(tmp_path / "book"),
            "stages": [stage]}
    expected = {
        "invalid YAML": "is not valid YAML (line 2)",
        "no stages": "needs a mapping with a non-empty 'stages' list",
        "empty product": "every 'grid' entry in stage 1",
        "unknown key": "unknown grid key(s) colour",
        "unknown stage key": "unknown key(s) gird in stage 1",
        "unknown parameter": f"unknown parameter(s) epoch for {tmp_path}/nb.ipynb: ",
        "missing notebook": "notebook nothere.ipynb (stage 1",
        "output name without parameter": "uses 'colour', which is not a parameter",
        "results under a file": f"results directory {tmp_path}/notes.txt/results cannot be created",
        "output under a file": f"output directory {tmp_path}/notes.txt/book cannot be created",
        "duplicate parameter": "key 'lr' appears twice; fix it",
        "duplicate top-level key": "key 'profile' appears twice; fix it",
        "wait maybe": "'wait' in stage 1 of",
        "refresh yes": "'refresh' in stage 1 of",
        "output outside the folder": "outside the output folder",
        "wrong type": "parameter lr must be float like its default 0.001 (got 'fast') (stage 1 of",
        "seeds not a list": "'seeds' in",
        "seed out of range": "parameter seed: seed must be a whole number from 0 to 2**63 - 1 (got -1) (stage 1",
        "misspelled dataset": "parameter dataset: unknown dataset 'mnsit': choose one of",
        "not a notebook": f"notebook {tmp_path}/notes.txt (stage 1 of",
    }[case]
    expected = [expected]
    if case == "no stages":
        spec["stages"] = []
    elif case == "empty product":
        stage["grid"] = {"seed": []}
    elif case == "unknown key":
        spec["colour"] = "blue"
    elif case == "unknown stage key":
        stage["gird"] = stage.pop("grid")
    elif case == "unknown parameter":
        stage["parameters"] = {"epoch": 3}
        expected.append("it takes dataset, epochs, lr, results_dir, scale, seed")
    elif case == "missing notebook":
        stage["notebook"] = "nothere.ipynb"
    elif case == "output name without parameter":
        stage["output"] = "cell-{colour}.ipynb"
    elif case == "results under a file":
        spec["results"] = str(tmp_path / "notes.txt" / "results")
    elif case == "output under a file":
        spec["output_dir"] = str(tmp_path / "notes.txt" / "book")
    elif case == "duplicate parameter":
        stage["parameters"] = {"lr": 0.002}
    elif case == "wait maybe":
        stage["wait"] = "maybe"
        expected.append("must be true or false (got 'maybe')")
    elif case == "refresh yes":
        stage["refresh"] = "yes"
        expected.append("must be true or false (got 'yes')")
    elif case == "output outside the folder":
        stage["output"] = "../../../cell-{seed}"
    elif case == "wrong type":
        stage["parameters"] = {"lr": "fast"}
    elif case == "seeds not a list":
        spec["seeds"] = "abc"
        expected.append("must be a non-empty list such as [0, 1] (got 'abc')")
    elif case == "seed out of range":
        stage["grid"] = {"seed": [0, -1]}
    elif case == "misspelled dataset":
        stage["parameters"] = {"dataset": "mnsit"}
    elif case == "not a notebook":
        stage["notebook"] = str(tmp_path / "notes.txt")
        expected.append("is not a Jupyter notebook (")
    path = tmp_path / "grid.yaml"
    text = yaml.safe_dump(spec, sort_keys=False)
    if case == "duplicate parameter":  # the second one silently won before
        text += "    lr: 0.003\n"
    elif case == "duplicate top-level key":
        text += "profile: other\n"
    path.write_text("profile: bad\n  stages: []\n" if case == "invalid YAML" else text)  # a key indented wrongly
    return path, expected


GRID_CASES = ["invalid YAML", "no stages", "empty product", "unknown key", "unknown stage key", "unknown parameter",
              "missing notebook", "output name without parameter", "results under a file", "output under a file",
              "duplicate parameter", "duplicate top-level key", "wait maybe", "refresh yes",
              "output outside the folder", "wrong type", "seeds not a list", "seed out of range", "misspelled dataset",
              "not a notebook"]


@pytest.mark.parametrize("case", GRID_CASES)
def test_bad_grid_files_end_in_one_line_and_write_nothing(case, tmp_path, monkeypatch, capsys):
    path, expected = grid_case(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    assert_refused_in_one_line(["batch", str(path)], tmp_path, capsys, expected)
    assert not (tmp_path / "results").exists() and not (tmp_path / "book").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: the Python API raises UserError, a ValueError


def api_calls(synthetic) -> dict:
    cfg = tiny_config()
    model = build_model("cnn-simple", (1, 28, 28), 10)
    return {
        "dataset name": lambda: data.load("nope"),
        "fraction": lambda: subsets.subset_indices(synthetic.y_train, 0, seed=0),
        "device": lambda: data.resolve_device("tpu"),
        "model name": lambda: build_model("nope", (1, 28, 28), 10),
        "torchvision model on 1 channel": lambda: build_model("resnet18", (1, 28, 28), 10),
        "optimizer": lambda: train.make_optimizer(model, "rmsprop"),
        "learning rate": lambda: train.make_optimizer(model, "adam", -1.0),
        "batch size": lambda: protocols.RunConfig(batch_size=0),
        "unknown config field": lambda: protocols.config_from({}, batchsize=64),
        "wrong dataset for config": lambda: protocols.conventional(synthetic, tiny_config(dataset="mnist"), 0, 1),
        "epochs 0": lambda: protocols.conventional(synthetic, cfg, 0, epochs=0),
        "subset size twice": lambda: protocols.subset_pretraining(synthetic, cfg, 0, 1, 1, fraction=0.5, target_q=1),
        "target Q unreachable": lambda: protocols.subset_pretraining(synthetic, cfg, 0, 1, 1, target_q=100),
        "growth 1": lambda: protocols.growing(synthetic, cfg, 0, 0.25, 1, growth=1.0),
        "stage epochs mismatch": lambda: protocols.growing(synthetic, cfg, 0, 0.25, [1, 1]),
        "Q inputs": lambda: q.overdetermination_ratio(10, 10, 0),
        "target Q": lambda: q.min_subset_size(100, 10, 0),
        "results table": lambda: results.load("results", table="run"),
        "grid file": lambda: grids.load_grid("no-such-grid.yaml"),
    }


@pytest.mark.parametrize("case", sorted(api_calls(None)))
def test_python_api_raises_user_error(case, synthetic):
    with pytest.raises(UserError) as caught:
        api_calls(synthetic)[case]()
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message and "\n" not in message


def api_calls_with_messages(synthetic) -> dict:
    """Second round: inputs that used to end in raw torch or pandas errors, or were accepted silently."""
    cfg = tiny_config()
    seed_message = "seed must be a whole number from 0 to 2**63 - 1"
    return {
        "seed float": (lambda: protocols.conventional(synthetic, cfg, 1.5, 1), f"{seed_message} (got 1.5)"),
        "seed string": (lambda: protocols.conventional(synthetic, cfg, "0", 1), f"{seed_message} (got '0')"),
        "seed too large": (lambda: protocols.conventional(synthetic, cfg, 2**63, 1), f"{seed_message} (got 2**63)"),
        "seed of a subset": (lambda: subsets.subset_indices(synthetic.y_train, 0.5, seed=-1),
                             f"{seed_message} (got -1)"),
        "numpy labels": (lambda: subsets.subset_indices(synthetic.y_train.numpy(), 0.5, 0),
                         "labels must be a torch tensor (got ndarray): pass torch.as_tensor(labels)"),
        "empty labels": (lambda: subsets.subset_indices(torch.tensor([], dtype=torch.long), 0.5, 0),
                         "labels must be a non-empty 1-D integer tensor (got shape (0,), torch.int64)"),
        "empty labels by size": (lambda: subsets.subset_of_size(torch.tensor([], dtype=torch.long), 5, 0),
                                 "labels must be a non-empty 1-D integer tensor"),
        "batch size 2.5": (lambda: protocols.RunConfig(batch_size=2.5),
                           "batch_size must be a whole number >= 1 (got 2.5)"),
        "growth NaN": (lambda: protocols.growing_phases(0.25, math.nan, 1, True),
                       "growth must be a finite number > 1 (got nan)"),
        "growth barely above 1": (lambda: protocols.growing_phases(0.25, 1.0000001, 1, True),
                                  "growth 1.0000001 from fraction 0.25 needs 13862946 stages: use a growth of at "
                                  "least 1.022"),
        "results folder missing": (lambda: results.load("/typo-no-such-folder"),
                                   "results directory /typo-no-such-folder does not exist"),
    }


@pytest.mark.parametrize("case", sorted(api_calls_with_messages(None)))
def test_python_api_refuses_with_a_message(case, synthetic, tmp_path, monkeypatch):
    call, expected = api_calls_with_messages(synthetic)[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        call()
    assert str(caught.value).startswith(expected.replace("2**63)", f"{2**63})")), str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_numpy_fraction_and_seed_are_accepted_as_their_python_values(synthetic):
    labels = synthetic.y_train
    assert torch.equal(subsets.subset_indices(labels, np.float32(0.5), np.int64(3)),
                       subsets.subset_indices(labels, 0.5, 3))
    with pytest.raises(UserError, match=r"fraction must lie in \(0, 1\] \(got np.float32\(2.0\)\): use e.g. 0.5"):
        subsets.subset_indices(labels, np.float32(2.0), 0)


def test_largest_seed_is_stored_as_int64(mini, tmp_path):
    protocols.conventional(mini, tiny_config(batch_size=200), 2**63 - 1, 1, results_dir=str(tmp_path))
    runs, curves = results.load(tmp_path), results.load(tmp_path, "curves")
    assert runs["seed"].dtype == "int64" and runs["seed"].tolist() == [2**63 - 1]
    assert curves["seed"].dtype == "int64"


def test_run_resuming_over_a_damaged_results_file_names_it_and_keeps_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", *SYN, "--epochs", "1", "--batch-size", "500", "--eval-every", "100", "--results", "res"]
    rc, out, _ = main_in_process(argv, capsys)
    assert rc == 0
    summary = next((tmp_path / "res" / "runs").glob("*.parquet"))
    summary.write_bytes(b"PAR1 not really")
    rc, again, err = main_in_process(argv, capsys)
    assert rc == 0, err
    kept = summary.with_name(f"{summary.name}.damaged")
    err = "\n".join(line for line in err.splitlines() if "epoch-equivalents" not in line)  # progress lines
    assert err.strip().splitlines() == [f"subsetlib: warning: unreadable results file res/runs/{summary.name} "
                                        f"moved to {kept.name}; the run is made again",
                                        f"subsetlib: seed 0: trained: res/runs/{summary.name}"]
    assert kept.read_bytes() == b"PAR1 not really"  # kept, not overwritten
    assert json.loads(again)["run_id"] == json.loads(out)["run_id"] and len(results.load(tmp_path / "res")) == 1


def test_files_written_honour_the_umask(synthetic, tmp_path, monkeypatch):
    """Parquet files, cell states, executed notebooks and the image cache: 0666 less the umask, as any file."""
    monkeypatch.delenv("SUBSETLIB_SMOKE", raising=False)
    old = os.umask(0o027)
    try:
        results.save(fake_run("r0", 0), synthetic, tmp_path / "res")
        notebook = write_notebook(tmp_path / "nb.ipynb")
        cell = grids.Cell(0, str(notebook), str(tmp_path / "book" / "cell.ipynb"), {"epochs": 1}, "k0")
        state = batch.execute_cell(cell, str(tmp_path / "res" / "cells" / "k0.json"))
        formats._write_cache(tmp_path / "cache" / "x.npz", (np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1)), "d")
    finally:
        os.umask(old)
    assert state["status"] == "done", state
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != tmp_path]
    assert len(written) == 5, written
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o640" for p in written}


def test_every_flag_has_a_sentence_and_a_default_and_no_backticks():
    from subsetlib.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in commands.items():
        assert "`" not in sub.format_help(), name
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help and action.help[0].isupper(), (name, action.dest)
            shown = sub.formatter_class(prog=name)._get_help_string(action)
            assert not action.option_strings or "default" in shown, (name, action.dest, shown)


# ---------------------------------------------------------------------------------------------------------------------
# Data integrity: damaged copies of the real MNIST files

RAW = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def pristine_mnist(tmp_path_factory) -> Path:
    source = REAL_DATA / "MNIST" / "raw"
    if not all((source / name).is_file() for name in RAW):
        pytest.skip(f"the MNIST files are not in {source}")
    root = tmp_path_factory.mktemp("pristine")
    shutil.copytree(source, root / "MNIST" / "raw")
    return root


@pytest.fixture
def mnist_copy(pristine_mnist, tmp_path) -> Path:
    """A private copy of the real MNIST files (never the shared ones) for a test to damage."""
    shutil.copytree(pristine_mnist, tmp_path / "data")
    return tmp_path / "data"


def damage(root: Path, how: str) -> Path:
    """Damage the last file the loader reads, so the others have been read (and must be discarded) already."""
    path = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "bytes flipped":
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle: middle + 16]) + raw[middle + 16:])
    else:
        content = bytearray(gzip.decompress(raw))
        if how == "not uint8":
            content[2] = 0x0D  # IDX type code of float
        else:  # header promises one more label than the file holds
            content[4:8] = (int.from_bytes(content[4:8], "big") + 1).to_bytes(4, "big")
        path.write_bytes(gzip.compress(bytes(content)))
    return path


@pytest.mark.parametrize(("how", "expected"), [
    ("truncated", "the file is truncated or corrupt"),
    ("bytes flipped", None),  # the gzip CRC may or may not catch it; the checksum always does
    ("not uint8", "is not an IDX uint8 file"),
    ("header count", "holds 10000 bytes of data, its header promises 10001"),
])
def test_damaged_data_file_is_named_and_nothing_is_loaded(mnist_copy, how, expected):
    path = damage(mnist_copy, how)
    before = files_under(mnist_copy)
    with pytest.raises(UserError) as caught:
        data.load("mnist", root=mnist_copy, device="cpu")
    assert str(caught.value).startswith(f"checksum mismatch for {path}:")
    if expected is not None:  # without the checksum the format checks must catch it themselves
        with pytest.raises(UserError, match=str(path)) as caught:
            data.load("mnist", root=mnist_copy, device="cpu", verify=False)
        assert expected in str(caught.value)
    assert files_under(mnist_copy) == before  # nothing written next to the data (no cache, no partial copy)


def test_damaged_data_file_stops_a_run_before_training(mnist_copy, tmp_path, monkeypatch, capsys):
    path = damage(mnist_copy, "bytes flipped")
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    rc, out, err = main_in_process(["run", "--dataset", "mnist", "--data", str(mnist_copy), "--device", "cpu",
                                    "--results", "res"], capsys)
    assert rc == 2 and out == ""
    assert f"checksum mismatch for {path}" in one_error_line(err)
    assert files_under(tmp_path) == before  # no results folder: the run never started


# ---------------------------------------------------------------------------------------------------------------------
# Killed runs

RUN_ARGS = ["run", "--dataset", "synthetic", "--device", "cpu", "--epochs", "1", "--batch-size", "500",
            "--eval-every", "100", "--seeds", "0", "1", "2", "--results", "res"]


def check_store(store: Path) -> pd.DataFrame:
    """Every file loads, and what ``results.load`` calls complete is complete: a summary, a curve ending at its
    ledger, once."""
    if not store.exists():  # killed before it was made: nothing stored (results.load refuses a missing folder)
        return pd.DataFrame()
    for path in store.rglob("*.parquet"):
        pd.read_parquet(path)
    runs = results.load(store)
    if runs.empty:
        assert results.load(store, "curves").empty
        return runs
    curves = results.load(store, "curves")
    assert runs["run_id"].is_unique
    assert set(curves["run_id"]) == set(runs["run_id"])
    for _, run in runs.iterrows():
        curve = curves[curves["run_id"] == run["run_id"]]
        assert curve["examples"].is_unique and curve["examples"].max() == run["total_examples"] == 2000
    return runs


def test_killed_run_leaves_no_partial_result_and_a_rerun_completes_it(tmp_path, children):
    store = tmp_path / "res"

    def written_since(table: str, since: float, pattern: str = "*") -> bool:
        """A file (with ``pattern="*"`` also a temporary one being written) in a table, new since ``since``."""
        for path in (store / table).glob(pattern):
            try:
                if path.stat().st_mtime >= since:
                    return True
            except FileNotFoundError:  # a temporary file renamed meanwhile
                continue
        return False

    # 1. during start-up, before anything is stored
    child = children(RUN_ARGS, tmp_path)
    time.sleep(0.3)
    child.kill_group()
    assert check_store(store).empty
    # 2. the moment the first curve is written (before, while or just after the summary is written)
    start = time.time()
    child = children(RUN_ARGS, tmp_path)
    wait_for(lambda: written_since("curves", start), 120, "the first curve", child, poll=0.002)
    child.kill_group()
    assert len(check_store(store)) <= 1
    # 3. during the second seed, after a complete first run
    start = time.time()
    child = children(RUN_ARGS, tmp_path)
    wait_for(lambda: written_since("runs", start, "*.parquet"), 120, "the first summary", child)
    child.kill_group()
    assert 1 <= len(check_store(store)) < 3
    # the rerun skips what is stored and completes the rest: each seed once
    rc, out, err = children(RUN_ARGS, tmp_path).wait(timeout=180)
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 3
    runs = check_store(store)
    assert sorted(runs["seed"]) == [0, 1, 2]
    assert len(results.load(store, "curves")) == 3 * 2  # before and after the epoch, once per seed


def test_run_killed_between_curve_and_summary_is_not_complete(synthetic, tmp_path):
    """The exact state a kill between the two writes leaves (and a temporary file of a killed write)."""
    store = tmp_path / "res"
    run = protocols.conventional(synthetic, tiny_config(batch_size=500), 0, epochs=1)
    rid = results.save(run, synthetic, store)
    (store / "runs" / f"{rid}.parquet").unlink()
    (store / "runs" / f".{rid}.parquet.x1y2z3.tmp").write_bytes(b"PAR1 half a file")
    assert results.load(store).empty and results.load(store, "curves").empty
    assert not results.has_run(store, rid)


# ---------------------------------------------------------------------------------------------------------------------
# Concurrent writers


def fake_run(rid: str, writer: int) -> results.RunResult:
    curve = [{"run_id": rid, "examples": e, "test_acc": 0.1 * e, "writer": writer} for e in range(3)]
    return results.RunResult(curve, {"run_id": rid, "protocol": "fake", "seed": 0, "writer": writer})


def save_many(barrier, store: str, writer: int, dataset: data.Dataset) -> None:
    barrier.wait(timeout=60)
    for i in range(3):
        results.save(fake_run(f"w{writer}-r{i}", writer), dataset, store)
        results.save(fake_run("shared", writer), dataset, store)


def test_concurrent_writers_lose_and_duplicate_nothing(synthetic, tmp_path):
    writers = 4
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers)
    procs = [context.Process(target=save_many, args=(barrier, str(tmp_path), w, synthetic)) for w in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0] * writers
    runs = results.load(tmp_path)
    expected = {f"w{w}-r{i}" for w in range(writers) for i in range(3)} | {"shared"}
    assert sorted(runs["run_id"]) == sorted(expected)  # 12 distinct runs and the shared one, each once
    curves = results.load(tmp_path, "curves")
    assert curves.groupby("run_id").size().to_dict() == dict.fromkeys(expected, 3)
    shared = curves[curves["run_id"] == "shared"]
    assert shared["writer"].nunique() == 1  # one writer's whole file, never a mix of two
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------------------------------
# Determinism

TIMINGS = ["train_seconds", "eval_seconds", "wall_seconds", "total_train_seconds", "total_eval_seconds"]


def test_same_seed_gives_identical_metrics(mini):
    cfg = tiny_config(batch_size=50, augment=True, eval_every=0.5, eval_train=True)

    def run(seed: int) -> tuple[pd.DataFrame, dict]:
        result = protocols.subset_pretraining(mini, cfg, seed, subset_epochs=2, finetune_epochs=1, fraction=0.25)
        summary = {k: v for k, v in result.summary.items() if k not in TIMINGS}
        return pd.DataFrame(result.curve).drop(columns=["train_seconds", "eval_seconds"]), summary

    (first, first_summary), (again, again_summary) = run(0), run(0)
    assert len(first) >= 4
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    phases = [json.loads(s["phases"]) for s in (first_summary, again_summary)]
    for p in phases:
        for phase in p.values():
            del phase["train_seconds"], phase["eval_seconds"]
    assert phases[0] == phases[1]
    assert {k: v for k, v in first_summary.items() if k != "phases"} == {
        k: v for k, v in again_summary.items() if k != "phases"}
    other, _ = run(1)
    assert not math.isclose(other["test_loss"].iloc[-1], first["test_loss"].iloc[-1], rel_tol=1e-9)


# ---------------------------------------------------------------------------------------------------------------------
# A damaged results file


def test_damaged_results_file_is_named_and_the_others_load(synthetic, tmp_path):
    for i in range(3):
        results.save(fake_run(f"r{i}", 0), synthetic, tmp_path)
    bad_summary, bad_curve = tmp_path / "runs" / "r1.parquet", tmp_path / "curves" / "r2.parquet"
    bad_summary.write_bytes(b"not parquet at all")
    bad_curve.write_bytes(bad_curve.read_bytes()[:100])
    with pytest.warns(UserWarning, match=f"unreadable results file {bad_summary}"):
        runs = results.load(tmp_path)
    assert sorted(runs["run_id"]) == ["r0", "r2"]
    with pytest.warns(UserWarning, match=f"unreadable results file {bad_curve}"):
        curves = results.load(tmp_path, "curves")
    assert "r0" in set(curves["run_id"]) and "r2" not in set(curves["run_id"])


# ---------------------------------------------------------------------------------------------------------------------
# Subsets of an exact size (issue 35, item 3)


@pytest.fixture(scope="module")
def mnist_labels() -> torch.Tensor:
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the MNIST files are not in {REAL_DATA}")
    return data.load("mnist", root=REAL_DATA, device="cpu").y_train


@pytest.mark.parametrize(("k", "smaller"), [(7184, 7183), (7183, 7181), (1001, 1000), (59999, 1001), (10, 9)])
def test_subset_of_size_returns_exactly_k_stratified_and_nested(mnist_labels, k, smaller):
    """K = 7,184 is what q, the planner and run give MNIST cnn-simple at Q = 3: the subset holds exactly that many,
    each class its quota rounded down or up, and a smaller size of the same seed lies inside it."""
    chosen = subsets.subset_of_size(mnist_labels, k, 0)
    assert len(chosen) == k and len(set(chosen.tolist())) == k
    sizes = torch.bincount(mnist_labels).tolist()
    counts = torch.bincount(mnist_labels[chosen], minlength=10).tolist()
    for size, count in zip(sizes, counts, strict=True):
        assert k * size // 60000 <= count <= -(-k * size // 60000), (size, count)
    assert set(subsets.subset_of_size(mnist_labels, smaller, 0).tolist()) <= set(chosen.tolist())
    assert torch.equal(subsets.subset_of_size(mnist_labels, k, 0), chosen)  # reproducible


@pytest.mark.parametrize("stratified", [True, False])
def test_subset_of_size_refuses_more_than_the_set_holds(synthetic, stratified):
    labels = synthetic.y_train[:1000]
    with pytest.raises(UserError, match=r"subset size K=5000 exceeds the 1000 examples of the set: choose K <= 1000"):
        subsets.subset_of_size(labels, 5000, 0, stratified)
    assert len(subsets.subset_of_size(labels, 999, 0, stratified)) == 999


def test_reduced_parts_keep_the_examples_stored_runs_were_made_on(mnist_labels):
    """The beyond pages' runs were made on mnist-10001-2000 (drawn by fraction): it keeps its name and examples."""
    full = data.load("mnist", root=REAL_DATA, device="cpu")
    part = subsets.reduced(full, 10000, 2000)
    assert part.name == "mnist-10001-2000"
    assert torch.equal(part.x_train, full.x_train[subsets.subset_indices(mnist_labels, 10000 / 60000, 0)])


# ---------------------------------------------------------------------------------------------------------------------
# The Python API, fourth round (issue 35, item 5): raw TypeErrors and IndexErrors, and nonsense accepted


def api_calls_round_four(synthetic) -> dict:
    cfg = tiny_config()

    def small() -> data.Dataset:
        return data.Dataset(synthetic.spec, synthetic.x_train[:599], synthetic.y_train[:599], synthetic.x_test[:100],
                            synthetic.y_test[:100], synthetic.root)

    return {
        "target Q as text": (lambda: q.min_subset_size(23946, 10, "3"), "target Q must be a number > 0"),
        "target Q None": (lambda: q.min_subset_size(23946, 10, None), "target Q must be a number > 0"),
        "K as text": (lambda: q.overdetermination_ratio("10", 10, 100), "K must be a whole number >= 0 (got '10')"),
        "no phases": (lambda: protocols.run_phases(synthetic, cfg, [], 0, "x"),
                      "phases must be a non-empty list of Phase"),
        "phases None": (lambda: protocols.run_phases(synthetic, cfg, None, 0, "x"),
                        "phases must be a non-empty list of Phase"),
        "data as text": (lambda: protocols.conventional("synthetic", cfg, 0, 1),
                         "data must be a loaded Dataset, e.g. subsetlib.data.load('mnist') (got str)"),
        "lr as text": (lambda: protocols.RunConfig(lr="1e-3"),
                       "learning rate must be a finite number > 0 (got '1e-3')"),
        "eval_train_examples 1.5": (lambda: protocols.RunConfig(eval_train_examples=1.5),
                                    "eval_train_examples (None: all) must be a whole number >= 1 (got 1.5)"),
        "unit parsecs": (lambda: protocols.Phase("full", 1.0, 1, unit="parsecs"),
                         "unknown unit 'parsecs' of phase 'full': choose one of epochs, iterations"),
        "batch above the training set": (
            lambda: protocols.conventional(small(), tiny_config(batch_size=100_000), 0, 1, results_dir="res"),
            "batch size 100000 exceeds the 599 training examples of synthetic: choose batch_size 599 or less"),
    }


@pytest.mark.parametrize("case", sorted(api_calls_round_four(None)))
def test_python_api_fourth_round_refuses_with_a_message(case, synthetic, tmp_path, monkeypatch):
    call, expected = api_calls_round_four(synthetic)[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        call()
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing trained or stored


# ---------------------------------------------------------------------------------------------------------------------
# A diverged run is no result (issue 35, item 1)


@pytest.mark.parametrize("how", ["api", "cli", "stored before"])
def test_diverged_run_is_stopped_in_one_line_and_never_stored_or_loaded(how, mini, tmp_path, monkeypatch, capsys):
    store = tmp_path / "res"
    monkeypatch.chdir(tmp_path)
    if how == "cli":
        rc, out, err = main_in_process(["run", *SYN, "--lr", "1e30", "--epochs", "1", "--batch-size", "500",
                                        "--results", str(store)], capsys)
        assert rc == 2 and out == ""
        message = one_error_line(err)
    else:
        cfg = tiny_config(lr=1e30 if how == "api" else 1e-3, eval_train=True)
        if how == "stored before":  # as the code before this check stored it: a curve whose loss is NaN
            run = protocols.conventional(mini, cfg, 0, 1)
            run.curve[-1]["test_loss"] = math.nan
            results.save(run, mini, store)
        with pytest.raises(UserError) as caught:
            protocols.conventional(mini, cfg, 0, 1, results_dir=str(store))
        message = str(caught.value)
    assert "diverged: its test loss is nan at step " in message and "use a smaller learning rate than" in message
    if how == "stored before":
        assert f"stored in {store}: delete its runs/ and curves/ files" in message
    else:
        assert "nothing was stored" in message
        assert not list(store.rglob("*.parquet"))


# ---------------------------------------------------------------------------------------------------------------------
# Grid files that would write outside the repository (issue 35, item 2)

ESCAPES = {
    "results": ({"results": "../../probe-escape-results"}, "results: ../../probe-escape-results in "),
    "output_dir": ({"output_dir": "../../probe-escape-book"}, "output_dir: ../../probe-escape-book in "),
    "stage results_dir": ({"stage": {"results_dir": "../../../x"}},
                          "results_dir in stage 1 of {grid} is set by the grid's 'results:' key"),
    "stage folder parameter": ({"stage": {"other_dir": "../../../x"}}, "parameter other_dir ../../../x in stage 1"),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_grid_paths_that_leave_the_repository_are_refused(case, tmp_path, monkeypatch, capsys):
    change, expected = ESCAPES[case]
    notebook = write_notebook(tmp_path / "nb.ipynb", parameters=PARAMETERS + '\nother_dir = "."')
    stage = {"notebook": str(notebook), "output": "cell-{seed}.ipynb", "grid": {"seed": [0]},
             "parameters": change.get("stage", {})}
    spec = {"profile": "escape", "results": str(tmp_path / "res"), "output_dir": str(tmp_path / "book"),
            **{k: v for k, v in change.items() if k != "stage"}, "stages": [stage]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    expected = [expected.format(grid=path)] + ([] if case.startswith("stage results") else
                                               ["leads out of the repository", "or give an absolute path"])
    assert_refused_in_one_line(["batch", str(path), "--dry-run"], tmp_path, capsys, expected)  # dry: never writes
    assert not any(Path(p).exists() for p in ("/probe-escape-results", "/probe-escape-book", "/x"))


def test_grid_paths_absolute_are_taken_as_written(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "res"), "output_dir": str(tmp_path / "book"),
                                    "stages": [{"notebook": str(notebook), "output": "cell.ipynb"}]}))
    grid = grids.load_grid(path)
    assert grid.results == tmp_path / "res" and Path(grid.cells[0].output) == tmp_path / "book" / "cell.ipynb"


# ---------------------------------------------------------------------------------------------------------------------
# Checked before anything starts (issue 35, item 4)

TEACHER = str(Path(__file__).resolve().parent.parent / "notebooks" / "beyond_teacher_student.ipynb")
BEFORE_START = {
    "page device": (["page", TEACHER.replace("teacher_student", "growing"), "-p", "device", "tpu"],
                    ["parameter device: unknown device 'tpu': use auto, cpu, cuda or cuda:N"]),
    "page target Q out of reach": (["page", TEACHER, "-p", "k_train", "300", "-p", "target_qs", "[0.5, 64]"],
                                   ["target Q 64 needs K=", "but the task has 300: lower it or enlarge k_train"]),
    "grid target Q out of reach": (["batch", "GRID"], ["target Q 64.0 needs K=", "lower it or enlarge k_train",
                                                       "(stage 1 of"]),
    "bench unknown dataset": (["bench", "--dataset", "nosuch"], ["unknown dataset 'nosuch'"]),
    "bench batch above the set": (["bench", "--dataset", "synthetic", "--batch-size", "5000"],
                                  ["batch size 5000 exceeds the 2000 training examples of synthetic"]),
}


@pytest.mark.parametrize("case", sorted(BEFORE_START))
def test_checked_before_anything_starts_and_nothing_is_left(case, tmp_path, monkeypatch, capsys):
    argv, expected = BEFORE_START[case]
    monkeypatch.chdir(tmp_path)
    if argv[0] == "page":
        argv = [*argv, "-o", str(tmp_path / "out" / "page.ipynb"), "-p", "results_dir", str(tmp_path / "res")]
    if argv[0] == "batch":
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump({
            "results": str(tmp_path / "res"), "output_dir": str(tmp_path / "book"),
            "stages": [{"notebook": TEACHER, "output": "ts.ipynb",
                        "parameters": {"k_train": 300, "target_qs": [0.5, 64.0]}}]}))
        argv = ["batch", str(path)]
    assert_refused_in_one_line(argv, tmp_path, capsys, expected)


# ---------------------------------------------------------------------------------------------------------------------
# What a killed batch leaves behind (issue 35, item 6)


@pytest.mark.parametrize(("folder", "suffix"), [("book/experiments/study-v2", ".ipynb"),
                                                ("book/experiments/study-v2/sub", ".ipynb"), ("book", ".tmp")])
def test_a_killed_cells_temporary_notebook_never_becomes_a_page(folder, suffix, tmp_path):
    """The hidden file a batch cell writes its page into (left behind by SIGKILL until the cell runs again) is
    excluded from the book by _config.yml, the rule jupyter-book's globs in _toc.yml apply; a page is not."""
    from sphinx.util.matching import Matcher

    from subsetlib.io import temporary_path

    config = yaml.safe_load((Path(__file__).resolve().parent.parent / "_config.yml").read_text())
    excluded = Matcher(config["exclude_patterns"])
    leftover = temporary_path(tmp_path / folder / "k-2.ipynb", suffix).relative_to(tmp_path).as_posix()
    assert excluded(leftover), leftover
    assert not excluded(f"{folder}/k-2.ipynb")


@pytest.mark.parametrize("quiet", [True, False])
def test_no_leaked_semaphore_warning_after_a_kill(quiet, tmp_path):
    """A process that made a semaphore is killed: its resource tracker says nothing once the runner's filter is set
    (and, without it, would warn: the case this test can tell apart)."""
    script = ("import os, signal, multiprocessing\n"
              "from subsetlib.batch import quiet_resource_tracker\n"
              f"{'quiet_resource_tracker()' if quiet else ''}\n"
              "semaphore = multiprocessing.get_context('spawn').Semaphore()\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {k: v for k, v in child_env().items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([PYTHON, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    assert ("leaked semaphore" in done.stderr) is not quiet, done.stderr


# ---------------------------------------------------------------------------------------------------------------------
# Progress in a log file (issue 35, item 7)


@pytest.mark.parametrize("command", ["run", "bench", "batch"])
def test_commands_print_progress_lines_when_stderr_is_a_file(command, tmp_path, monkeypatch, capsys):
    """stderr captured here is not a terminal, as when a command's output goes to a log: progress comes as lines."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(tmp_path)
    argv, expected = {
        "run": (["run", *SYN, "--epochs", "2", "--batch-size", "500", "--results", "res"],
                ["subsetlib: conventional seed 0: 1.00 of 2.00 epoch-equivalents (phase full), test accuracy",
                 "subsetlib: conventional seed 0: 2.00 of 2.00 epoch-equivalents"]),
        "bench": (["bench", *SYN, "--steps", "3", "--batch-size", "50"],
                  ["subsetlib: round 1 of 1: the resident loop took", "subsetlib: round 1 of 1: the dataloader loop"]),
        "batch": (["batch", "GRID", "--workers", "1"],
                  ["subsetlib: grid progress: 1 cells started or queued (cell)",
                   "subsetlib: grid progress: 1 of 1 cells finished: cell.ipynb done after",
                   f"subsetlib: writing to the results directory {tmp_path / 'res'}, outside the repository"]),
    }[command]
    if command == "batch":
        grid = tmp_path / "grid.yaml"
        grid.write_text(yaml.safe_dump({"profile": "progress", "results": str(tmp_path / "res"),
                                        "output_dir": str(tmp_path / "book"), "stages": [
                                            {"notebook": str(write_notebook(tmp_path / "nb.ipynb")),
                                             "output": "cell.ipynb"}]}))
        argv[1] = str(grid)
    rc, _, err = main_in_process(argv, capsys)
    assert rc == 0, err
    for text in expected:
        assert text in err, err
