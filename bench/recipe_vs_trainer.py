"""Benchmark: tunesmith's training recipe against the stock Trainer loop at equal settings.

On TweetEval irony (full training set) the recommended plan, which is the Trainer defaults
(learning rate 5e-5, batch 8, 3 epochs) trained by `tuning_core.recipe`, scored below the
defaults trained by a plain Trainer (bench/RESULTS.md, 2026-11-28). This script measures that gap
and the pieces that might explain it, one seed list per mode:

  recipe          tuning_core.recipe on the recommended plan (length-grouped batches)
  recipe-initstream  the recipe with its new layers (the head) drawn from a stream of their own
                  (`init_seed(seed)`) instead of right after the Trainer's `set_seed(seed)`,
                  from the stream that then draws dropout; measured, not adopted (RESULTS.md)
  recipe-random   the same with shuffled rows (plan sampling "random")
  recipe-zerohead the recipe with the output layer started at zero (plan head_init "zeros")
  recipe-probe    the recipe with the output layer fitted first by logistic regression on the
                  pretrained model's features (plan head_init "probe", Kumar et al. 2022)
  stock           a plain Trainer, dynamic padding, no evaluation, the last epoch kept
  stock-init      the same, the model built by `model_init` (its head seeded as the recipe's)
  stock-eval      the same, evaluated on validation each epoch (as the recipe is)
  stock-seeded    the plain loop, the model built right after `set_seed(seed)` (no model_init)

    .venv/bin/python bench/recipe_vs_trainer.py --modes recipe stock --seeds 42 43 44 1042

Each run appends a line to bench/results/recipe_vs_trainer.jsonl; the summary (mean and
spread per mode) goes to bench/results/recipe_vs_trainer.json and a dated row in RESULTS.md.
Run modes in separate processes to use both cores (OMP_NUM_THREADS=1 each).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from recommend_vs_defaults import TASKS, load_task, official, write_splits  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.hardware import probe_resources  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID  # noqa: E402
from tuning_core.profile import profile_rows  # noqa: E402
from tuning_core.recommend import recommend_plan  # noqa: E402

MODES = (
    "recipe",
    "recipe-initstream",
    "recipe-random",
    "recipe-zerohead",
    "recipe-probe",
    "stock",
    "stock-init",
    "stock-eval",
    "stock-seeded",
)
RESULTS = ROOT / "bench" / "results"


def epoch_trace(splits, labels, positive, tokenizer, max_length: int, out: list):
    """A callback that scores validation and test (official metric) after each epoch with the
    model as it stands, appending [validation, test] to `out`. It draws no random numbers, so
    the run it watches trains exactly as it would without it."""
    import torch
    from transformers import TrainerCallback

    ids = {y: i for i, y in enumerate(labels)}

    def score(model, name):
        texts, names = splits[name]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        preds = [0] * len(texts)
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            enc = tokenizer(
                [texts[i] for i in rows],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                logits = model(**enc.to(model.device)).logits
            for i, p in zip(rows, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
        metrics = recipe.classification_metrics([ids[y] for y in names], preds, labels)
        return round(official(metrics, positive), 4)

    class EpochTrace(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            was_training = model.training
            model.eval()
            out.append([score(model, "validation"), score(model, "test")])
            model.train(was_training)

    return EpochTrace()


def init_seed(seed: int) -> int:
    """The seed of the separate stream for new layers in mode recipe-initstream."""
    digest = hashlib.sha256(f"tunesmith-init-{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@contextlib.contextmanager
def separate_init_stream():
    """Build the model with its new layers drawn from their own stream (`init_seed`), leaving
    the global stream where the Trainer's `set_seed` put it."""
    import torch

    build = recipe.build_model

    def build_apart(plan, labels):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(int(plan["seed"])))
            return build(plan, labels)

    recipe.build_model = build_apart
    try:
        yield
    finally:
        recipe.build_model = build


def run_recipe(task, spec, splits, seed: int, work: Path, overrides: dict, trace=None) -> float:
    profile = profile_rows(splits, EMBEDDED_MODEL_ID)
    rec = recommend_plan("single_label_classification", profile, probe_resources(), {"seed": seed})
    files = write_splits(splits, work / "data")
    data = {**spec.to_dict(), "files": files, "readers": {}, "sha256": {}}
    data["labels"] = sorted(set(splits["train"][1]))
    plan = {**rec.plan.to_dict(), **overrides}
    callbacks = []
    if trace is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(recipe.resolve_model(plan["base_model"]))
        labels = data["labels"]
        callbacks.append(
            epoch_trace(splits, labels, TASKS[task], tokenizer, plan["max_length"], trace)
        )
    report = recipe.train_and_evaluate(plan, data, work / "run", callbacks=callbacks)
    return official(report["test"], TASKS[task])


def run_stock(task, splits, seed: int, work: Path, mode: str, trace=None) -> float:
    recipe.quiet_libraries()
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    labels = sorted(set(splits["train"][1]))
    ids = {y: i for i, y in enumerate(labels)}
    path = recipe.resolve_model(EMBEDDED_MODEL_ID)
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(name):
        texts, names = splits[name]
        enc = tokenizer(texts, truncation=True, max_length=128)
        return Dataset.from_dict({**enc, "labels": [ids[y] for y in names]})

    def build():
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=ids
        )

    args = TrainingArguments(
        output_dir=str(work),
        learning_rate=5e-5,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=32,
        num_train_epochs=3,
        seed=seed,
        eval_strategy="epoch" if mode == "stock-eval" else "no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    if mode == "stock-seeded":
        from transformers import set_seed

        set_seed(seed)
    trainer = Trainer(
        model=None if mode == "stock-init" else build(),
        model_init=build if mode == "stock-init" else None,
        args=args,
        train_dataset=encode("train"),
        eval_dataset=encode("validation") if mode == "stock-eval" else None,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.remove_callback(PrinterCallback)
    if trace is not None:
        trainer.add_callback(epoch_trace(splits, labels, TASKS[task], tokenizer, 128, trace))
    trainer.train()
    pred = trainer.predict(encode("test"))
    metrics = recipe.classification_metrics(
        pred.label_ids.tolist(), pred.predictions.argmax(-1).tolist(), labels
    )
    return official(metrics, TASKS[task])


def summarise(task: str, rows: int) -> dict:
    out: dict = {}
    for line in (RESULTS / "recipe_vs_trainer.jsonl").open():
        row = json.loads(line)
        if row["task"] == task and row.get("rows", 0) == rows:
            out.setdefault(row["mode"], {})[str(row["seed"])] = row["score"]
    return {
        mode: {
            "mean": round(statistics.mean(scores.values()), 4),
            "spread": round(max(scores.values()) - min(scores.values()), 4),
            "by_seed": scores,
        }
        for mode, scores in out.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="irony", choices=sorted(TASKS))
    parser.add_argument("--modes", nargs="+", default=["recipe", "stock"], choices=MODES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--rows", type=int, default=0, help="stratified training subsample")
    parser.add_argument(
        "--trace", action="store_true", help="also score validation and test after each epoch"
    )
    args = parser.parse_args()
    spec, splits = load_task(args.task, args.rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            for seed in args.seeds:
                t0 = time.monotonic()
                work = Path(tmp) / f"{mode}-{seed}"
                trace = [] if args.trace else None
                if mode.startswith("recipe"):
                    overrides = {
                        "recipe": {},
                        "recipe-random": {"sampling": "random"},
                        "recipe-zerohead": {"head_init": "zeros"},
                        "recipe-probe": {"head_init": "probe"},
                        "recipe-initstream": {},
                    }[mode]
                    emulate = separate_init_stream if mode == "recipe-initstream" else nullcontext
                    with emulate():
                        score = run_recipe(args.task, spec, splits, seed, work, overrides, trace)
                else:
                    score = run_stock(args.task, splits, seed, work, mode, trace)
                row = {"task": args.task, "rows": args.rows, "mode": mode, "seed": seed}
                row["score"] = score
                if trace is not None:
                    row["epochs"] = trace  # [validation, test] after each epoch
                row["seconds"] = round(time.monotonic() - t0, 1)
                with (RESULTS / "recipe_vs_trainer.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {p: metadata.version(p) for p in ("torch", "transformers")},
        "rows": args.rows or "all",
        args.task: summarise(args.task, args.rows),
    }
    (RESULTS / "recipe_vs_trainer.json").write_text(json.dumps(summary, indent=1) + "\n")
    with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
        fh.write(f"\n## recipe_vs_trainer — {summary['date']}\n\n")
        fh.write(f"- machine: {summary['machine']}; {summary['versions']}\n")
        for mode, s in summary[args.task].items():
            fh.write(f"- {args.task} ({summary['rows']} training rows), {mode}: {s['mean']:.4f} ")
            fh.write(f"(spread {s['spread']:.4f}, ")
            fh.write(f"seeds {sorted(s['by_seed'])})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
