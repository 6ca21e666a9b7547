"""What changed from the first study: its verdicts next to study v2's, on hand-made tables of both."""

import pandas as pd

from subsetlib import claims, first_study
from subsetlib.study2_report import CLOSE_CLAIM, Q_CLAIM


def first_row(question: str, dataset: str, verdict: str) -> dict:
    return {"claim": f"{question} ({dataset})" if dataset else question, "question": question, "dataset": dataset,
            "verdict": verdict}


def v2_row(claim: str, dataset: str, metric: str, verdict: str) -> dict:
    return {"claim": claim, "dataset": dataset, "metric": metric, "verdict": verdict}


Q_FIRST = "A subset is representative once Q sufficiently exceeds 1"
EQUAL_FIRST = "Subset pretraining then fine-tuning equals conventional results"
EQUAL_V2 = "Results equal to conventional training (equal compute)"


def test_a_verdict_that_went_the_wrong_way_is_listed_with_its_reason():
    """The first study's Q-threshold rule passed under-trained arms ("reproduced"); study v2 cannot judge it."""
    first = pd.DataFrame([first_row(Q_FIRST, "MNIST", claims.REPRODUCED),
                          first_row("The full-set loss minimum is close to its subsets' minima", "MNIST",
                                    claims.NOT_TESTABLE)])
    v2 = pd.DataFrame([v2_row(Q_CLAIM, "MNIST", m, claims.NOT_TESTABLE) for m in ("training loss", "test accuracy")]
                      + [v2_row(CLOSE_CLAIM, "MNIST", m, f"{claims.NOT_TESTABLE} (no converged pairs)")
                         for m in ("training loss", "test accuracy")])
    changes = first_study.verdict_changes(first, v2, pending=[]).set_index("claim")
    q = changes.loc[f"{Q_FIRST} (MNIST)"]
    assert (q["first"], q["v2"], q["status"]) == (claims.REPRODUCED, claims.NOT_TESTABLE, "changed")
    assert "under-trained arms pass" in q["why"]
    close = changes.loc["The full-set loss minimum is close to its subsets' minima (MNIST)"]
    assert close["status"] == "stayed" and close["why"] == "the same verdict"  # no blank cell
    assert first_study.changes_sentence(changes) == ("Of the first study's 2 verdicts, 1 changed, 1 stayed and 0 are "
                                                     "not asked again.")


def test_metrics_that_disagree_are_each_named_and_pending_datasets_wait():
    first = pd.DataFrame([first_row(EQUAL_FIRST, "MNIST", claims.PARTLY),
                          first_row(EQUAL_FIRST, "CIFAR-10 (JPEG) with augmentation", claims.REFUTED),
                          first_row(EQUAL_FIRST, "Fashion-MNIST", claims.REFUTED)])
    v2 = pd.DataFrame([v2_row(EQUAL_V2, "MNIST", "training loss", claims.REPRODUCED),
                       v2_row(EQUAL_V2, "MNIST", "test accuracy", "inconclusive at 5 seeds"),
                       v2_row(EQUAL_V2, "CIFAR-10 (JPEG)", "training loss", claims.NOT_TESTABLE),
                       v2_row(EQUAL_V2, "CIFAR-10 (JPEG)", "test accuracy", claims.NOT_TESTABLE)])
    changes = first_study.verdict_changes(first, v2, pending=["Fashion-MNIST"])
    mnist, cifar, fashion = changes.to_dict("records")
    assert mnist["v2"] == "training loss: reproduced; test accuracy: inconclusive at 5 seeds"
    assert mnist["status"] == "changed"
    assert cifar["v2"] == claims.NOT_TESTABLE and cifar["why"].endswith(" The first study ran it with "
                                                                        "augmentation, study v2 without.")
    assert fashion["v2"] == "not in yet" and fashion["status"] == "not in yet"
    assert first_study.changes_sentence(changes).endswith("2 changed, 0 stayed and 0 are not asked again; 1 waits "
                                                          "for study v2's runs that are not all stored yet.")


def test_claims_study_v2_does_not_ask_again_or_neither_ran():
    first = pd.DataFrame([first_row("Subset pretraining saves compute at all", "MNIST", claims.REFUTED),
                          first_row("Larger models", "", claims.NOT_RUN)])
    changes = first_study.verdict_changes(first, pd.DataFrame(columns=["claim", "dataset", "metric", "verdict"]),
                                          pending=[])
    saves, larger = changes.to_dict("records")
    assert saves["status"] == "not asked again" and "equal compute" in saves["why"]
    assert larger["v2"] == claims.NOT_RUN and larger["status"] == "stayed"
