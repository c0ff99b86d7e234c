"""The verdict's numbers against scikit-learn's on fixed predictions, and its call-outs."""

import itertools
import random

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from tuning_core import recipe
from tuning_core.baseline import baselines_on_test
from tuning_core.judge import judge, judgement_text

LABELS = ["anger", "joy", "optimism", "sadness"]


def fixed_predictions(n=300, seed=7):
    rng = random.Random(seed)
    truth = [rng.choice([0, 0, 0, 1, 1, 3]) for _ in range(n)]  # class 2 never true
    probs, preds = [], []
    for t in truth:
        row = [rng.random() for _ in LABELS]
        if rng.random() < 0.6:
            row[t] += 2.0  # right 60% of the time or so
        total = sum(row)
        row = [v / total for v in row]
        probs.append(row)
        preds.append(max(range(len(row)), key=row.__getitem__))
    return truth, preds, probs


def test_metrics_match_scikit_learn():
    truth, preds, probs = fixed_predictions()
    m = recipe.classification_metrics(truth, preds, LABELS, positive="joy", probs=probs)
    assert 2 in preds and 2 not in truth  # a predicted class with no true rows
    present = sorted(set(truth))
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, preds), abs=5e-5)
    assert m["macro_f1"] == pytest.approx(
        f1_score(truth, preds, labels=present, average="macro"), abs=5e-5
    )
    assert m["weighted_f1"] == pytest.approx(
        f1_score(truth, preds, labels=list(range(4)), average="weighted", zero_division=0),
        abs=5e-5,
    )
    p, r, f, s = precision_recall_fscore_support(
        truth, preds, labels=list(range(4)), zero_division=0
    )
    for i, label in enumerate(LABELS):
        got = m["per_class"][label]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(
            (p[i], r[i], f[i]), abs=5e-5
        )
        assert got["support"] == s[i]
    assert m["f1"] == m["per_class"]["joy"]["f1"]
    assert m["confusion"] == confusion_matrix(truth, preds, labels=list(range(4))).tolist()


def test_expected_calibration_error_by_hand():
    # two bins used: 0.95 (2 rows, 1 right) and 0.55 (2 rows, 2 right)
    confidence = [0.95, 0.95, 0.55, 0.55]
    ece = recipe.calibration_error(confidence, [0, 1, 0, 1], [0, 0, 0, 1])
    assert ece == pytest.approx((2 * abs(0.5 - 0.95) + 2 * abs(1.0 - 0.55)) / 4)
    # a model right exactly as often as it says is calibrated
    truth, preds, probs = fixed_predictions(n=2000)
    conf = np.array([max(r) for r in probs])
    right = np.array(truth) == np.array(preds)
    edges = np.linspace(0, 1, 16)
    expected = sum(
        abs(right[(conf >= a) & (conf < b)].mean() - conf[(conf >= a) & (conf < b)].mean())
        * ((conf >= a) & (conf < b)).sum()
        for a, b in itertools.pairwise(edges)
        if ((conf >= a) & (conf < b)).any()
    ) / len(conf)
    assert recipe.calibration_error(conf.tolist(), truth, preds) == pytest.approx(expected)


def test_confident_errors_come_most_confident_first():
    texts = ["a", "b", "c", "d"]
    probs = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]
    errors = recipe.confident_errors(texts, [1, 0, 0, 1], probs, ["x", "y"], k=2)
    assert [e["text"] for e in errors] == ["a", "b"]
    assert errors[0] == {"row": 0, "text": "a", "true": "y", "predicted": "x", "confidence": 0.9}


def report_for(truth, preds, probs, fit_scale=1.0):
    test = recipe.classification_metrics(truth, preds, LABELS, probs=probs)
    test["confident_errors"] = recipe.confident_errors(
        [f"text {i}" for i in range(len(truth))], truth, probs, LABELS
    )
    val = recipe.classification_metrics(truth, preds, LABELS)
    fit = {**val, "macro_f1": min(1.0, val["macro_f1"] * fit_scale)}
    return {"metric": "macro_f1", "test": test, "validation": val, "train_fit": fit}


def test_verdict_deltas_gap_and_call_outs():
    truth, preds, probs = fixed_predictions()
    report = report_for(truth, preds, probs, fit_scale=2.0)
    verdict = judge(report, {"majority": 0.2, "tfidf_lr": 0.99})
    official = report["test"]["macro_f1"]
    assert verdict["official"] == official
    assert verdict["deltas"] == {
        "majority": round(official - 0.2, 4),
        "tfidf_lr": round(official - 0.99, 4),
    }
    assert verdict["overfitting"] and verdict["fit_gap"] > 0.1
    assert len(verdict["confident_errors"]) == 20
    calls = " ".join(verdict["calls"])
    assert "Overfitting" in calls and "does not beat TF-IDF" in calls
    text = judgement_text(verdict)
    assert "Confusion matrix" in text and "most confident errors" in text
    assert "majority class 0.2000" in text
    calm = judge(report_for(truth, preds, probs), {"majority": 0.2, "tfidf_lr": 0.1})
    assert not calm["overfitting"] and not any("TF-IDF" in c for c in calm["calls"])


def test_baselines_on_test_score_the_test_rows():
    rng = random.Random(0)
    words = {"pos": ["great", "love", "fine"], "neg": ["awful", "hate", "bad"]}

    def rows(n):
        names = [rng.choice(["pos", "pos", "neg"]) for _ in range(n)]
        return [" ".join(rng.choices(words[y], k=4)) for y in names], names

    splits = {"train": rows(120), "test": rows(60)}
    out = baselines_on_test(splits, ["neg", "pos"], "macro_f1")
    truth = [1 if y == "pos" else 0 for y in splits["test"][1]]
    majority = f1_score(truth, [1] * len(truth), labels=sorted(set(truth)), average="macro")
    assert out["majority"] == pytest.approx(majority, abs=5e-5)
    assert out["tfidf_lr"] == 1.0  # the words give the label away
    assert out["test_rows"] == 60
