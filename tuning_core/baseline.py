"""A quick baseline before any fine-tuning: the majority class and TF-IDF + logistic regression.

`run_baseline(splits, metric)` scores both with stratified K-fold cross-validation on the
training rows (a stratified, fixed-seed sample of at most `max_rows`), reports the mean and
standard deviation over the folds, and the score on the validation split (a model fit on the
whole sample; validation itself sampled to at most `max_rows`). Scores use the recipe's own
definitions (`recipe.classification_metrics`), so they compare with the fine-tuned model's.

Features: word 1-2 grams and character 2-5 grams within word boundaries (`char_wb`), hashed
once for all rows (`HashingVectorizer`, stateless, so nothing leaks across folds), then TF-IDF
weights (sublinear tf) fit on each fold's training part; logistic regression with C=10 and,
for macro-F1, balanced class weights (what won on TweetEval emotion in BASELINES.md). The
whole run stays within `time_budget_s`: folds stop when the next one would not fit, and the
validation score is skipped when its fit would not.

scikit-learn is imported inside the function: `import tuning_core` stays light.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from typing import Any

import numpy as np

from tuning_core import recipe

C = 10.0
MIN_DF = 2
HASH_FEATURES = 2**20
METRICS = ("macro_f1", "accuracy", "f1")
FEATURES = (
    "tf-idf (sublinear tf) of word 1-2 grams + char_wb 2-5 grams, hashed (2^20 each), "
    "n-grams in at least 2 training rows"
)


def stratified_sample(labels: list[str], max_rows: int, seed: int, minimum: int = 2) -> list[int]:
    """Row indices of a stratified sample of about `max_rows` rows (all rows when fewer).

    Each label keeps its share (largest remainders fill up to `max_rows`) and at least
    `minimum` rows where it has them, so rare labels stay in the sample. Sorted indices.
    """
    n = len(labels)
    if n <= max_rows:
        return list(range(n))
    by_label: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    share = max_rows / n
    quota = {y: max(min(len(r), minimum), math.floor(len(r) * share)) for y, r in by_label.items()}
    left = max_rows - sum(quota.values())
    while left < 0:  # the minimums overshot: take the excess from the largest labels
        largest = max(quota, key=lambda y: (quota[y], y))
        quota[largest] -= 1
        left += 1
    remainders = sorted(by_label, key=lambda y: (-(len(by_label[y]) * share % 1), y))
    for y in remainders:
        if left <= 0:
            break
        if quota[y] < len(by_label[y]):
            quota[y] += 1
            left -= 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for y in sorted(by_label):
        rows = np.array(by_label[y])
        chosen += rows[rng.permutation(len(rows))[: quota[y]]].tolist()
    return sorted(chosen)


def _score(
    metric: str, y_true: list[int], y_pred: list[int], labels: list[str], positive=None
) -> float:
    return float(recipe.classification_metrics(y_true, y_pred, labels, positive)[metric])


def _summary(scores: list[float]) -> tuple[float | None, float | None]:
    if not scores:
        return None, None
    return round(float(np.mean(scores)), 4), round(float(np.std(scores)), 4)


def _skeleton(
    metric: str, seed: int, rows_total: int, rows_used: int, notes: list[str], **tfidf: Any
) -> dict[str, Any]:
    """A baseline result with nothing measured yet: both blocks with None scores."""
    return {
        "metric": metric,
        "positive_label": None,
        "seed": seed,
        "rows_total": rows_total,
        "rows_used": rows_used,
        "sampled": rows_used < rows_total,
        "folds": 0,
        "folds_planned": 0,
        "validation_rows": 0,
        "stopped_early": False,
        "seconds": 0.0,
        "notes": notes,
        "majority": {
            "label": None,
            "cv_mean": None,
            "cv_std": None,
            "cv_scores": [],
            "validation": None,
        },
        "tfidf_lr": {
            "cv_mean": None,
            "cv_std": None,
            "cv_scores": [],
            "validation": None,
            "features": FEATURES,
            "fold_seconds": None,
            **tfidf,
        },
    }


def run_baseline(
    splits: dict[str, tuple[list[str], list[str]]],
    metric: str,
    seed: int = 42,
    max_rows: int = 20000,
    folds: int = 5,
    time_budget_s: float = 30,
    positive: str | None = None,
    task: str = "single_label_classification",
    label_format: str | None = None,
) -> dict[str, Any]:
    """Majority-class and TF-IDF + logistic-regression scores for `metric` ("macro_f1",
    "accuracy", or "f1": the F1 of class `positive`).

    Returns {"metric", "seed", "rows_total", "rows_used", "sampled", "folds" (completed),
    "folds_planned", "validation_rows", "stopped_early", "seconds", "notes",
    "majority": {"label", "cv_mean", "cv_std", "cv_scores", "validation"},
    "tfidf_lr": {"cv_mean", "cv_std", "cv_scores", "validation", "features", "C",
    "class_weight", "fold_seconds"}}; scores are in [0, 1] with 4 decimals, None where not
    measured (no validation split, the time budget ran out, or fewer than two labels / four
    rows to cross-validate: then both blocks keep their keys with None scores).
    """
    if task == recipe.TOKEN_TASK:
        return _token_baseline(splits, metric, seed, folds)
    if task == recipe.INSTRUCT_TASK:  # the base model itself, scored by the run
        empty = {"cv_mean": None, "cv_std": None, "cv_scores": [], "validation": None}
        return {
            "metric": metric,
            "task": task,
            "seed": seed,
            "notes": [
                "the base model, untuned, is the baseline: the run scores it on the same test "
                "rows as the tuned model"
            ],
            "majority": {**empty, "label": None},
            "tfidf_lr": dict(empty),
        }
    if task != "single_label_classification":
        return _other_task_baseline(
            splits, task, metric, label_format, seed, max_rows, folds, time_budget_s
        )
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    if (metric == "f1") != (positive is not None):
        raise ValueError("metric 'f1' goes with a positive label, and only it")
    started = time.monotonic()
    texts, labels = splits["train"]
    notes: list[str] = []
    rows = stratified_sample(labels, max_rows, seed)
    x = [texts[i] for i in rows]
    y_names = [labels[i] for i in rows]
    label_list = sorted(set(labels) | {y for _t, ys in splits.values() for y in ys})
    label_id = {name: i for i, name in enumerate(label_list)}
    y = np.array([label_id[v] for v in y_names], dtype=np.int64)
    counts = Counter(y.tolist())
    result = _skeleton(
        metric,
        seed,
        len(texts),
        len(rows),
        notes,
        C=C,
        class_weight="balanced" if metric != "accuracy" else None,
    )
    result["positive_label"] = positive
    if result["sampled"]:
        notes.append(
            f"trained on a stratified sample of {len(rows):,} of {len(texts):,} rows (seed {seed})"
        )
    val_x: list[str] = []
    val_y = np.empty(0, dtype=np.int64)
    if splits.get("validation") and splits["validation"][0]:
        vt, vl = splits["validation"]
        vrows = stratified_sample(vl, max_rows, seed)
        val_x = [vt[i] for i in vrows]
        val_y = np.array([label_id[vl[i]] for i in vrows], dtype=np.int64)
        result["validation_rows"] = len(vrows)
        if len(vrows) < len(vt):
            notes.append(f"validation scored on a stratified sample of {len(vrows):,} rows")
    if len(counts) < 2 or len(rows) < 4 or max(counts.values()) < 2:
        notes.append(
            "fewer than two labels, four rows, or two rows of any label: nothing to cross-validate"
        )
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    from sklearn.model_selection import StratifiedKFold

    n_folds = max(2, min(folds, max(counts.values()), len(rows) // 2))
    result["folds_planned"] = n_folds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has only k members"
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        fold_rows = list(splitter.split(np.zeros(len(y)), y))

    # -- majority class
    def majority_of(ids: np.ndarray) -> int:
        c = Counter(ids.tolist())
        return min(c, key=lambda k: (-c[k], k))

    majority_scores = []
    for train_idx, test_idx in fold_rows:
        guess = majority_of(y[train_idx])
        majority_scores.append(
            _score(metric, y[test_idx].tolist(), [guess] * len(test_idx), label_list, positive)
        )
    overall = majority_of(y)
    mean, std = _summary(majority_scores)
    result["majority"] = {
        "label": label_list[overall],
        "cv_mean": mean,
        "cv_std": std,
        "cv_scores": [round(s, 4) for s in majority_scores],
        "validation": (
            round(_score(metric, val_y.tolist(), [overall] * len(val_y), label_list, positive), 4)
            if len(val_y)
            else None
        ),
    }

    # -- TF-IDF + logistic regression
    class_weight = "balanced" if metric != "accuracy" else None
    matrix = _features(x)
    scores: list[float] = []
    fold_seconds: list[float] = []
    for train_idx, test_idx in fold_rows:
        elapsed = time.monotonic() - started
        if fold_seconds and elapsed + float(np.mean(fold_seconds)) > time_budget_s:
            result["stopped_early"] = True
            break
        t0 = time.monotonic()
        predicted = _fit_predict(matrix[train_idx], y[train_idx], matrix[test_idx], class_weight)
        scores.append(
            _score(metric, y[test_idx].tolist(), predicted.tolist(), label_list, positive)
        )
        fold_seconds.append(time.monotonic() - t0)
    if result["stopped_early"]:
        notes.append(
            f"stopped after {len(scores)} of {n_folds} folds to stay within {time_budget_s:g} s"
        )
    result["folds"] = len(scores)
    validation = None
    if len(val_y):
        # a fit on the whole sample costs about folds/(folds-1) of a fold
        projected = float(np.mean(fold_seconds)) * n_folds / (n_folds - 1)
        if time.monotonic() - started + projected <= time_budget_s:
            predicted = _fit_predict(matrix, y, _features(val_x), class_weight)
            validation = round(
                _score(metric, val_y.tolist(), predicted.tolist(), label_list, positive), 4
            )
        else:
            notes.append(f"validation score skipped to stay within {time_budget_s:g} s")
    mean, std = _summary(scores)
    result["tfidf_lr"] = {
        "cv_mean": mean,
        "cv_std": std,
        "cv_scores": [round(s, 4) for s in scores],
        "validation": validation,
        "features": FEATURES,
        "C": C,
        "class_weight": class_weight,
        "fold_seconds": round(float(np.mean(fold_seconds)), 2),
    }
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _features(batch: list[str]):
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    hashers = [
        HashingVectorizer(
            ngram_range=(1, 2), alternate_sign=False, norm=None, n_features=HASH_FEATURES
        ),
        HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            alternate_sign=False,
            norm=None,
            n_features=HASH_FEATURES,
        ),
    ]
    return sparse.hstack([h.transform(batch) for h in hashers], format="csr")


def _fit_predict(train_x, train_y, test_x, class_weight):
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    # keep the n-grams that at least MIN_DF training rows use: a much smaller model (most
    # n-grams occur once) at the same score, and 2-3x faster to fit
    used = np.flatnonzero(np.bincount(train_x.indices, minlength=train_x.shape[1]) >= MIN_DF)
    tfidf = TfidfTransformer(sublinear_tf=True)
    a = tfidf.fit_transform(train_x[:, used])
    b = tfidf.transform(test_x[:, used])
    model = LogisticRegression(
        C=C, class_weight=class_weight, solver="newton-cg", tol=1e-3, max_iter=200
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: tol is loose on purpose
        model.fit(a, train_y)
    return model.predict(b)


# ---------------------------------------------------------------- multi-label and regression

RIDGE_ALPHA = 1.0


def _targets(labels: list[str], task: str, fmt: str | None, names: list[str]) -> np.ndarray:
    """Regression: the numbers; multi-label: one 0/1 column per name in `names`."""
    if task == "regression":
        return np.array([recipe.parse_target(y) for y in labels], dtype=np.float64)
    index = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=np.int64)
    for i, y in enumerate(labels):
        for x in recipe.parse_label_list(y, fmt):
            if x in index:
                out[i, index[x]] = 1
    return out


def _task_score(task: str, metric: str, truth: np.ndarray, predicted: np.ndarray, names) -> float:
    if task == "regression":
        return float(recipe.regression_metrics(truth.tolist(), predicted.tolist())[metric])
    return float(recipe.multilabel_metrics(truth.tolist(), predicted.tolist(), names)[metric])


def _constant_guess(task: str, y: np.ndarray) -> np.ndarray:
    """The best constant answer: the mean target, or each label present in over half the rows."""
    if task == "regression":
        return np.array([y.mean()])
    return (y.mean(axis=0) > 0.5).astype(np.int64)


def _fit_predict_task(task: str, train_x, train_y: np.ndarray, test_x) -> np.ndarray:
    """TF-IDF features, then ridge regression (regression) or one logistic regression per label
    (multi-label, predicted above 0.5; a label constant in training keeps that constant)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression, Ridge

    used = np.flatnonzero(np.bincount(train_x.indices, minlength=train_x.shape[1]) >= MIN_DF)
    tfidf = TfidfTransformer(sublinear_tf=True)
    a = tfidf.fit_transform(train_x[:, used])
    b = tfidf.transform(test_x[:, used])
    if task == "regression":
        return Ridge(alpha=RIDGE_ALPHA).fit(a, train_y).predict(b)
    out = np.zeros((b.shape[0], train_y.shape[1]), dtype=np.int64)
    for j in range(train_y.shape[1]):
        column = train_y[:, j]
        if column.min() == column.max():
            out[:, j] = column[0]
            continue
        model = LogisticRegression(C=C, solver="liblinear", max_iter=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[:, j] = model.fit(a, column).predict(b)
    return out


def _word_tag_model(texts: list[str], tags: list[str]) -> dict[str, str]:
    """Each training word's most frequent tag (ties: the first in sorted order)."""
    seen: dict[str, Counter] = {}
    for text, row in zip(texts, tags, strict=True):
        for word, tag in zip(text.split(" "), row.split(" "), strict=True):
            seen.setdefault(word.lower(), Counter())[tag] += 1
    return {w: min(c, key=lambda t: (-c[t], t)) for w, c in seen.items()}


def _token_score(metric: str, texts: list[str], tags: list[str], model) -> float:
    true = [row.split(" ") for row in tags]
    if model is None:  # the constant answer: every word outside an entity
        predicted = [["O"] * len(row) for row in true]
    else:
        predicted = [[model.get(w.lower(), "O") for w in t.split(" ")] for t in texts]
    return float(recipe.token_metrics(true, predicted)[metric])


def _token_baseline(splits, metric: str, seed: int, folds: int) -> dict[str, Any]:
    """`run_baseline` for token classification: every word tagged "O", and every word given
    the tag it carried most often in training (unseen words "O"), K-fold and on validation."""
    from sklearn.model_selection import KFold

    started = time.monotonic()
    texts, tags = splits["train"]
    n_folds = max(2, min(folds, len(texts) // 2))
    constant, scores = [], []
    for train_idx, test_idx in KFold(n_folds, shuffle=True, random_state=seed).split(texts):
        fold_texts, fold_tags = [texts[i] for i in test_idx], [tags[i] for i in test_idx]
        model = _word_tag_model([texts[i] for i in train_idx], [tags[i] for i in train_idx])
        constant.append(_token_score(metric, fold_texts, fold_tags, None))
        scores.append(_token_score(metric, fold_texts, fold_tags, model))
    validation = constant_validation = None
    if splits.get("validation") and splits["validation"][0]:
        vt, vy = splits["validation"]
        constant_validation = round(_token_score(metric, vt, vy, None), 4)
        validation = round(_token_score(metric, vt, vy, _word_tag_model(texts, tags)), 4)
    c_mean, c_std = _summary(constant)
    mean, std = _summary(scores)
    return {
        "metric": metric,
        "positive_label": None,
        "task": recipe.TOKEN_TASK,
        "seed": seed,
        "rows_total": len(texts),
        "rows_used": len(texts),
        "sampled": False,
        "folds": n_folds,
        "folds_planned": n_folds,
        "validation_rows": len(splits.get("validation", ([], []))[0]),
        "stopped_early": False,
        "seconds": round(time.monotonic() - started, 2),
        "notes": [],
        "majority": {
            "label": "O",
            "cv_mean": c_mean,
            "cv_std": c_std,
            "cv_scores": [round(v, 4) for v in constant],
            "validation": constant_validation,
        },
        "tfidf_lr": {
            "cv_mean": mean,
            "cv_std": std,
            "cv_scores": [round(v, 4) for v in scores],
            "validation": validation,
            "features": "the word (lower-cased)",
            "model": "each word's most frequent training tag",
            "C": None,
            "class_weight": None,
            "fold_seconds": None,
        },
    }


def _label_names(splits, task: str, fmt: str | None) -> list[str]:
    if task == "regression":
        return []
    return sorted(
        {x for _t, ys in splits.values() for y in ys for x in recipe.parse_label_list(y, fmt)}
    )


def _other_task_baseline(
    splits,
    task: str,
    metric: str,
    fmt: str | None,
    seed: int,
    max_rows: int,
    folds: int,
    budget: float,
) -> dict[str, Any]:
    """`run_baseline` for multi-label classification and regression: K-fold (not stratified)
    scores of the best constant answer and of TF-IDF + a linear model, and validation scores."""
    from sklearn.model_selection import KFold

    if metric not in recipe.METRICS[task]:
        raise ValueError(f"metric must be one of {recipe.METRICS[task]}, not {metric!r}")
    started = time.monotonic()
    texts, labels = splits["train"]
    rng = np.random.default_rng(seed)
    rows = sorted(rng.permutation(len(texts))[:max_rows].tolist())
    names = _label_names(splits, task, fmt)
    x = [texts[i] for i in rows]
    y = _targets([labels[i] for i in rows], task, fmt, names)
    notes: list[str] = []
    if len(rows) < len(texts):
        notes.append(f"trained on a random sample of {len(rows):,} of {len(texts):,} rows")
    model_name = "ridge regression" if task == "regression" else "logistic regression per label"
    result = _skeleton(
        metric,
        seed,
        len(texts),
        len(rows),
        notes,
        C=None if task == "regression" else C,
        model=model_name,
        class_weight=None,
    )
    result["task"] = task
    if len(rows) < 4:
        notes.append("fewer than four rows: nothing to cross-validate")
        return result
    n_folds = max(2, min(folds, len(rows) // 2))
    result["folds_planned"] = n_folds
    fold_rows = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x))
    matrix = _features(x)
    constant_scores, scores, fold_seconds = [], [], []
    for train_idx, test_idx in fold_rows:
        guess = _constant_guess(task, y[train_idx])
        constant = np.repeat(guess[None, ...], len(test_idx), axis=0).reshape(y[test_idx].shape)
        constant_scores.append(_task_score(task, metric, y[test_idx], constant, names))
        if fold_seconds and time.monotonic() - started + float(np.mean(fold_seconds)) > budget:
            result["stopped_early"] = True
            continue
        t0 = time.monotonic()
        predicted = _fit_predict_task(task, matrix[train_idx], y[train_idx], matrix[test_idx])
        scores.append(_task_score(task, metric, y[test_idx], predicted, names))
        fold_seconds.append(time.monotonic() - t0)
    guess = _constant_guess(task, y)
    shown = (
        f"mean {float(guess[0]):.4g}"
        if task == "regression"
        else ", ".join(n for n, g in zip(names, guess, strict=True) if g) or "no labels"
    )
    validation = constant_validation = None
    if splits.get("validation") and splits["validation"][0]:
        vt, vl = splits["validation"]
        vy = _targets(vl, task, fmt, names)
        result["validation_rows"] = len(vt)
        constant = np.repeat(guess[None, ...], len(vt), axis=0).reshape(vy.shape)
        constant_validation = round(_task_score(task, metric, vy, constant, names), 4)
        predicted = _fit_predict_task(task, matrix, y, _features(vt))
        validation = round(_task_score(task, metric, vy, predicted, names), 4)
    mean, std = _summary(constant_scores)
    result["majority"] = {
        "label": shown,
        "cv_mean": mean,
        "cv_std": std,
        "cv_scores": [round(v, 4) for v in constant_scores],
        "validation": constant_validation,
    }
    mean, std = _summary(scores)
    result["tfidf_lr"].update(
        cv_mean=mean,
        cv_std=std,
        cv_scores=[round(v, 4) for v in scores],
        validation=validation,
        fold_seconds=round(float(np.mean(fold_seconds)), 2) if fold_seconds else None,
    )
    result["folds"] = len(scores)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def baselines_on_test(
    splits: dict[str, tuple[list[str], list[str]]],
    labels: list[str],
    metric: str,
    positive: str | None = None,
    seed: int = 42,
    max_rows: int = 20000,
    task: str = "single_label_classification",
    label_format: str | None = None,
) -> dict[str, Any]:
    """Both baselines fit once on the training rows (a stratified sample of at most `max_rows`)
    and scored on every test row with `metric`, so that a fine-tuned model's test score has
    something to beat: {"majority", "tfidf_lr", "train_rows", "test_rows", "seconds"}."""
    started = time.monotonic()
    if task == recipe.TOKEN_TASK:
        texts, tags = splits["train"]
        test_texts, test_tags = splits["test"]
        return {
            "metric": metric,
            "majority": round(_token_score(metric, test_texts, test_tags, None), 4),
            "tfidf_lr": round(
                _token_score(metric, test_texts, test_tags, _word_tag_model(texts, tags)), 4
            ),
            "train_rows": len(texts),
            "test_rows": len(test_texts),
            "seconds": round(time.monotonic() - started, 2),
        }
    if task != "single_label_classification":
        texts, names = splits["train"]
        rng = np.random.default_rng(seed)
        rows = sorted(rng.permutation(len(texts))[:max_rows].tolist())
        y = _targets([names[i] for i in rows], task, label_format, labels)
        test_texts, test_names = splits["test"]
        truth = _targets(test_names, task, label_format, labels)
        guess = _constant_guess(task, y)
        constant = np.repeat(guess[None, ...], len(test_texts), axis=0).reshape(truth.shape)
        predicted = _fit_predict_task(
            task, _features([texts[i] for i in rows]), y, _features(test_texts)
        )
        return {
            "metric": metric,
            "majority": round(_task_score(task, metric, truth, constant, labels), 4),
            "tfidf_lr": round(_task_score(task, metric, truth, predicted, labels), 4),
            "train_rows": len(rows),
            "test_rows": len(test_texts),
            "seconds": round(time.monotonic() - started, 2),
        }
    texts, names = splits["train"]
    test_texts, test_names = splits["test"]
    label_id = {name: i for i, name in enumerate(labels)}
    rows = stratified_sample(names, max_rows, seed)
    y = np.array([label_id[names[i]] for i in rows], dtype=np.int64)
    truth = [label_id[v] for v in test_names]
    counts = Counter(y.tolist())
    majority = min(counts, key=lambda k: (-counts[k], k))
    out: dict[str, Any] = {
        "metric": metric,
        "majority": round(_score(metric, truth, [majority] * len(truth), labels, positive), 4),
        "tfidf_lr": None,
        "train_rows": len(rows),
        "test_rows": len(truth),
    }
    if len(counts) >= 2:
        class_weight = "balanced" if metric != "accuracy" else None
        matrix = _features([texts[i] for i in rows])
        predicted = _fit_predict(matrix, y, _features(test_texts), class_weight)
        out["tfidf_lr"] = round(_score(metric, truth, predicted.tolist(), labels, positive), 4)
    out["seconds"] = round(time.monotonic() - started, 2)
    return out
