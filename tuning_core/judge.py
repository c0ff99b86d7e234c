"""The verdict on a finished run: is the model any good, and where does it fail?

`judge(report, baselines)` reads the recipe's report (validation, test and training-sample
metrics, the most confident test errors) and the baselines scored on the same test rows, and
returns one dict: the task's official metric, accuracy, macro and weighted F1, per-class scores,
the confusion matrix, the expected calibration error, the gap between training and validation
(called out when it is large), the deltas against the majority class and TF-IDF + logistic
regression, and the most confident errors. `judgement_text` writes it for people.

Pure Python over plain dicts: the app, the chat and `tunesmith report` share it.
"""

from __future__ import annotations

from typing import Any

from tuning_core import recipe  # the standard library only at import

# A model that scores this much better on its training rows than on validation has learned
# those rows rather than the task; the report says so. (A heuristic for the call-out only.)
OVERFIT_GAP = 0.10
# For an error or a perplexity (no fixed scale): validation this share worse than training.
UNBOUNDED_GAP = 0.25
# Expected calibration error above this: the confidences should not be read as probabilities.
ECE_CALL_OUT = 0.10


NAMES = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "accuracy": "accuracy",
    "f1": "F1",
    "pearson": "Pearson's r",
    "spearman": "Spearman's rho",
    "mse": "mean squared error",
    "mae": "mean absolute error",
    "exact_match": "exact match",
    "entity_f1": "entity F1",
    "entity_precision": "entity precision",
    "entity_recall": "entity recall",
    "token_accuracy": "token accuracy",
    "perplexity": "perplexity",
    "loss": "loss per reply token",
    "weighted_f1": "weighted F1",
}
LOWER_IS_BETTER = recipe.LOWER_IS_BETTER
# what else the headline shows, by task
OTHERS = {
    "single_label_classification": ("accuracy", "macro_f1", "weighted_f1"),
    "multi_label_classification": ("micro_f1", "macro_f1", "exact_match"),
    "regression": ("pearson", "spearman", "mse", "mae", "r2"),
    "instruction_tuning": ("perplexity", "loss"),
    "token_classification": (
        "entity_f1",
        "entity_precision",
        "entity_recall",
        "macro_f1",
        "token_accuracy",
    ),
}


def metric_name(metric: str, positive: str | None = None) -> str:
    if metric == "f1" and positive:
        return f"F1 of '{positive}'"
    return NAMES.get(metric, metric)


def improvement(metric: str, score: float, than: float) -> float:
    """How much better `score` is than `than`: positive is better, whichever way it counts."""
    return round(than - score if metric in LOWER_IS_BETTER else score - than, 4)


def judge(report: dict[str, Any], baselines: dict[str, Any] | None = None) -> dict[str, Any]:
    """The verdict on `report` (see the module docstring); `baselines` from
    `baseline.baselines_on_test`, or None when they could not be scored."""
    metric = report["metric"]
    task = report.get("task", "single_label_classification")
    test, val = report["test"], report["validation"]
    positive = test.get("positive_label")
    official = float(test[metric])
    out: dict[str, Any] = {
        "task": task,
        "metric": metric,
        "metric_name": metric_name(metric, positive),
        "official": official,
        "others": {k: test[k] for k in OTHERS.get(task, ()) if test.get(k) is not None},
        "accuracy": test.get("accuracy"),
        "macro_f1": test.get("macro_f1"),
        "weighted_f1": test.get("weighted_f1"),
        "per_class": test.get("per_class") or {},
        "confusion": test.get("confusion"),
        "labels": test.get("labels") or [],
        "thresholds": test.get("thresholds"),
        "generations": test.get("generations") or [],
        "test_rows": test["n"],
        "ece": test.get("ece"),
        "mean_confidence": test.get("mean_confidence"),
        "confident_errors": test.get("confident_errors", []),
        "validation": float(val[metric]),
        "calls": [],
    }
    fit = report.get("train_fit")
    if fit is not None:
        gap = improvement(metric, float(fit[metric]), float(val[metric]))
        out["train"] = float(fit[metric])
        out["train_rows_scored"] = fit["n"]
        out["fit_gap"] = gap
        # scores in [0, 1]: an absolute gap; errors and perplexity: relative to validation
        limit = OVERFIT_GAP if metric not in LOWER_IS_BETTER else UNBOUNDED_GAP * abs(val[metric])
        out["overfitting"] = gap > limit
        if out["overfitting"]:
            out["calls"].append(
                f"Overfitting: {out['metric_name']} is {fit[metric]:.4f} on training rows but "
                f"{val[metric]:.4f} on validation (a gap of {gap:.2f}). More data, stronger "
                "regularisation (dropout, weight decay) or fewer epochs should narrow it."
            )
    deltas: dict[str, float] = {}
    for name in ("majority", "tfidf_lr"):
        score = (baselines or {}).get(name)
        if score is not None:
            deltas[name] = improvement(metric, official, float(score))
    out["baselines"] = {k: (baselines or {}).get(k) for k in ("majority", "tfidf_lr")}
    tasks = {}  # multi-task: each other label set, scored by its own head on its own rows
    for name, entry in (report.get("tasks") or {}).items():
        aux_test = entry["test"]
        aux_metric = "f1" if aux_test.get("f1") is not None else "macro_f1"
        tasks[name] = {
            "metric_name": metric_name(aux_metric, aux_test.get("positive_label")),
            "official": float(aux_test[aux_metric]),
            "accuracy": aux_test.get("accuracy"),
            "validation": float(entry["validation"][aux_metric]),
            "test_rows": aux_test.get("n"),
            "train_rows": entry.get("train_rows"),
            "weight": entry.get("weight"),
        }
    if tasks:
        out["tasks"] = tasks
    out["deltas"] = deltas
    if "tfidf_lr" in deltas and deltas["tfidf_lr"] <= 0:
        out["calls"].append(
            f"It does not beat {baseline_name(task)} on the test rows "
            f"({official:.4f} against {baselines['tfidf_lr']:.4f}): the simpler model is the "
            "better choice until fine-tuning does."
        )
    if out["ece"] is not None and out["ece"] > ECE_CALL_OUT:
        side = "over" if (out["mean_confidence"] or 0) > test["accuracy"] else "under"
        out["calls"].append(
            f"Confidence is poorly calibrated (expected calibration error {out['ece']:.3f}; "
            f"the model is {side}confident): do not read its scores as probabilities."
        )
    return out


def _cell(text: str, width: int = 60) -> str:
    """Text for one Markdown table cell: one line, pipes escaped, cut to `width`."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def baseline_name(task: str) -> str:
    if task == "instruction_tuning":
        return "the base model, untuned"
    if task == "token_classification":
        return "each word's most frequent training tag"
    if task == "regression":
        return "TF-IDF + ridge regression"
    if task == "multi_label_classification":
        return "TF-IDF + logistic regression per label"
    return "TF-IDF + logistic regression"


def judgement_text(j: dict[str, Any], errors: int = 20) -> str:
    """The verdict as Markdown: headline, call-outs, per-class table, confusion matrix, errors."""
    name = j["metric_name"]
    task = j.get("task", "single_label_classification")
    if "others" in j:
        others = [
            f"{metric_name(k) if k != 'r2' else 'R²'} {v:.4f}"
            for k, v in j["others"].items()
            if k != j["metric"]
        ]
    else:  # a verdict saved before tasks
        others = [f"accuracy {j['accuracy']:.4f}"]
        if j["metric"] != "macro_f1":
            others.append(f"macro-F1 {j['macro_f1']:.4f}")
        if j.get("weighted_f1") is not None:
            others.append(f"weighted F1 {j['weighted_f1']:.4f}")
    lines = [
        f"**Test ({j['test_rows']} rows): {name} {j['official']:.4f}**; " + ", ".join(others),
        f"- Validation: {name} {j['validation']:.4f}"
        + (
            f"; training rows ({j['train_rows_scored']} scored): {j['train']:.4f}, "
            f"gap {j['fit_gap']:+.4f}" + (" — overfitting" if j["overfitting"] else "")
            if "train" in j
            else ""
        ),
    ]
    base = j.get("baselines") or {}
    parts = []
    constant = {
        "token_classification": "every word outside an entity",
        "regression": "the mean target",
        "multi_label_classification": "the most common label set",
    }.get(task, "majority class")
    if base.get("majority") is not None:
        parts.append(f"{constant} {base['majority']:.4f} ({j['deltas']['majority']:+.4f})")
    if base.get("tfidf_lr") is not None:
        parts.append(
            f"{baseline_name(task)} {base['tfidf_lr']:.4f} ({j['deltas']['tfidf_lr']:+.4f})"
        )
    if parts:
        better = " (+ is better)" if j["metric"] in LOWER_IS_BETTER else ""
        lines.append("- Baselines on the same test rows: " + "; ".join(parts) + better)
    if j.get("thresholds"):
        lines.append(
            "- Thresholds per label (tuned on validation): "
            + ", ".join(f"{k} {v:.2f}" for k, v in j["thresholds"].items())
        )
    if j.get("ece") is not None:
        lines.append(
            f"- Calibration: expected calibration error {j['ece']:.4f} "
            f"(mean confidence {j['mean_confidence']:.4f}, accuracy {j['accuracy']:.4f})"
        )
    if j.get("tasks"):
        lines += [
            "",
            "Trained together on the same encoder (a head each, loss weight "
            f"{next(iter(j['tasks'].values()))['weight']:g} against this task's 1):",
            "",
            "| task | test | accuracy | validation | training rows | test rows |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, t in j["tasks"].items():
            lines.append(
                f"| {_cell(name, 30)} | {t['metric_name']} {t['official']:.4f} "
                f"| {t['accuracy']:.4f} | {t['validation']:.4f} | {t['train_rows']} "
                f"| {t['test_rows']} |"
            )
    if j["calls"]:
        lines += [""] + [f"**Note:** {call}" for call in j["calls"]]
    if j["per_class"]:
        lines += [
            "",
            f"| {'label' if task != 'single_label_classification' else 'class'} "
            "| precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- |",
        ]
    for label, m in j["per_class"].items():
        lines.append(
            f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} "
            f"| {m['support']} |"
        )
    labels = j["labels"]
    if j.get("confusion"):
        lines += ["", "Confusion matrix (rows: true, columns: predicted)", "", "```"]
        width = max(len(x) for x in labels) + 1
        lines.append(" " * width + " ".join(f"{x[:6]:>6}" for x in labels))
        for label, row in zip(labels, j["confusion"], strict=True):
            lines.append(f"{label:<{width}}" + " ".join(f"{v:>6}" for v in row))
        lines.append("```")
    if j.get("generations"):
        lines += [
            "",
            f"Replies to {len(j['generations'])} held-out prompts (greedy), base model and tuned:",
            "",
            "| prompt | reference | base | tuned |",
            "| --- | --- | --- | --- |",
        ]
        for g in j["generations"]:
            asked = g.get("question") or g.get("prompt", "")
            cells = [_cell(asked)] + [_cell(g.get(k, "")) for k in ("reference", "base", "tuned")]
            lines.append("| " + " | ".join(cells) + " |")
    shown = j["confident_errors"][:errors]
    if shown:
        regression = task == "regression"
        lines += [
            "",
            f"The {len(shown)} "
            + (
                "predictions furthest from their targets:"
                if regression
                else "most confident errors (often mislabelled rows):"
            ),
            "",
            f"| {'error' if regression else 'confidence'} | true | predicted | text |",
            "| --- | --- | --- | --- |",
        ]
        for e in shown:
            text = " ".join(e["text"].split()).replace("|", "\\|")
            text = text if len(text) <= 90 else text[:89] + "…"
            score = f"{e['error']:+.3f}" if regression else f"{e['confidence']:.3f}"
            lines.append(f"| {score} | {e['true']} | {e['predicted']} | {text} |")
    return "\n".join(lines)
