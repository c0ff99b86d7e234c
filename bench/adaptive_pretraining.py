"""Benchmark: does task-adaptive pretraining (masked-LM on the task's texts first) help
fine-tuning MiniLM on TweetEval, at the same total compute?

Setting (the one adaptive pretraining is for): few labelled rows (`--rows`, a stratified sample
of the training file) and the rest of the training file's texts as unlabelled text. Two arms
per seed, each the recommended plan for the labelled rows:

  adapt   `--adapt-epochs` of masked-LM training (15% of tokens masked) on all training texts
          (labelled and unlabelled), then the plan's fine-tuning from the adapted encoder
  plain   the plan's fine-tuning with its epochs stretched by the adapt arm's compute: the
          masked-LM stage's seconds over the adapt arm's fine-tuning seconds per epoch

Both on one thread in the same process, the test split scored with the task's official metric
(macro-F1 for emotion, F1 of irony). Each run appends a line to
bench/results/adaptive_pretraining.jsonl; `--summarise` writes the means to
bench/results/adaptive_pretraining.json and a dated section in bench/RESULTS.md.

    OMP_NUM_THREADS=1 .venv/bin/python bench/adaptive_pretraining.py --task emotion --seeds 42 43 44
    .venv/bin/python bench/adaptive_pretraining.py --summarise
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import RESULTS, environment, log_run, logged_runs, recipe_data, record  # noqa: E402
from recommend_vs_defaults import TASKS, load_task, official  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.hardware import probe_resources  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID  # noqa: E402
from tuning_core.profile import profile_rows  # noqa: E402
from tuning_core.recommend import recommend_plan  # noqa: E402

LOG = RESULTS / "adaptive_pretraining.jsonl"


def run_seed(task: str, rows: int, seed: int, adapt_epochs: float, adapt_lr: float) -> dict:
    import torch

    torch.set_num_threads(1)
    spec, splits = load_task(task, rows, seed=0)
    _, full = load_task(task, 0)
    labelled = set(splits["train"][0])
    unlabelled = [t for t in full["train"][0] if t not in labelled]
    profile = profile_rows(splits, EMBEDDED_MODEL_ID)
    plan = recommend_plan(spec.task, profile, probe_resources(), {"seed": seed}).plan.to_dict()
    out: dict = {"task": task, "rows": rows, "seed": seed, "unlabelled": len(unlabelled)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = recipe_data(spec, splits, work / "data")
        extra = work / "unlabelled.txt"
        extra.write_text("\n".join(" ".join(t.split()) for t in unlabelled) + "\n")
        adapt_plan = {**plan, "adapt_epochs": adapt_epochs, "adapt_learning_rate": adapt_lr}
        started = time.monotonic()
        adapted = recipe.train_and_evaluate(adapt_plan, {**data, "unlabelled": str(extra)},
                                            work / "adapt")  # fmt: skip
        adapt_seconds = time.monotonic() - started
        stage = adapted["adaptive_pretraining"]
        tune_seconds = adapt_seconds - stage["seconds"]
        per_epoch = tune_seconds / max(adapted["epochs_run"], 1e-9)
        extra_epochs = math.ceil(stage["seconds"] / per_epoch)
        plain_plan = {**plan, "epochs": float(plan["epochs"] + extra_epochs)}
        started = time.monotonic()
        plain = recipe.train_and_evaluate(plain_plan, data, work / "plain")
        plain_seconds = time.monotonic() - started
    positive = TASKS[task]
    out.update(
        adapt=official(adapted["test"], positive),
        plain=official(plain["test"], positive),
        adapt_validation=official(adapted["validation"], positive),
        plain_validation=official(plain["validation"], positive),
        adapt_seconds=round(adapt_seconds, 1),
        plain_seconds=round(plain_seconds, 1),
        mlm_seconds=stage["seconds"],
        mlm_loss=[stage["loss_first"], stage["loss_last"]],
        mlm_texts=stage["texts"],
        adapt_epochs_run=adapted["epochs_run"],
        plain_epochs=plain_plan["epochs"],
        plain_epochs_run=plain["epochs_run"],
        plan={k: plan[k] for k in ("learning_rate", "epochs", "batch_size", "head_init")},
        adapt_epochs=adapt_epochs,
        adapt_learning_rate=adapt_lr,
    )
    return log_run(LOG, out)


def summarise() -> None:
    runs = logged_runs(LOG)
    summary = {**environment(), "tasks": {}}
    lines = []
    for task in sorted({r["task"] for r in runs}):
        mine = [r for r in runs if r["task"] == task]
        adapt = [r["adapt"] for r in mine]
        plain = [r["plain"] for r in mine]
        gain = statistics.mean(adapt) - statistics.mean(plain)
        ratio = statistics.mean(r["adapt_seconds"] / r["plain_seconds"] for r in mine)
        summary["tasks"][task] = {
            "seeds": [r["seed"] for r in mine],
            "rows": mine[0]["rows"],
            "unlabelled": mine[0]["unlabelled"],
            "adapt_mean": round(statistics.mean(adapt), 4),
            "plain_mean": round(statistics.mean(plain), 4),
            "gain": round(gain, 4),
            "better_seeds": sum(a > p for a, p in zip(adapt, plain, strict=True)),
            "time_ratio_adapt_over_plain": round(ratio, 2),
            "runs": mine,
        }
        metric = "macro-F1" if TASKS[task] is None else f"F1 of {TASKS[task]}"
        lines.append(
            f"{task}, {mine[0]['rows']} labelled rows + {mine[0]['unlabelled']:,} unlabelled "
            f"texts, {metric} on test, seeds {', '.join(str(r['seed']) for r in mine)}: "
            f"adaptive pretraining ({mine[0]['adapt_epochs']:g} masked-LM epochs at "
            f"{mine[0]['adapt_learning_rate']:g}) {statistics.mean(adapt):.4f} "
            f"({', '.join(f'{a:.4f}' for a in adapt)}) against {statistics.mean(plain):.4f} "
            f"({', '.join(f'{p:.4f}' for p in plain)}) for fine-tuning alone with its epochs "
            f"stretched to the same compute: {gain:+.4f}; better on "
            f"{summary['tasks'][task]['better_seeds']} of {len(mine)} seeds; time adapt/plain "
            f"{ratio:.2f}"
        )
    record("adaptive_pretraining", summary, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="emotion")
    parser.add_argument("--rows", type=int, default=400, help="labelled training rows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--adapt-epochs", type=float, default=2.0)
    parser.add_argument("--adapt-lr", type=float, default=1e-4)
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        summarise()
        return
    for seed in args.seeds:
        run_seed(args.task, args.rows, seed, args.adapt_epochs, args.adapt_lr)


if __name__ == "__main__":
    main()
