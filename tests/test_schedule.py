"""The cosine lr schedule of study v2, and the promise that adding it changed no stored run id."""

import hashlib
import json
from dataclasses import asdict

import pytest
import torch

from subsetlib import protocols
from subsetlib.errors import UserError
from subsetlib.train import lr_scheduler
from tests.conftest import tiny_config


def legacy_run_id(protocol: str, cfg: protocols.RunConfig, seed: int, **params) -> str:
    """The id formula before ``lr_schedule`` existed, written out by hand."""
    config = {k: v for k, v in asdict(cfg).items() if k != "lr_schedule"}
    key = json.dumps({"protocol": protocol, "cfg": config, "seed": seed, **params}, sort_keys=True, default=str)
    return f"{protocol}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def test_a_constant_schedule_keeps_the_stored_run_ids():
    cfg = protocols.RunConfig(dataset="mnist", eval_every=1.0, eval_dense=3, eval_train_examples=5000)
    assert protocols.run_id("conventional", cfg, 0, epochs=12) == legacy_run_id("conventional", cfg, 0, epochs=12)
    cosine = protocols.RunConfig(dataset="mnist", eval_every=1.0, lr_schedule="cosine")
    assert protocols.run_id("conventional", cosine, 0, epochs=12) != legacy_run_id("conventional", cosine, 0,
                                                                                     epochs=12)


def test_cosine_falls_to_zero_at_the_end_of_the_phase():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    scheduler = lr_scheduler(optimizer, "cosine", 10)
    seen = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen[4] == pytest.approx(0.5e-3)
    assert seen[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(seen, seen[1:], strict=False))
    assert lr_scheduler(optimizer, "constant", 10) is None


def test_an_unknown_schedule_is_a_user_error():
    with pytest.raises(UserError, match="lr schedule"):
        protocols.RunConfig(lr_schedule="step")


def test_each_phase_anneals_from_the_full_lr(mini, one_thread):
    """Two phases of a cosine run each start at lr 1e-3 and end at 0: seen through the optimizer the trainer gets."""
    seen = []

    def watching(ctx: protocols.PhaseContext) -> dict:
        protocols.epoch_trainer(ctx)
        seen.append((ctx.phase.name, ctx.optimizer.param_groups[0]["lr"]))
        return {}

    cfg = tiny_config(dataset=mini.name, lr_schedule="cosine", batch_size=100)
    phases = [protocols.Phase("subset", 0.5, 2), protocols.Phase("finetune", 1.0, 1)]
    protocols.run_phases(mini, cfg, phases, 0, "subset", trainers={"subset": watching, "finetune": watching})
    assert [name for name, _ in seen] == ["subset", "finetune"]
    assert all(lr == pytest.approx(0.0, abs=1e-12) for _, lr in seen)
