"""Live diagnosis of a run from its events: divergence, a rising validation loss, a plateau,
and the worker's recovery from running out of GPU memory.

`RunWatcher.feed(event)` takes the worker's events one by one and returns what it newly
noticed, each finding at most once per run: what it saw, what it would do, and why. The
thresholds are rules of thumb, stated in each message; nothing here stops a run by itself.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

# training loss this many times its early level (or not finite): diverging
EXPLODE_FACTOR = 3.0
# validation loss up this many evaluations in a row while training loss goes down: overfitting
RISES = 2
# the metric no better than its best by more than this for PLATEAU_EVALS evaluations: a plateau
PLATEAU_DELTA = 0.002
PLATEAU_EVALS = 3


@dataclass(frozen=True)
class Finding:
    kind: str  # "divergence", "overfitting", "plateau" or "out_of_memory-BATCH"
    step: int
    message: str  # what was seen, what tunesmith would do, and why

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "message": self.message}


class RunWatcher:
    def __init__(self, metric: str = "macro_f1") -> None:
        self.metric = metric
        self.losses: list[tuple[int, float]] = []
        self.evals: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def feed(self, event: dict[str, Any]) -> list[Finding]:
        kind = event.get("type")
        found: list[Finding] = []
        if kind == "start" and event.get("step", 0) == 0:
            self.losses, self.evals = [], []  # a new trial or a fresh run
        if kind == "log" and "loss" in event:
            self.losses.append((int(event.get("step", 0)), float(event["loss"])))
            found += self._divergence()
        elif kind == "oom":  # the worker already acted; say what it did
            batch = event.get("batch_size")
            found.append(
                Finding(f"out_of_memory-{batch}", int(event.get("step", 0)), event["message"])
            )
        elif kind == "eval":
            self.evals.append({"step": int(event.get("step", 0)), **event.get("metrics", {})})
            found += self._overfitting() + self._plateau()
        out = [f for f in found if f.kind not in self.seen]
        self.seen.update(f.kind for f in out)
        return out

    def _divergence(self) -> list[Finding]:
        step, loss = self.losses[-1]
        if not math.isfinite(loss):
            return [
                Finding(
                    "divergence",
                    step,
                    f"The training loss is {loss} at step {step}: the run has diverged. I would "
                    "stop, keep the best checkpoint so far, and retry with half the learning "
                    "rate (or fp32 if it ran in fp16): a step too large for the loss surface "
                    "sends the weights off to infinity.",
                )
            ]
        if len(self.losses) < 4:
            return []
        early = min(v for _s, v in self.losses[:3])
        if loss > EXPLODE_FACTOR * early:
            return [
                Finding(
                    "divergence",
                    step,
                    f"The training loss rose to {loss:.3f} at step {step}, more than "
                    f"{EXPLODE_FACTOR:g}x its early level ({early:.3f}). I would stop, keep the "
                    "best checkpoint, and retry with half the learning rate: a loss that climbs "
                    "while training usually means the steps are too large.",
                )
            ]
        return []

    def _overfitting(self) -> list[Finding]:
        losses = [e.get("eval_loss") for e in self.evals]
        if len(losses) < RISES + 1 or any(v is None for v in losses[-RISES - 1 :]):
            return []
        recent = losses[-RISES - 1 :]
        rising = all(b > a for a, b in itertools.pairwise(recent))
        if not rising:
            return []
        first_step, last_step = self.evals[-RISES - 1]["step"], self.evals[-1]["step"]
        train = [v for s, v in self.losses if first_step <= s <= last_step]
        if len(train) >= 2 and train[-1] >= train[0]:
            return []  # training loss is not falling either: not overfitting
        sign = self._sign
        best = max(self.evals, key=lambda e: sign * e.get(f"eval_{self.metric}", -sign * 1e9))
        trail = " -> ".join(f"{v:.4f}" for v in recent)
        return [
            Finding(
                "overfitting",
                self.evals[-1]["step"],
                f"Validation loss has risen {RISES} evaluations in a row ({trail}) while the "
                "training loss fell: the model is starting to memorise the training rows. I "
                f"would stop and keep the best checkpoint (step {best['step']}); early stopping "
                "does this when it is on. Next time: fewer epochs, or more weight decay or "
                "dropout.",
            )
        ]

    @property
    def _sign(self) -> int:
        return -1 if self.metric in ("mse", "mae", "loss", "perplexity") else 1

    def _plateau(self) -> list[Finding]:
        key = f"eval_{self.metric}"
        values = [e.get(key) for e in self.evals]
        if len(values) < PLATEAU_EVALS + 1 or any(v is None for v in values):
            return []
        sign = self._sign  # errors (mse, mae) improve downwards
        before = sign * max(sign * v for v in values[:-PLATEAU_EVALS])
        recent = values[-PLATEAU_EVALS:]
        if max(sign * v for v in recent) > sign * before + PLATEAU_DELTA:
            return []
        return [
            Finding(
                "plateau",
                self.evals[-1]["step"],
                f"The validation {self.metric} has not beaten {before:.4f} by more than "
                f"{PLATEAU_DELTA} for {PLATEAU_EVALS} evaluations: more epochs at this "
                "learning rate are unlikely to help. I would stop and keep the best checkpoint; "
                "if the score is also low, a higher learning rate or less freezing is the next "
                "thing to try.",
            )
        ]
