"""Benchmark: tunesmith's recommended plan against what a newcomer would do (issue 4, point 5).

On TweetEval emotion and irony (../shared/datasets/tweeteval) with the embedded MiniLM:
  (a) the transformers Trainer defaults a newcomer would use: learning rate 5e-5, batch 8,
      3 epochs, padding to 128, no early stopping, the last epoch kept;
  (b) the TF-IDF + logistic-regression baseline (tuning_core.baseline's features and model);
  (c) a frozen-encoder probe: mean-pooled MiniLM embeddings + logistic regression;
  (d) tunesmith's recommended plan, no human change (recommend_plan on the data's profile).
Fine-tuned rows are means over seeds with their spread. Scores are each task's official test
metric (emotion: macro-F1; irony: F1 of the `irony` class). `--rows 400` trains on a stratified
400-row subsample of the training file (the small-data setting), `--rows 0` on all of it.

    .venv/bin/python bench/recommend_vs_defaults.py --rows 400 --seeds 42 43 44
    .venv/bin/python bench/recommend_vs_defaults.py --rows 0 --seeds 42 43 44   # about an hour

(a), (b) and (c) do not depend on tunesmith's rules: `--part reference` runs just them and
`--part recommended` just (d), each into bench/results/recommend_vs_defaults_<rows>_<part>.json;
when both parts exist the second one to end merges them (or `--part combine`). A part run for
some `--tasks` only replaces those tasks in the part's file (same seeds), so the tasks of one
part can run in two processes. The time ratio
(d)/(a) is fair only when both parts ran under the same load: run them at the same time, one
thread each (OMP_NUM_THREADS=1), one per core.

Writes bench/results/recommend_vs_defaults_<rows>.json and a dated row in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tuning_core import recipe  # noqa: E402
from tuning_core.baseline import stratified_sample  # noqa: E402
from tuning_core.data import inspect_data, load_split_rows  # noqa: E402
from tuning_core.hardware import probe_resources  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID  # noqa: E402
from tuning_core.profile import profile_rows  # noqa: E402
from tuning_core.recommend import recommend_plan  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "tweeteval"
TASKS = {"emotion": None, "irony": "irony"}  # official metric: macro-F1, or F1 of this class


def official(metrics: dict, positive: str | None) -> float:
    return metrics["per_class"][positive]["f1"] if positive else metrics["macro_f1"]


def load_task(task: str, rows: int, seed: int = 0):
    spec = inspect_data(DATA / task / "train.csv")
    splits = load_split_rows(spec)
    if rows:
        texts, labels = splits["train"]
        keep = sorted(stratified_sample(labels, rows, seed))
        splits["train"] = ([texts[i] for i in keep], [labels[i] for i in keep])
    return spec, splits


def write_splits(splits, folder: Path) -> dict:
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (texts, labels) in splits.items():
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels, strict=True))
        files[name] = str(path)
    return files


def newcomer_defaults(splits, labels, seed: int, out: Path) -> dict:
    """(a): the plain Trainer recipe from the tutorials, nothing of tunesmith's."""
    recipe.quiet_libraries()
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    path = recipe.resolve_model(EMBEDDED_MODEL_ID)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = {y: i for i, y in enumerate(labels)}

    def encode(name):
        texts, names = splits[name]
        enc = tokenizer(texts, truncation=True, max_length=128, padding="max_length")
        return Dataset.from_dict({**enc, "labels": [ids[y] for y in names]})

    args = TrainingArguments(
        output_dir=str(out),
        learning_rate=5e-5,
        per_device_train_batch_size=8,
        num_train_epochs=3,
        seed=seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=ids
    )
    trainer = Trainer(model=model, args=args, train_dataset=encode("train"))
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    pred = trainer.predict(encode("test"))
    return recipe.classification_metrics(
        pred.label_ids.tolist(), pred.predictions.argmax(-1).tolist(), labels
    )


def tfidf_baseline(splits, labels, positive: str | None, seed: int) -> float:
    """(b): word 1-2 + char 2-5 gram TF-IDF, logistic regression with C by 3-fold CV."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
    )
    clf = LogisticRegressionCV(
        Cs=[0.3, 1, 3, 10], cv=3, max_iter=3000, class_weight="balanced", random_state=seed
    )
    model = make_pipeline(features, clf).fit(*splits["train"])
    ids = {y: i for i, y in enumerate(labels)}
    predicted = [ids[y] for y in model.predict(splits["test"][0])]
    metrics = recipe.classification_metrics([ids[y] for y in splits["test"][1]], predicted, labels)
    return official(metrics, positive)


def frozen_probe(splits, labels, positive: str | None, seed: int) -> float:
    """(c): mean-pooled MiniLM embeddings + logistic regression (C chosen by 3-fold CV)."""
    recipe.quiet_libraries()
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from transformers import AutoModel, AutoTokenizer

    path = recipe.resolve_model(EMBEDDED_MODEL_ID)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model.eval()

    def embed(texts):
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                enc = tokenizer(
                    texts[i : i + 64],
                    truncation=True,
                    max_length=128,
                    padding=True,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.concatenate(out)

    x_train, x_test = embed(splits["train"][0]), embed(splits["test"][0])
    ids = {y: i for i, y in enumerate(labels)}
    y_train = [ids[y] for y in splits["train"][1]]
    clf = LogisticRegressionCV(Cs=[0.1, 1, 10], cv=3, max_iter=2000, random_state=seed)
    clf.fit(x_train, y_train)
    metrics = recipe.classification_metrics(
        [ids[y] for y in splits["test"][1]], clf.predict(x_test).tolist(), labels
    )
    return official(metrics, positive)


def recommended(splits, spec, seed: int, out: Path) -> tuple[dict, dict]:
    """(d): the plan tunesmith recommends for this data, trained by tunesmith's recipe."""
    profile = profile_rows(splits, EMBEDDED_MODEL_ID)
    rec = recommend_plan("single_label_classification", profile, probe_resources(), {"seed": seed})
    files = write_splits(splits, out / "data")
    data = {**spec.to_dict(), "files": files, "readers": {}, "sha256": {}}
    data["labels"] = sorted(set(splits["train"][1]))
    report = recipe.train_and_evaluate(rec.plan.to_dict(), data, out / "run")
    return report["test"], rec.plan.to_dict()


def summarise(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 4),
        "spread": round(max(values) - min(values), 4),
        "values": values,
    }


def reference_part(task: str, splits, seeds, work: Path) -> dict:
    """(a), (b) and (c) for one task: they do not depend on tunesmith's rules."""
    positive = TASKS[task]
    labels = sorted(set(splits["train"][1]))
    row: dict = {
        "b_tfidf": tfidf_baseline(splits, labels, positive, 42),
        "c_frozen_probe": frozen_probe(splits, labels, positive, 42),
    }
    scores = []
    for seed in seeds:
        t0 = time.monotonic()
        a = newcomer_defaults(splits, labels, seed, work / f"{task}-a-{seed}")
        scores.append(official(a, positive))
        row.setdefault("a_seconds", []).append(round(time.monotonic() - t0, 1))
        print(f"{task} seed {seed}: defaults {scores[-1]:.4f}", flush=True)
    row["a_defaults"] = summarise(scores)
    return row


def recommended_part(task: str, spec, splits, seeds, work: Path) -> dict:
    """(d) for one task: tunesmith's plan for the data, trained with each seed."""
    positive = TASKS[task]
    row: dict = {}
    scores = []
    for seed in seeds:
        t0 = time.monotonic()
        d, plan = recommended(splits, spec, seed, work / f"{task}-d-{seed}")
        row.setdefault("d_seconds", []).append(round(time.monotonic() - t0, 1))
        scores.append(official(d, positive))
        row.setdefault("d_plan", plan)
        print(f"{task} seed {seed}: recommended {scores[-1]:.4f}", flush=True)
    row["d_recommended"] = summarise(scores)
    return row


def combine(name: str, rows: int | str, seeds: list[int]) -> dict | None:
    """Merge the reference and recommended parts into the results file and a RESULTS.md row,
    once both exist for the same seeds."""
    folder = ROOT / "bench" / "results"
    parts = {p: folder / f"{name}_{p}.json" for p in ("reference", "recommended")}
    if not all(f.exists() for f in parts.values()):
        return None
    reference, recommended_ = (json.loads(parts[p].read_text()) for p in parts)
    if reference["seeds"] != recommended_["seeds"]:
        print(f"seeds differ between the parts: {reference['seeds']} and {recommended_['seeds']}")
        return None
    results = {**recommended_, "rows": rows, "tasks": {}}
    results["reference_date"] = reference.get("date")
    lines = [
        f"\n## {name} — {results['date']}\n",
        f"- machine: {results['machine']}; {results['versions']}",
    ]
    for task, d_row in recommended_["tasks"].items():
        if task not in reference["tasks"]:
            continue
        row = {**reference["tasks"][task], **d_row}
        row["d_beats_all"] = row["d_recommended"]["mean"] > max(
            row["a_defaults"]["mean"], row["b_tfidf"], row["c_frozen_probe"]
        )
        if row.get("a_seconds") and row.get("d_seconds"):
            # compute: (d) trains and evaluates on dynamic padding; (a) pads every batch to 128
            row["d_over_a_seconds"] = round(sum(row["d_seconds"]) / sum(row["a_seconds"]), 3)
        results["tasks"][task] = row
        lines.append(
            f"- {task} ({row['train_rows']} train rows, seeds {seeds}): (a) defaults "
            f"{row['a_defaults']['mean']:.4f} (spread {row['a_defaults']['spread']:.4f}); "
            f"(b) TF-IDF {row['b_tfidf']:.4f}; (c) frozen probe "
            f"{row['c_frozen_probe']:.4f}; (d) recommended {row['d_recommended']['mean']:.4f} "
            f"(spread {row['d_recommended']['spread']:.4f}); d beats a, b and c: "
            f"{row['d_beats_all']}; time (d)/(a) {row.get('d_over_a_seconds')}"
        )
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400, help="training rows (0 = all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument(
        "--part",
        choices=("all", "reference", "recommended", "combine"),
        default="all",
        help="reference: only (a)-(c), which do not depend on the rules; recommended: only "
        "(d); combine: merge the two saved parts (done by itself when the second one ends)",
    )
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs the TweetEval files in {DATA}", file=sys.stderr)
        return 2
    rows = args.rows or "all"
    name = f"recommend_vs_defaults_{rows}"
    if args.part == "combine":
        return 0 if combine(name, rows, args.seeds) else 1
    work = Path(tempfile.mkdtemp(prefix="tunesmith-rvd-"))
    parts = ("reference", "recommended") if args.part == "all" else (args.part,)
    for part in parts:
        results: dict = {"rows": rows, "seeds": args.seeds, "tasks": {}}
        for task in args.tasks:
            spec, splits = load_task(task, args.rows)
            row: dict = {"train_rows": len(splits["train"][0]), "test_rows": len(splits["test"][0])}
            if part == "reference":
                row.update(reference_part(task, splits, args.seeds, work))
            else:
                row.update(recommended_part(task, spec, splits, args.seeds, work))
            results["tasks"][task] = row
        results["date"] = time.strftime("%Y-%m-%d")
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
        results["versions"] = {
            n: metadata.version(n) for n in ("torch", "transformers", "scikit-learn")
        }
        out = ROOT / "bench" / "results" / f"{name}_{part}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():  # runs of single tasks (`--tasks irony`) add to the part, same seeds
            before = json.loads(out.read_text())
            if before.get("seeds") == args.seeds:
                results["tasks"] = {**before["tasks"], **results["tasks"]}
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    combine(name, rows, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
