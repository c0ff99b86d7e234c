"""Benchmark: the measurements behind the recommender's rules (issue 4, points 2, 3 and 6).

Each check trains MiniLM on real TweetEval data under two or more plan variants, several seeds
each, and reports each variant's mean test score (the task's official metric) and spread:

  tiny          100 training rows: full fine-tuning (the small-data rule, with the model's own
                head and with mean pooling) against a head alone on the frozen, mean-pooled
                encoder -> the TINY_ROWS rule.
  class_weights emotion skewed to 12x (optimism cut to 20 of 600 rows): class weights off/on
                -> the CLASS_WEIGHT_IMBALANCE rule.
  layerwise     400 emotion rows: plain against layer-wise learning-rate decay 0.9 and against
                gradual unfreezing -> whether either is switched on for MiniLM.

    .venv/bin/python bench/rule_checks.py --checks tiny class_weights layerwise --seeds 42 43 44

Writes bench/results/rule_checks.json (merged per check) and a dated row in bench/RESULTS.md.
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
from collections import Counter
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from recommend_vs_defaults import DATA, TASKS, load_task, official, write_splits  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.hardware import probe_resources  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID  # noqa: E402
from tuning_core.profile import profile_rows  # noqa: E402
from tuning_core.recommend import recommend_plan  # noqa: E402

SMALL_RULE = {
    "freezing": "none",
    "learning_rate": 1e-4,
    "epochs": 10.0,
    "early_stopping_patience": 3,
}
HEAD_ONLY = {
    "freezing": "head_only",
    "pooling": "mean",
    "learning_rate": 3e-3,
    "epochs": 30.0,
    "early_stopping_patience": 4,
}

CHECKS = {
    "tiny": {
        "tasks": ["emotion", "irony"],
        "rows": 100,
        "variants": {
            "full (small-data rule)": SMALL_RULE,
            "full, mean pooling": {**SMALL_RULE, "pooling": "mean"},
            "head only, mean pooling": HEAD_ONLY,
        },
    },
    "class_weights": {
        "tasks": ["emotion"],
        "rows": 600,
        "skew": {"optimism": 20},
        "variants": {
            "off": {**SMALL_RULE, "class_weights": False},
            "on": {**SMALL_RULE, "class_weights": True},
        },
    },
    "layerwise": {
        "tasks": ["emotion"],
        "rows": 400,
        "variants": {
            "plain": SMALL_RULE,
            "layer-wise lr decay 0.9": {**SMALL_RULE, "layerwise_lr_decay": 0.9},
            "gradual unfreezing": {**SMALL_RULE, "gradual_unfreezing": True},
        },
    },
}


def skewed(splits, rows: int, caps: dict[str, int], seed: int = 0):
    """A `rows`-row training set with the capped classes cut to their cap (stratified rest)."""
    import random

    texts, labels = splits["train"]
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    keep = []
    for y, cap in caps.items():
        keep += rng.sample(by_label.pop(y), cap)
    rest = sorted(i for idx in by_label.values() for i in idx)
    share = (rows - len(keep)) / len(rest)
    for idx in by_label.values():
        keep += rng.sample(idx, round(len(idx) * share))
    keep.sort()
    return {**splits, "train": ([texts[i] for i in keep], [labels[i] for i in keep])}


def run_variant(splits, spec, overrides: dict, seed: int, out: Path) -> tuple[float, float]:
    profile = profile_rows(splits, EMBEDDED_MODEL_ID)
    rec = recommend_plan("single_label_classification", profile, probe_resources(), {"seed": seed})
    plan = {**rec.plan.to_dict(), **overrides}
    files = write_splits(splits, out / "data")
    data = {**spec.to_dict(), "files": files, "readers": {}, "sha256": {}}
    data["labels"] = sorted(set(splits["train"][1]))
    started = time.monotonic()
    report = recipe.train_and_evaluate(plan, data, out / "run")
    return report["test"], time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs the TweetEval files in {DATA}", file=sys.stderr)
        return 2
    out_file = ROOT / "bench" / "results" / "rule_checks.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {"checks": {}}
    work = Path(tempfile.mkdtemp(prefix="tunesmith-rules-"))
    lines = []
    for check in args.checks:
        conf = CHECKS[check]
        block: dict = {"rows": conf["rows"], "seeds": args.seeds, "tasks": {}}
        for task in conf["tasks"]:
            positive = TASKS[task]
            spec, splits = load_task(task, 0 if conf.get("skew") else conf["rows"])
            if conf.get("skew"):
                splits = skewed(splits, conf["rows"], conf["skew"])
            counts = Counter(splits["train"][1])
            row: dict = {"train_label_counts": dict(sorted(counts.items())), "variants": {}}
            for name, overrides in conf["variants"].items():
                scores, seconds = [], []
                for seed in args.seeds:
                    folder = work / f"{check}-{task}-{len(row['variants'])}-{seed}"
                    test, secs = run_variant(splits, spec, overrides, seed, folder)
                    scores.append(official(test, positive))
                    seconds.append(round(secs, 1))
                    print(f"{check} {task} {name} seed {seed}: {scores[-1]:.4f}", flush=True)
                row["variants"][name] = {
                    "mean": round(statistics.mean(scores), 4),
                    "spread": round(max(scores) - min(scores), 4),
                    "values": scores,
                    "seconds": seconds,
                }
            best = max(row["variants"], key=lambda n: row["variants"][n]["mean"])
            row["best"] = best
            block["tasks"][task] = row
            figures = "; ".join(
                f"{n} {v['mean']:.4f} (spread {v['spread']:.4f})"
                for n, v in row["variants"].items()
            )
            lines.append(
                f"- {check}, {task} ({sum(counts.values())} rows, "
                f"{dict(sorted(counts.items()))}): {figures}; best: {best}"
            )
        results["checks"][check] = block
    results["date"] = time.strftime("%Y-%m-%d")
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    results["versions"] = {n: metadata.version(n) for n in ("torch", "transformers", "peft")}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    header = [
        f"\n## rule_checks — {results['date']}\n",
        f"- machine: {results['machine']}; {results['versions']}; seeds {args.seeds}; "
        "official test metric (emotion macro-F1, irony F1 of `irony`)",
    ]
    with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as fh:
        fh.write("\n".join(header + lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
