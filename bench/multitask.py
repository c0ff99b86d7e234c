"""Benchmark: does training TweetEval emotion and irony together (one MiniLM encoder, a head
per task) beat training each apart, when labelled rows are few?

Per seed and target task, two arms, each the recommended plan for the target's labelled
rows (`--rows`, a stratified sample of its training file). The other task (`--aux`) is the
other of emotion and irony by default, or TweetEval sentiment (whose official training split
is not on this machine: its rows come from the sentiment test file, which the datasets README
names as the training pool, its validation file scores it):

  apart     the target task alone
  together  the same plan with `multitask` on: the other task's `--aux-rows` labelled rows
            (a stratified sample of its training file) train a second head on the same
            encoder, its loss weighted by `--weight`, each batch one task's rows
            (`--batches mixed`: rows of both tasks in a batch); early stopping and the kept
            checkpoint follow the target task's validation metric

Both on one thread in the same process; the target's test split scored with its official
metric (macro-F1 for emotion, F1 of irony). Each run appends a line to
bench/results/multitask.jsonl; `--summarise` writes the means to bench/results/multitask.json
and a dated section in bench/RESULTS.md.

    OMP_NUM_THREADS=1 .venv/bin/python bench/multitask.py --task emotion --seeds 42 43 44
    OMP_NUM_THREADS=1 .venv/bin/python bench/multitask.py --task emotion --aux sentiment \
        --aux-rows 2000 --seeds 42 43 44
    .venv/bin/python bench/multitask.py --summarise
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import RESULTS, environment, log_run, logged_runs, recipe_data, record  # noqa: E402
from recommend_vs_defaults import DATA, TASKS, load_task, official  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.data import inspect_data  # noqa: E402
from tuning_core.hardware import probe_resources  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID  # noqa: E402
from tuning_core.profile import profile_rows  # noqa: E402
from tuning_core.recommend import recommend_plan  # noqa: E402

LOG = RESULTS / "multitask.jsonl"
SENTIMENT_TEST_ROWS = 1000  # the auxiliary sentiment head's own test rows


def load_sentiment(rows: int, seed: int = 0):
    """TweetEval sentiment as an auxiliary task: `rows` training rows and 1,000 test rows, both
    stratified samples of the sentiment test file (the training pool), and its validation file."""
    from tuning_core.baseline import stratified_sample

    folder = DATA / "sentiment"
    texts, labels = recipe.read_rows(folder / "test.csv", "text", "label")
    train = sorted(stratified_sample(labels, rows, seed))
    taken = set(train)
    rest = [i for i in range(len(labels)) if i not in taken]
    test = [rest[i] for i in sorted(stratified_sample([labels[i] for i in rest],
                                                      SENTIMENT_TEST_ROWS, seed))]  # fmt: skip
    splits = {
        "train": ([texts[i] for i in train], [labels[i] for i in train]),
        "validation": recipe.read_rows(folder / "val.csv", "text", "label"),
        "test": ([texts[i] for i in test], [labels[i] for i in test]),
    }
    return inspect_data(folder / "val.csv"), splits


def run_seed(
    task: str, other: str, rows: int, aux_rows: int, seed: int, weight: float, batches: str
) -> dict:
    import torch

    torch.set_num_threads(1)
    spec, splits = load_task(task, rows, seed=0)
    if other == "sentiment":
        aux_spec, aux_splits = load_sentiment(aux_rows)
    else:
        aux_spec, aux_splits = load_task(other, aux_rows, seed=0)
    profile = profile_rows(splits, EMBEDDED_MODEL_ID)
    plan = recommend_plan(spec.task, profile, probe_resources(), {"seed": seed}).plan.to_dict()
    out: dict = {"task": task, "auxiliary": other, "rows": rows, "aux_rows": aux_rows, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = recipe_data(spec, splits, work / "data")
        aux = recipe_data(aux_spec, aux_splits, work / "aux")
        aux = {**aux, "name": other, "positive_label": TASKS.get(other)}
        started = time.monotonic()
        apart = recipe.train_and_evaluate(plan, data, work / "apart")
        apart_seconds = time.monotonic() - started
        together_plan = {
            **plan,
            "multitask": True,
            "auxiliary_weight": weight,
            "multitask_batches": batches,
        }
        started = time.monotonic()
        together = recipe.train_and_evaluate(
            together_plan, {**data, "auxiliary": [aux]}, work / "together"
        )
        together_seconds = time.monotonic() - started
    positive, aux_positive = TASKS[task], TASKS.get(other)
    side = together["tasks"][other]
    out.update(
        apart=official(apart["test"], positive),
        together=official(together["test"], positive),
        apart_validation=official(apart["validation"], positive),
        together_validation=official(together["validation"], positive),
        auxiliary_test=official(side["test"], aux_positive),
        apart_seconds=round(apart_seconds, 1),
        together_seconds=round(together_seconds, 1),
        apart_epochs_run=apart["epochs_run"],
        together_epochs_run=together["epochs_run"],
        plan={k: plan[k] for k in ("learning_rate", "epochs", "batch_size", "head_init")},
        weight=weight,
        batches=batches,
    )
    return log_run(LOG, out)


def summarise() -> None:
    runs = logged_runs(LOG)
    summary = {**environment(), "tasks": {}}
    lines = []

    def setting(r: dict) -> tuple:
        # runs before the batches option trained with mixed batches
        return r["task"], r["auxiliary"], r["aux_rows"], r["weight"], r.get("batches", "mixed")

    for task, other, aux_rows, weight, batches in sorted({setting(r) for r in runs}):
        mine = [r for r in runs if setting(r) == (task, other, aux_rows, weight, batches)]
        apart = [r["apart"] for r in mine]
        together = [r["together"] for r in mine]
        gain = statistics.mean(together) - statistics.mean(apart)
        ratio = statistics.mean(r["together_seconds"] / r["apart_seconds"] for r in mine)
        summary["tasks"][f"{task}+{other}-{aux_rows}-w{weight:g}-{batches}"] = {
            "task": task,
            "batches": batches,
            "auxiliary": mine[0]["auxiliary"],
            "seeds": [r["seed"] for r in mine],
            "rows": mine[0]["rows"],
            "aux_rows": mine[0]["aux_rows"],
            "weight": mine[0]["weight"],
            "together_mean": round(statistics.mean(together), 4),
            "apart_mean": round(statistics.mean(apart), 4),
            "gain": round(gain, 4),
            "better_seeds": sum(t > a for t, a in zip(together, apart, strict=True)),
            "time_ratio_together_over_apart": round(ratio, 2),
            "runs": mine,
        }
        metric = "macro-F1" if TASKS[task] is None else f"F1 of {TASKS[task]}"
        lines.append(
            f"{task} ({mine[0]['rows']} labelled rows) with {mine[0]['auxiliary']} "
            f"({mine[0]['aux_rows']} rows, loss weight {mine[0]['weight']:g}, {batches} "
            f"batches) as the other task, {metric} on test, seeds {', '.join(str(r['seed']) for r in mine)}: together "
            f"{statistics.mean(together):.4f} ({', '.join(f'{x:.4f}' for x in together)}) "
            f"against apart {statistics.mean(apart):.4f} "
            f"({', '.join(f'{x:.4f}' for x in apart)}): {gain:+.4f}; better on "
            f"{sum(t > a for t, a in zip(together, apart, strict=True))} of {len(mine)} seeds; "
            "time "
            f"together/apart {ratio:.2f}"
        )
    record("multitask", summary, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="emotion")
    parser.add_argument(
        "--aux",
        choices=[*sorted(TASKS), "sentiment"],
        help="the other task (default: the other of emotion and irony)",
    )
    parser.add_argument("--rows", type=int, default=400, help="the target's labelled rows")
    parser.add_argument("--aux-rows", type=int, default=400, help="the other task's rows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--weight", type=float, default=1.0, help="the other task's loss weight")
    parser.add_argument(
        "--batches", choices=["by_task", "mixed"], default="by_task", help="multitask_batches"
    )
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        summarise()
        return
    for seed in args.seeds:
        other = args.aux or next(t for t in TASKS if t != args.task)
        if other == args.task:
            parser.error("--aux must differ from --task")
        run_seed(args.task, other, args.rows, args.aux_rows, seed, args.weight, args.batches)


if __name__ == "__main__":
    main()
