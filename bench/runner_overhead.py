"""Benchmark: the runner's training throughput against a plain PyTorch loop (issue 5, point 8).

Both train the embedded MiniLM on the same batches of TweetEval emotion rows: the same model
(`recipe.build_model`, same seed), the same batch order (`recipe.training_order`), the same
dynamic padding, AdamW with the same learning rate, weight decay groups, linear schedule and
gradient clipping. The runner is `recipe.train_and_evaluate` with the worker's event callback
writing to an events file, as a real run does; its throughput is read from its last `log` event
(samples per second from the start of training to the last step, before the epoch's
evaluation). The plain loop times its own steps. Modes alternate (plain, runner, plain, ...)
so that load on the machine hits both alike; the ratio of the medians is reported.

    OMP_NUM_THREADS=1 .venv/bin/python bench/runner_overhead.py --rows 1024 --repeats 3

Writes bench/results/runner_overhead.json and a dated row in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import environment, recipe_data, record  # noqa: E402
from recommend_vs_defaults import load_task  # noqa: E402

from tuning_core import recipe  # noqa: E402
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan  # noqa: E402
from tuning_core.worker import EventLog, progress_callback  # noqa: E402

BATCH = 16


def make_plan(seed: int) -> dict:
    plan = Plan(
        base_model=EMBEDDED_MODEL_ID,
        batch_size=BATCH,
        epochs=1.0,
        max_length=128,
        learning_rate=5e-5,
        weight_decay=0.01,
        early_stopping_patience=0,
        seed=seed,
    )
    return plan.validate().to_dict()


def small_eval_splits(splits, rows: int = 64):
    """Validation and test cut to a few rows: the benchmark times training, not evaluation."""
    return {
        name: (texts[:rows], labels[:rows]) if name != "train" else (texts, labels)
        for name, (texts, labels) in splits.items()
    }


def runner_samples_per_s(plan: dict, data: dict, work: Path) -> float:
    events = EventLog(work / "events.jsonl")
    work.mkdir(parents=True, exist_ok=True)
    recipe.train_and_evaluate(
        plan, data, work / "run", callbacks=[progress_callback(events, plan["batch_size"])]
    )
    logs = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    last = [e for e in logs if e["type"] == "log"][-1]
    if last["step"] != last["max_steps"]:
        raise RuntimeError(f"the last log is at step {last['step']} of {last['max_steps']}")
    return float(last["samples_per_s"])


def plain_samples_per_s(plan: dict, texts: list[str], names: list[str], labels: list[str]):
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, get_linear_schedule_with_warmup

    tokenizer = AutoTokenizer.from_pretrained(recipe.resolve_model(plan["base_model"]))
    enc = tokenizer(texts, truncation=True, max_length=plan["max_length"])
    ids = {label: i for i, label in enumerate(labels)}
    features = [
        {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
        | {"labels": ids[names[i]]}
        for i in range(len(texts))
    ]
    lengths = [len(f["input_ids"]) for f in features]
    # the runner's order for epoch 0 (see recipe._seeded_trainer_class)
    order = recipe.training_order(lengths, BATCH, plan["seed"] * 1_000_003, "length")
    batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    collate = DataCollatorWithPadding(tokenizer)
    torch.manual_seed(plan["seed"])
    model = recipe.build_model(plan, labels)
    model.train()
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "layer_norm")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not any(k in n for k in no_decay)]}
        | {"weight_decay": plan["weight_decay"]},
        {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    # the Trainer's default optimizer here: AdamW, fused (transformers 5, `adamw_torch_fused`)
    optimizer = torch.optim.AdamW(groups, lr=plan["learning_rate"], fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, len(batches))
    start = time.perf_counter()
    for batch in batches:
        inputs = collate([features[i] for i in batch])
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    return len(order) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024, help="training rows (emotion)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    recipe.quiet_libraries()
    spec, splits = load_task("emotion", args.rows)
    splits = small_eval_splits(splits)
    labels = sorted(set(splits["train"][1]))
    plan = make_plan(args.seed)
    scores: dict[str, list[float]] = {"plain": [], "runner": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = recipe_data(spec, splits, Path(tmp) / "data")
        # warm-up, not timed: the first steps in a process pay for lazy set-up in torch
        texts, names = splits["train"]
        plain_samples_per_s(plan, texts[: 4 * BATCH], names[: 4 * BATCH], labels)
        for r in range(args.repeats):
            scores["plain"].append(plain_samples_per_s(plan, *splits["train"], labels))
            scores["runner"].append(runner_samples_per_s(plan, data, Path(tmp) / f"run-{r}"))
            print({k: round(v[-1], 1) for k, v in scores.items()}, flush=True)
    medians = {k: round(statistics.median(v), 2) for k, v in scores.items()}
    ratio = round(medians["runner"] / medians["plain"], 3)
    result = {
        **environment(),
        "rows": args.rows,
        "batch_size": BATCH,
        "samples_per_s": {k: [round(x, 2) for x in v] for k, v in scores.items()},
        "median_samples_per_s": medians,
        "runner_over_plain": ratio,
        "target": ">= 0.95",
    }
    line = (
        f"emotion, {args.rows} rows, batch {BATCH}, 1 epoch, {args.repeats} alternating repeats: "
        f"plain loop {medians['plain']} samples/s, runner {medians['runner']} samples/s "
        f"(medians); runner / plain {ratio} (target >= 0.95)"
    )
    record("runner_overhead", result, [line])
    return 0


if __name__ == "__main__":
    sys.exit(main())
