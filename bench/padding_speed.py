"""Benchmark: dynamic padding with length-grouped batches against padding to 128 tokens (issue 5,
point 8), on TweetEval emotion with the embedded MiniLM.

Both modes train the same plan with `recipe.train_and_evaluate` (learning rate 5e-5, batch 8,
3 epochs, max length 128, the Trainer's defaults a newcomer would use) and differ only in:
  dynamic  each batch padded to its own longest row, rows grouped by length (the recipe's way)
  pad128   every batch padded to 128 tokens, rows shuffled (what many tutorials do)
Time is the whole call (training, the epoch evaluations, the final predictions); the training
throughput is read from the worker's last `log` event. Metric: emotion's macro-F1 on test.

    .venv/bin/python bench/padding_speed.py --modes dynamic pad128 --seeds 43

Time ratios are fair only under the same load: run both modes in one process on a quiet
machine, or in two processes started together (OMP_NUM_THREADS=1 each). Each run appends a line
(with its thread count) to bench/results/padding_speed.jsonl; every process ends by writing the
summary of the lines with its thread count to bench/results/padding_speed.json and a dated
section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import RESULTS, environment, recipe_data, record  # noqa: E402
from recommend_vs_defaults import load_task  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan  # noqa: E402
from tuning_core.worker import EventLog, progress_callback  # noqa: E402

MODES = ("dynamic", "pad128")


def run(mode: str, seed: int, data: dict, work: Path) -> dict:
    import transformers

    plan = Plan(
        base_model=EMBEDDED_MODEL_ID,
        learning_rate=5e-5,
        batch_size=8,
        epochs=3.0,
        max_length=128,
        early_stopping_patience=0,
        sampling="length" if mode == "dynamic" else "random",
        seed=seed,
    ).validate()
    original = transformers.DataCollatorWithPadding
    if mode == "pad128":  # the recipe imports the collator when it runs: pad every batch to 128
        transformers.DataCollatorWithPadding = functools.partial(
            original, padding="max_length", max_length=128
        )
    try:
        work.mkdir(parents=True, exist_ok=True)
        events = EventLog(work / "events.jsonl")
        t0 = time.monotonic()
        report = recipe.train_and_evaluate(
            plan.to_dict(), data, work / "run", callbacks=[progress_callback(events, 8)]
        )
        seconds = time.monotonic() - t0
    finally:
        transformers.DataCollatorWithPadding = original
    logs = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    last = [e for e in logs if e["type"] == "log"][-1]
    return {
        "mode": mode,
        "seed": seed,
        "macro_f1": report["test"]["macro_f1"],
        "seconds": round(seconds, 1),
        "train_samples_per_s": last["samples_per_s"],
    }


def summarise(rows: int, threads: int) -> dict:
    """Means per mode over the runs with these rows and threads; runs before the threads were
    recorded used one thread."""
    by_mode: dict[str, list[dict]] = {}
    for line in (RESULTS / "padding_speed.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["rows"] == rows and row.get("threads", 1) == threads:
            by_mode.setdefault(row["mode"], []).append(row)
    out = {
        mode: {
            "seeds": [r["seed"] for r in rows],
            "macro_f1": round(statistics.mean(r["macro_f1"] for r in rows), 4),
            "seconds": round(statistics.mean(r["seconds"] for r in rows), 1),
            "train_samples_per_s": round(
                statistics.mean(r["train_samples_per_s"] for r in rows), 1
            ),
        }
        for mode, rows in by_mode.items()
    }
    if set(MODES) <= set(out):
        same = sorted(set(out["dynamic"]["seeds"]) & set(out["pad128"]["seeds"]))
        if same:
            pick = {m: [r for r in by_mode[m] if r["seed"] in same] for m in MODES}
            total = {m: sum(r["seconds"] for r in pick[m]) for m in MODES}
            out["paired_seeds"] = same
            out["speedup_seconds"] = round(total["pad128"] / total["dynamic"], 2)
            out["f1_difference"] = round(
                statistics.mean(r["macro_f1"] for r in pick["dynamic"])
                - statistics.mean(r["macro_f1"] for r in pick["pad128"]),
                4,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--rows", type=int, default=0, help="stratified subsample (0 = all)")
    args = parser.parse_args()

    import torch

    recipe.quiet_libraries()
    spec, splits = load_task("emotion", args.rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = recipe_data(spec, splits, Path(tmp) / "data")
        for seed in args.seeds:
            for mode in args.modes:
                row = run(mode, seed, data, Path(tmp) / f"{mode}-{seed}")
                row["rows"] = args.rows or len(splits["train"][0])  # the same as `rows` below
                row["threads"] = torch.get_num_threads()
                with open(RESULTS / "padding_speed.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)
    rows = args.rows or len(splits["train"][0])
    summary = {**environment(), "rows": rows, **summarise(rows, torch.get_num_threads())}
    lines = [
        f"emotion, {mode}: macro-F1 {summary[mode]['macro_f1']:.4f}, "
        f"{summary[mode]['seconds']:.0f} s a run, {summary[mode]['train_samples_per_s']} "
        f"training samples/s (seeds {summary[mode]['seeds']})"
        for mode in MODES
        if mode in summary
    ]
    if "speedup_seconds" in summary:
        lines.append(
            f"pad128 / dynamic time {summary['speedup_seconds']}x (target >= 2), macro-F1 "
            f"dynamic - pad128 {summary['f1_difference']:+.4f} (seeds {summary['paired_seeds']})"
        )
    record("padding_speed", summary, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
