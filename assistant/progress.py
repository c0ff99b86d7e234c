"""Turn worker events into short progress text, shared by the app and the headless chat."""

from __future__ import annotations

from typing import Any

from tuning_core.plan import METRIC_CHOICES

# what an eval line shows: the loss and every task's metrics
EVAL_KEYS = ("eval_loss", *(f"eval_{m}" for m in METRIC_CHOICES if m != "loss"))


def format_event(event: dict[str, Any]) -> str | None:
    """One progress line for a worker event, or None for events not worth a line."""
    kind = event.get("type")
    if kind == "log":
        eta = event.get("eta_s", 0)
        return (
            f"  step {event['step']}/{event['max_steps']} · epoch {event['epoch']:.2f} · "
            f"loss {event['loss']:.4f} · lr {event['learning_rate']:.2e} · "
            f"{event['samples_per_s']:.1f} samples/s · ETA {eta:.0f} s · "
            f"mem {event['memory_mb']:.0f} MB"
        )
    if kind == "eval":
        m = event.get("metrics", {})
        parts = [f"{k[5:]} {v:.4f}" for k, v in sorted(m.items()) if k in EVAL_KEYS]
        return f"  eval after epoch {event['epoch']:.0f}: " + ", ".join(parts)
    if kind == "start":
        return f"  training: {event['max_steps']} steps" + (
            f", resuming at step {event['step']}" if event.get("step") else ""
        )
    if kind == "trial":
        params = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in sorted(event.get("params", {}).items())
        )
        value = event.get("value")
        result = f"{value:.4f}" if value is not None else event.get("note") or "-"
        return f"  trial {event['number']} {event['state']}: {result} ({params})"
    if kind == "judging":
        return "  scoring the test rows and the baselines"
    if kind == "oom":
        return (
            f"  out of memory at micro-batch {event['was_batch_size']}: continuing with "
            f"{event['batch_size']} x {event['grad_accum']} accumulation"
            + (f" from step {event['step']}" if event.get("step") else " from the start")
        )
    if kind == "error":
        return f"  error: {event['message']}"
    if kind == "stopped":
        return f"  stopped at step {event['step']} (checkpoint saved)"
    return None
