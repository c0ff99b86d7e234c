"""The quick baseline (tuning_core.baseline): majority class and TF-IDF + logistic regression."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tiny import sentiment_rows

from tuning_core.baseline import run_baseline, stratified_sample

EMOTION = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweeteval" / "emotion"


def crafted(n_a: int = 30, n_b: int = 10, n_c: int = 10):
    labels = ["a"] * n_a + ["b"] * n_b + ["c"] * n_c
    texts = [f"row {i} says {y}" for i, y in enumerate(labels)]
    return texts, labels


def test_majority_scores_exactly():
    texts, labels = crafted()
    splits = {"train": (texts, labels), "validation": (["x", "y", "z", "w"], ["a", "b", "b", "c"])}
    acc = run_baseline(splits, "accuracy", folds=5)
    # every stratified fold holds 6 a, 2 b, 2 c: the majority ("a") is right 6 times in 10
    assert acc["majority"]["label"] == "a"
    assert acc["majority"]["cv_scores"] == [0.6] * 5
    assert acc["majority"]["cv_mean"] == 0.6 and acc["majority"]["cv_std"] == 0.0
    assert acc["majority"]["validation"] == 0.25
    f1 = run_baseline(splits, "macro_f1", folds=5)
    # F1 of "a" = 2 * 0.6 * 1 / 1.6 = 0.75; "b" and "c" 0: macro 0.25 (validation: 0.4 / 3)
    assert f1["majority"]["cv_mean"] == 0.25
    assert f1["majority"]["validation"] == round(0.4 / 3, 4)
    assert f1["folds"] == 5 and f1["rows_used"] == 50 and not f1["sampled"]
    assert f1["metric"] == "macro_f1" and f1["seconds"] >= 0


def test_tfidf_beats_the_majority_on_learnable_data():
    rows = sentiment_rows(40)
    val = sentiment_rows(10, seed=5)
    splits = {
        "train": ([t for t, _ in rows], [y for _, y in rows]),
        "validation": ([t for t, _ in val], [y for _, y in val]),
    }
    result = run_baseline(splits, "macro_f1")
    tfidf, majority = result["tfidf_lr"], result["majority"]
    assert tfidf["cv_mean"] > majority["cv_mean"] + 0.3
    assert tfidf["validation"] > majority["validation"] + 0.3
    assert len(tfidf["cv_scores"]) == 5 and tfidf["cv_std"] >= 0
    assert tfidf["class_weight"] == "balanced" and "char_wb 2-5" in tfidf["features"]
    assert not result["stopped_early"] and result["notes"] == []
    assert run_baseline(splits, "accuracy")["tfidf_lr"]["class_weight"] is None


def test_sampling_and_the_time_budget():
    texts, labels = crafted(300, 100, 3)
    splits = {"train": (texts, labels), "validation": (texts[:50], labels[:50])}
    result = run_baseline(splits, "macro_f1", max_rows=60, time_budget_s=0)
    assert result["sampled"] and result["rows_used"] == 60 and result["rows_total"] == 403
    assert result["folds"] == 1 and result["folds_planned"] == 5 and result["stopped_early"]
    assert result["tfidf_lr"]["validation"] is None
    assert len(result["tfidf_lr"]["cv_scores"]) == 1
    notes = " ".join(result["notes"])
    assert "sample of 60 of 403 rows" in notes
    assert "stopped after 1 of 5 folds" in notes and "validation score skipped" in notes
    again = run_baseline(splits, "macro_f1", max_rows=60, time_budget_s=0)
    assert again["majority"] == result["majority"]  # same seed, same sample, same folds


def test_stratified_sample_keeps_shares_and_rare_labels():
    labels = ["a"] * 700 + ["b"] * 297 + ["c"] * 3
    rows = stratified_sample(labels, 100, seed=1)
    assert len(rows) == 100 and rows == sorted(rows)
    assert Counter(labels[i] for i in rows) == {"a": 69, "b": 29, "c": 2}
    assert rows == stratified_sample(labels, 100, seed=1)
    assert rows != stratified_sample(labels, 100, seed=2)
    assert stratified_sample(labels[:10], 100, seed=1) == list(range(10))


def test_degenerate_inputs():
    one_label = run_baseline({"train": (["a", "b", "c", "d"], ["x"] * 4)}, "accuracy")
    assert one_label["folds"] == 0 and one_label["tfidf_lr"]["cv_mean"] is None
    assert one_label["majority"]["cv_mean"] is None
    assert "nothing to cross-validate" in one_label["notes"][0]
    with pytest.raises(ValueError, match="metric"):
        run_baseline({"train": (["a"], ["x"])}, "f1_of_irony")


def test_import_does_not_load_sklearn():
    code = (
        "import sys, tuning_core.baseline; "
        "sys.exit(1 if any(m in sys.modules for m in ('sklearn', 'scipy', 'torch')) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["label"] for r in rows]


@pytest.mark.skipif(not EMOTION.exists(), reason=f"real data not found at {EMOTION}")
def test_tweeteval_emotion_sampled():
    splits = {
        "train": read_csv(EMOTION / "train.csv"),
        "validation": read_csv(EMOTION / "val.csv"),
    }
    result = run_baseline(splits, "macro_f1", max_rows=3000)
    assert result["sampled"] and result["rows_used"] == 3000
    # full data reaches ~0.61 on validation (BASELINES.md: 66.1 on test); majority ~0.15
    assert 0.14 <= result["majority"]["validation"] <= 0.16
    assert result["tfidf_lr"]["validation"] > 0.55
    assert result["tfidf_lr"]["cv_mean"] > 0.55
    assert result["seconds"] < 20


def test_no_cross_validation_when_every_label_is_unique():
    from tuning_core.baseline import run_baseline

    texts = [f"text number {i}" for i in range(30)]
    result = run_baseline({"train": (texts, [str(i) for i in range(30)])}, "macro_f1")
    assert result["tfidf_lr"]["cv_mean"] is None and result["notes"]
