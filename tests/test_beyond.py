"""Beyond the paper: full-batch L-BFGS subset pretraining (its cost ledger above all) and the teacher-student task.

Small and on CPU: a 500-example part of the synthetic set and a teacher with a few dozen parameters.
"""

import json
import math

import pytest
import torch

from subsetlib import accounting, data, lbfgs, preprocess, protocols, results, study, subsets
from subsetlib import second_order as so
from subsetlib import teacher as T
from subsetlib import tensor_tasks as TT
from subsetlib.errors import UserError
from subsetlib.models import build_model
from subsetlib.train import FlopMeter, Ledger, resolve_numerics


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(1)
    return subsets.reduced(data.load("synthetic", device="cpu"), 500, 200)


class ForwardCounter:
    """Counts the calls and examples that really reach the model's forward (a hook, not a mock of the closure)."""

    def __init__(self, model: torch.nn.Module):
        self.calls, self.examples, self.sizes = 0, 0, []
        model.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        self.calls += 1
        self.examples += len(inputs[0])
        self.sizes.append(len(inputs[0]))


def _lbfgs_phase(small, iterations: int, chunk_size: int):
    torch.manual_seed(0)
    model = build_model("cnn-simple", small.spec.shape, 10)
    counter = ForwardCounter(model)
    cfg = protocols.RunConfig(dataset=small.name)
    indices = subsets.subset_indices(small.y_train, 0.2, 0)
    ledger, flops = Ledger(), FlopMeter(model, small.spec.shape, 10)
    counter.calls = counter.examples = 0  # FlopMeter probes a deep copy; only the real model counts from here on
    phase = protocols.Phase("lbfgs", 0.2, iterations, unit="iterations")
    numerics = resolve_numerics(cfg.precision, cfg.channels_last, small.device)
    ctx = protocols.PhaseContext(model, None, small, indices, phase, cfg, None, ledger, flops, numerics, [],
                                 lambda: None)
    info = so.lbfgs_trainer(chunk_size=chunk_size)(ctx)
    return model, counter, ledger, flops, info, len(indices)


@pytest.mark.parametrize("chunk_size", [4096, 37])
def test_lbfgs_ledger_counts_every_evaluation(small, chunk_size):
    model, counter, ledger, flops, info, k = _lbfgs_phase(small, 6, chunk_size)
    chunks = math.ceil(k / chunk_size)
    assert info["lbfgs_iterations_done"] == 6 and ledger.steps == 6
    assert counter.examples == ledger.examples == k * info["closure_evaluations"]
    assert counter.calls == chunks * info["closure_evaluations"]
    assert info["closure_evaluations"] >= 6  # at least one line-search trial per iteration
    assert info["repeated_evaluations_reused"] >= 5  # LBFGS.step re-asks for the point it ended on: not recounted
    expected = sum(flops(size) for size in counter.sizes)
    assert ledger.flops == pytest.approx(expected) and ledger.flops > 0
    assert ledger.train_seconds > 0


def test_chunked_gradient_is_the_full_batch_gradient(small):
    torch.manual_seed(0)
    model = build_model("cnn-simple", small.spec.shape, 10)
    x, y = preprocess.normalize(small.x_train[:100], small.spec), small.y_train[:100]
    grads = []
    for chunk in (100, 7):
        loss = lbfgs.FullBatchLoss(model, x, y, Ledger(), lambda k: 0.0, chunk)()
        grads.append((loss.item(), torch.cat([p.grad.reshape(-1) for p in model.parameters()])))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)


def test_lbfgs_subset_pretraining_run_works_with_results_and_accounting(small, tmp_path):
    cfg = protocols.RunConfig(dataset=small.name, eval_every=1.0)
    run = so.lbfgs_subset_pretraining(small, cfg, 0, 8, 1, fraction=0.2, results_dir=tmp_path)
    lbfgs_rows = [r for r in run.curve if r["phase"] == "lbfgs"]
    assert lbfgs_rows[-1]["subset_loss"] < lbfgs_rows[0]["subset_loss"] - 0.1  # the loss falls
    assert run.summary["protocol"] == "lbfgs-subset"
    assert results.has_run(tmp_path, run.summary["run_id"])
    again = so.lbfgs_subset_pretraining(small, cfg, 0, 8, 1, fraction=0.2, results_dir=tmp_path)  # loaded, not rerun
    assert again.summary["wall_seconds"] == run.summary["wall_seconds"]
    phases = json.loads(run.summary["phases"])
    assert phases["lbfgs"]["examples"] == phases["lbfgs"]["K"] * run.summary["closure_evaluations"]
    assert phases["finetune"]["examples"] == len(small.y_train)
    assert (phases["lbfgs"]["iterations"], phases["finetune"]["epochs"]) == (8, 1)  # each phase's length in its unit
    assert "epochs" not in phases["lbfgs"]
    assert run.summary["total_examples"] == run.curve[-1]["examples"]
    conventional = protocols.conventional(small, cfg, 0, 1)
    results.save(conventional, small, tmp_path)
    runs, curves = results.load(tmp_path), results.load(tmp_path, "curves")
    assert set(runs["protocol"]) == {"lbfgs-subset", "conventional"}
    table = study.analyse(runs, curves)["costs"]
    assert table[table["protocol"] == "conventional"]["reached"].all()
    budgets = accounting.fixed_budgets(runs)
    assert len(budgets) == 2 and budgets["budget_epoch_equivalents"].gt(0).all()


def test_bad_input_is_a_user_error(small):
    cfg = protocols.RunConfig(dataset=small.name)
    with pytest.raises(UserError, match="exactly one"):
        so.lbfgs_subset_pretraining(small, cfg, 0, 5, 1, fraction=0.2, target_q=2.0)
    with pytest.raises(UserError, match="lbfgs_iterations"):
        so.lbfgs_subset_pretraining(small, cfg, 0, 0, 1, fraction=0.2)
    with pytest.raises(UserError, match="train_size"):
        subsets.reduced(small, 10**6, 10)
    with pytest.raises(UserError, match="chunk_size"):
        lbfgs.FullBatchLoss(torch.nn.Linear(1, 1), torch.zeros(1, 1), torch.zeros(1), Ledger(), lambda k: 0.0, 0)


def test_reduced_set_is_stratified_and_renamed(small):
    assert small.name == "synthetic-500-200" and len(small.y_train) == 500 and len(small.y_test) == 200
    assert torch.bincount(small.y_train).tolist() == [50] * 10
    assert "stratified part" in small.root


# ---------------------------------------------------------------------------------------------------------------------
# Teacher-student


def test_teacher_student_recovers_the_teacher():
    task = TT.teacher_task(inputs=6, hidden=6, outputs=3, k_train=400, k_test=300, seed=0)
    assert task.count_parameters() == (6 + 1) * 6 + (6 + 1) * 3
    student = task.student(1)
    start, _ = TT.loss_on(student, task)
    fitted = TT.fit(student, task, task.x_train, task.y_train, 1500)
    end, _ = TT.loss_on(student, task)
    assert end < 1e-9 * start  # the known minimum: zero
    assert TT.loss_on(student, task, "test")[0] < 1e-8  # it computes the teacher's function off the training set too
    assert TT.aligned_distance(student, task.teacher) < 1e-3  # and has the teacher's parameters, up to symmetry
    assert fitted.examples == 400 * fitted.evaluations and fitted.trajectory[-1][1] == pytest.approx(end, abs=1e-12)


def test_aligned_distance_sees_through_permutation_and_sign():
    torch.manual_seed(0)
    net = TT.mlp(3, 5, 2)
    twin = TT.mlp(3, 5, 2)
    perm, sign = torch.tensor([2, 0, 4, 1, 3]), torch.tensor([1.0, -1, 1, -1, -1], dtype=TT.DTYPE)
    with torch.no_grad():
        twin[0].weight.copy_(net[0].weight[perm] * sign[:, None])
        twin[0].bias.copy_(net[0].bias[perm] * sign)
        twin[2].weight.copy_(net[2].weight[:, perm] * sign)
        twin[2].bias.copy_(net[2].bias)
    x = torch.randn(10, 3, dtype=TT.DTYPE)
    torch.testing.assert_close(twin(x), net(x))
    assert TT.aligned_distance(twin, net) < 1e-12
    plain = lbfgs.flat(twin.parameters()) - lbfgs.flat(net.parameters())
    assert plain.norm() > 0.1  # the plain distance is fooled by the symmetry


def test_subset_minimum_study_low_q_interpolates_high_q_finds_the_full_minimum():
    task = TT.teacher_task(inputs=6, hidden=6, outputs=3, k_train=400, k_test=200, seed=0)
    cfg = T.MinimumStudyConfig(task.name, task.root, max_iterations=800, continue_iterations=800)
    runs = {r.summary["target_q"]: r.summary for r in T.subset_minimum_study(task, cfg, 0, [0.5, 8])}
    low, high, full = runs[0.5], runs[8], runs[None]
    assert low["Q"] == pytest.approx(low["K"] * low["M"] / low["P"]) and low["Q"] >= 0.5
    assert low["subset_loss"] < 1e-6 < low["full_loss_at_subset_min"]  # fewer equations than unknowns: it interpolates
    assert high["excess_full_loss"] < 1e-6 and high["param_distance_to_teacher"] < 1e-2
    assert full["cost_to_full_min_ratio"] == 1.0 and high["cost_to_full_min_examples"] > 0
    assert len({r["run_id"] for r in runs.values()}) == 3


def test_study_errors_name_the_fix():
    task = TT.teacher_task(inputs=3, hidden=3, outputs=1, k_train=50, k_test=20)
    with pytest.raises(UserError, match="enlarge k_train"):
        T.subset_for_q(task, 100.0, 0)
    with pytest.raises(UserError, match="tabular"):
        TT.tabular_task("iris-does-not-exist")
    with pytest.raises(UserError, match="noise"):
        TT.teacher_task(noise=-1)


def test_tabular_task_when_scikit_learn_is_there():
    pytest.importorskip("sklearn")
    task = TT.tabular_task("breast-cancer", hidden=4)
    assert task.loss == "ce" and task.outputs == 2 and task.inputs == 30
    assert len(task.y_train) + len(task.y_test) == 569
    assert abs(task.x_train.mean().item()) < 1e-6
