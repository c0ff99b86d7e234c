"""Forecast a run's peak memory and time before it starts, and check the forecast afterwards.

Memory is modelled from its parts: the process with torch and transformers loaded (measured on
the machine), the fp32 weights, the gradients and AdamW's two moments of the trainable
parameters, and the activations of one batch (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models": about s*b*h*(34 + 5*a*s/h) bytes per layer in 16-bit,
doubled here for fp32). Time comes from timing a few real training steps on this hardware
(`calibrate`, run in a subprocess so the app never loads torch), scaled to the steps of an epoch.
`compare` puts the forecast next to what the run measured.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_core.models import model_facts
from tuning_core.plan import Plan
from tuning_core.profile import DataProfile

# RSS of a process that has imported torch, transformers and datasets (measured on the 2-core
# CPU machine, 2026-11-28: 459 MB); `calibrate` replaces it with this machine's own figure.
RUNTIME_MB_DEFAULT = 460.0
# Allocator slack and the copies made while a checkpoint is written, as a share of the
# weights + gradients + optimizer state. Fitted to the two MiniLM runs measured here (demo:
# 908 MB peak, TweetEval emotion: 1009 MB); see bench/RESULTS.md.
STATE_OVERHEAD = 1.25
MB = 1024**2


@dataclass
class Forecast:
    peak_memory_mb: float
    seconds_per_epoch: float
    total_seconds: float
    steps_per_epoch: int
    trainable_params_m: float
    breakdown_mb: dict[str, float] = field(default_factory=dict)
    seconds_per_step: float | None = None
    calibrated: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Forecast:
        return cls(**raw)

    def describe(self) -> str:
        how = "timed on this machine" if self.calibrated else "estimated from the model size"
        return (
            f"peak memory ~{self.peak_memory_mb:,.0f} MB, ~{self.seconds_per_epoch:,.0f} s per "
            f"epoch, ~{self.total_seconds / 60:,.1f} min in all ({how})"
        )


def trainable_params_m(plan: Plan, params_m: float, layers: int, hidden: int, labels: int) -> float:
    """Parameters (millions) that get gradients and optimizer state under the plan's freezing."""
    head = (hidden * hidden + hidden + hidden * labels + labels) / 1e6  # pooler + classifier
    per_layer = 12 * hidden * hidden / 1e6  # attention (4h^2) + feed-forward (8h^2)
    if plan.freezing == "head_only":
        return head
    if plan.freezing == "bottom_k":
        embeddings = max(0.0, params_m - layers * per_layer)
        return max(head, params_m - embeddings - min(plan.freeze_layers, layers) * per_layer)
    if plan.freezing == "lora":
        targets = len(plan.extras.get("lora_targets") or ("query", "value"))
        return head + layers * targets * 2 * plan.lora_rank * hidden / 1e6
    return params_m + head


def activation_mb(plan: Plan, layers: int, hidden: int, heads: int, seq: int) -> float:
    """Activations kept for the backward pass of one micro-batch: the 16-bit figure, doubled
    in fp32 (under bf16/fp16 autocast most saved tensors are 16-bit)."""
    b, s, h, a = plan.batch_size, seq, hidden, heads
    per_layer = s * b * h * (34 + 5 * a * s / h) * (2 if plan.precision == "fp32" else 1)
    return layers * per_layer / MB


def forecast_run(
    plan: Plan,
    profile: DataProfile,
    labels: int,
    calibration: dict[str, Any] | None = None,
    other_rows: int = 0,
) -> Forecast:
    """Peak memory and time for `plan` on data like `profile`; `calibration` from `calibrate`.
    `other_rows`: the training rows of other label sets trained with it (multi-task), which
    each epoch reads too."""
    card = model_facts(plan.base_model)
    params_m = card.params_m if card else 110.0
    layers = card.layers if card and card.layers else 12
    hidden = card.hidden if card and card.hidden else 768
    heads = max(1, hidden // 64)
    trainable = trainable_params_m(plan, params_m, layers, hidden, labels)
    weights = (params_m * 1e6 * 4) / MB
    grads = (trainable * 1e6 * 4) / MB
    optimizer = (trainable * 1e6 * 8) / MB
    seq = min(plan.max_length, max(8, profile.token_lengths.get("max", plan.max_length)))
    activations = activation_mb(plan, layers, hidden, heads, seq)
    if plan.freezing == "head_only":
        activations *= 0.1  # no backward through the frozen encoder: little is kept
    runtime = float((calibration or {}).get("runtime_mb") or RUNTIME_MB_DEFAULT)
    state = (weights + grads + optimizer) * STATE_OVERHEAD
    peak = runtime + state + activations
    train_rows = profile.rows.get("train", 0) + (other_rows if plan.multitask else 0)
    steps = max(1, math.ceil(train_rows / plan.batch_size / plan.grad_accum))
    notes = []
    if calibration and calibration.get("seconds_per_step"):
        per_step = float(calibration["seconds_per_step"]) * plan.grad_accum
        calibrated = True
        notes.append(f"timed {calibration.get('steps')} real steps: {per_step:.3f} s per step")
    else:
        # fallback: MiniLM trains ~60 samples/s on 2 CPU cores (BASELINES.md; 57-58 measured here
        # on tweets and on the demo posts); per-step overheads dominate short texts, so length
        # only counts above ~26 tokens
        per_sample = (
            (1 / 60.0) * (params_m / 22.7) * max(1.0, profile.token_lengths.get("p50", 26) / 26)
        )
        per_step = per_sample * plan.batch_size * plan.grad_accum
        calibrated = False
    evals = profile.rows.get("validation", 0)
    eval_seconds = evals * per_step / plan.batch_size / 3  # forward only: about a third
    per_epoch = steps * per_step + eval_seconds
    total = (
        per_epoch * plan.epochs
        + (profile.rows.get("test", 0) + evals) * per_step / plan.batch_size / 3
    )
    return Forecast(
        peak_memory_mb=round(peak, 0),
        seconds_per_epoch=round(per_epoch, 1),
        total_seconds=round(total, 1),
        steps_per_epoch=steps,
        trainable_params_m=round(trainable, 3),
        breakdown_mb={
            "runtime": round(runtime, 1),
            "weights": round(weights, 1),
            "gradients": round(grads, 1),
            "optimizer": round(optimizer, 1),
            "overhead": round(state - weights - grads - optimizer, 1),
            "activations": round(activations, 1),
        },
        seconds_per_step=round(per_step, 4),
        calibrated=calibrated,
        notes=notes,
    )


def calibrate(plan: Plan, data: dict[str, Any], steps: int = 6, timeout_s: float = 180) -> dict:
    """Time `steps` real training steps of `plan` in a subprocess; its RSS after the imports too.

    Returns {"seconds_per_step", "runtime_mb", "peak_mb", "steps"}, or {"error": ...} when the
    model cannot be loaded; never raises for a failed calibration.
    """
    code = (
        "import json, sys; from tuning_core.forecast import _calibrate_here; "
        "print(json.dumps(_calibrate_here(json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]))))"
    )
    root = str(Path(__file__).resolve().parent.parent)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(plan.to_dict()), json.dumps(data), str(steps)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=root,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timing {steps} steps took longer than {timeout_s:.0f} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return {"error": last[:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _calibrate_here(plan: dict, data: dict, steps: int) -> dict:
    """Inside the subprocess: a few optimizer steps on real training texts, timed."""
    import random
    import resource
    import time

    from tuning_core import recipe

    recipe.quiet_libraries()
    import torch
    from transformers import AutoTokenizer, Trainer  # noqa: F401 - the worker loads both

    runtime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    splits = recipe.load_splits(data)
    texts, names = splits["train"]
    labels = list(data["labels"])
    task, fmt = recipe.task_of(data), data.get("label_format")
    rng = random.Random(int(plan.get("seed", 42)))
    batch = int(plan["batch_size"])
    picks = [rng.randrange(len(texts)) for _ in range(batch * (steps + 1))]
    torch.manual_seed(int(plan.get("seed", 42)))
    model = recipe.build_model(plan, labels)
    model.train()
    tokenizer = AutoTokenizer.from_pretrained(
        recipe.resolve_model(plan["base_model"]),
        trust_remote_code=recipe.model_load_options(plan)["trust_remote_code"],
    )
    if task == recipe.INSTRUCT_TASK:
        recipe.instruct_tools().ensure_chat_template(tokenizer)  # a pad token to pad with
        texts = [
            tokenizer.apply_chat_template(recipe.conversation(t, y), tokenize=False)
            for t, y in zip(texts, names, strict=True)
        ]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(plan["learning_rate"]))
    label_id = {y: i for i, y in enumerate(labels)}
    # training groups texts of similar length into a batch: mimic that, or padding inflates time
    lengths = [len(ids) for ids in tokenizer([texts[i] for i in picks])["input_ids"]]
    picks = [i for _, i in sorted(zip(lengths, picks, strict=True))]
    rng.shuffle(batches := [picks[k * batch : (k + 1) * batch] for k in range(steps + 1)])
    times = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        rows = batches[step]
        enc = tokenizer(
            [texts[i] for i in rows],
            truncation=True,
            max_length=int(plan["max_length"]),
            padding=True,
            return_tensors="pt",
        )
        if task == recipe.INSTRUCT_TASK:  # next-token prediction over the whole row
            target = enc["input_ids"]
        elif task == recipe.TOKEN_TASK:  # any tag per token does for timing a step
            target = torch.zeros_like(enc["input_ids"])
        elif task == "regression":
            target = torch.tensor([recipe.parse_target(names[i]) for i in rows])
        elif task == "multi_label_classification":
            chosen = [set(recipe.parse_label_list(names[i], fmt)) for i in rows]
            target = torch.tensor([[float(y in row) for y in labels] for row in chosen])
        else:
            target = torch.tensor([label_id.get(names[i], 0) for i in rows])
        start = time.perf_counter()
        loss = model(**enc, labels=target).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "seconds_per_step": round(times[len(times) // 2], 4),  # the median step
        "runtime_mb": round(runtime_mb, 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": steps,
    }


def compare(forecast: dict[str, Any], events: list[dict[str, Any]], status: dict[str, Any]) -> dict:
    """The forecast beside what the run measured (peak memory, seconds per epoch)."""
    logs = [e for e in events if e.get("type") == "log"]
    measured_mb = max((e.get("memory_mb", 0) for e in logs), default=None)
    evals = [e for e in events if e.get("type") == "eval"]
    starts = [e for e in events if e.get("type") == "start"]
    per_epoch = None
    if len(evals) >= 1 and starts:
        first_eval = evals[0]
        per_epoch = round(first_eval["time"] - starts[0]["time"], 1)
    out = {
        "forecast_peak_mb": forecast.get("peak_memory_mb"),
        "measured_peak_mb": measured_mb,
        "forecast_seconds_per_epoch": forecast.get("seconds_per_epoch"),
        "measured_seconds_per_epoch": per_epoch,
    }
    if measured_mb:
        out["memory_error"] = round(forecast["peak_memory_mb"] / measured_mb - 1, 3)
    if per_epoch:
        out["time_error"] = round(forecast["seconds_per_epoch"] / per_epoch - 1, 3)
    return out
