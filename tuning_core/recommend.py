"""Rule-based recommendations: fill a `Plan` from the task, the data profile and the machine.

`recommend_plan` is a pure function: the same inputs give the same plan and the same reasons.
Each choice carries a one-line reason and the id of the knowledge note that backs it
(`knowledge/notes.toml`), so the conversation can answer "why?". The rules stay simple until a
benchmark shows a better one (see BASELINES.md: textbook settings lost to plain defaults).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import knowledge
from tuning_core.hardware import Resources
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan
from tuning_core.profile import DataProfile

# Bytes per parameter for full fine-tuning with AdamW in float32: weights, gradients and two
# optimizer moments (4 + 4 + 8).
BYTES_PER_PARAM_FULL = 16
# Samples per second measured here for MiniLM-L6 training on 2 CPU cores at ~48 tokens
# (BASELINES.md: about 60 samples/s at batch 32).
MINILM_CPU_SAMPLES_PER_S = 60.0
# Below this many optimizer steps in 3 epochs, the small-data rule trains longer at a higher
# learning rate (bench/RESULTS.md, recommend_vs_defaults_400).
SMALL_DATA_STEPS = 600


@dataclass(frozen=True)
class Reason:
    text: str
    note: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Recommendation:
    plan: Plan
    reasons: dict[str, Reason]
    estimate_minutes: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "reasons": {k: v.to_dict() for k, v in self.reasons.items()},
            "estimate_minutes": self.estimate_minutes,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recommendation:
        return cls(
            plan=Plan.from_dict(raw["plan"]),
            reasons={k: Reason(**v) for k, v in raw["reasons"].items()},
            estimate_minutes=float(raw["estimate_minutes"]),
        )


def model_facts(name: str) -> knowledge.ModelCard | None:
    """The catalogue entry for `name`, or one read from a local folder's config.json."""
    card = knowledge.get_model(name)
    if card is not None:
        return card
    config_file = Path(name).expanduser() / "config.json"
    if not config_file.exists():
        return None
    import json

    config = json.loads(config_file.read_text())
    hidden = int(config.get("hidden_size", config.get("dim", 0)) or 0)
    layers = int(config.get("num_hidden_layers", config.get("n_layers", 0)) or 0)
    vocab = int(config.get("vocab_size", 0) or 0)
    # embeddings plus ~12 h^2 per transformer block: close enough to size memory and time
    params = (vocab * hidden + layers * 12 * hidden * hidden) / 1e6
    decoder = any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or ())
    return knowledge.ModelCard(
        id=name,
        params_m=round(max(params, 0.01), 2),
        layers=layers,
        hidden=hidden,
        max_positions=int(config.get("max_position_embeddings", 512)),
        languages=("unknown",),
        domain="general",
        licence="unknown",
        architecture=str(config.get("model_type", "unknown")),
        lora_targets=("q_proj", "v_proj") if decoder else ("query", "value"),
        embedded=False,
        source=str(config_file),
        summary="read from the model's config.json (outside the catalogue)",
        kind="decoder" if decoder else "encoder",
    )


def estimate_minutes(plan: Plan, profile: DataProfile, resources: Resources) -> float:
    """A rough training time: samples to process over a throughput scaled from MiniLM on CPU."""
    card = model_facts(plan.base_model)
    params = card.params_m if card else 110.0
    tokens = max(8, min(plan.max_length, profile.token_lengths.get("p50", 32) * 1.5))
    speed = MINILM_CPU_SAMPLES_PER_S * (22.7 / params) * (48 / tokens)
    speed *= max(1, resources.cpu_cores) / 2
    if resources.has_cuda:
        speed *= 20
    if plan.freezing in ("head_only", "lora"):
        speed *= 1.5  # no backward pass through (most of) the encoder weights
    evals = profile.rows.get("validation", 0) + profile.rows.get("test", 0)
    samples = profile.rows.get("train", 0) * plan.epochs + evals * (plan.epochs + 1) / 3
    return round(samples / speed / 60 + 0.3, 1)  # + model loading


def recommend_plan(
    task: str,
    profile: DataProfile,
    resources: Resources,
    constraints: dict[str, Any] | None = None,
) -> Recommendation:
    """Fill a plan with a reason per choice. `constraints` may fix `base_model` or `seed`."""
    constraints = constraints or {}
    reasons: dict[str, Reason] = {}
    plan = Plan()

    # -- base model
    base_model = constraints.get("base_model") or EMBEDDED_MODEL_ID
    card = model_facts(base_model)
    if base_model == EMBEDDED_MODEL_ID:
        reasons["base_model"] = Reason(
            "all-MiniLM-L6-v2 ships with tunesmith (no hub needed) and trains fast on a CPU: "
            "22.7M parameters, 6 layers",
            "embedded-default-model",
        )
    else:
        known = "from the catalogue" if knowledge.get_model(base_model) else "outside the catalogue"
        reasons["base_model"] = Reason(f"you chose it ({known})", "embedded-default-model")

    # -- max length: cover 99% of the training texts
    max_positions = card.max_positions if card else 512
    p99 = max(8, profile.token_lengths.get("p99", 128))
    max_length = min(max_positions, int(math.ceil(p99 / 8) * 8))
    truncated = profile.truncated_share(max_length)
    reasons["max_length"] = Reason(
        f"covers 99% of training texts (p99 = {profile.token_lengths.get('p99')} tokens, "
        f"longest {profile.token_lengths.get('max')}); {truncated:.1%} would be truncated, "
        "and batches are padded only to their longest text",
        "max-length-p99",
    )

    # -- freezing: full fine-tuning while it fits in memory, LoRA otherwise
    params = card.params_m if card else 110.0
    memory_gb = resources.gpu_memory_gb if resources.has_cuda else resources.ram_gb
    need_gb = params * 1e6 * BYTES_PER_PARAM_FULL / 1024**3 * 1.5  # + activations
    if memory_gb and need_gb > 0.6 * memory_gb:
        freezing, note = "lora", "lora-large-model"
        why = (
            f"full fine-tuning needs ~{need_gb:.1f} GiB, more than 60% of the {memory_gb:.0f} "
            "GiB available; LoRA trains small adapters instead"
        )
    else:
        freezing, note = "none", "full-finetune-default"
        why = (
            f"the whole model ({params:,.1f}M parameters, ~{need_gb:.1f} GiB to train) fits "
            f"easily in {memory_gb:.0f} GiB, and tuning every layer is the strong default"
        )
    reasons["freezing"] = Reason(why, note)
    if freezing == "lora":
        reasons["lora_rank"] = Reason(
            "rank 8 with alpha 16: the common starting point", "lora-rank"
        )

    # -- regularisation
    reasons["dropout"] = Reason(
        "keep the model's own dropout (0.1 for BERT-style models)", "dropout-pretrained"
    )
    reasons["weight_decay"] = Reason(
        "0, the Trainer default: a 'textbook' 0.01 did not beat it on TweetEval here",
        "weight-decay-zero",
    )
    train_rows = max(1, profile.rows.get("train", 0))
    conflict_share = profile.conflicting_texts / train_rows
    label_smoothing = 0.1 if conflict_share > 0.01 else 0.0
    reasons["label_smoothing"] = Reason(
        f"{profile.conflicting_texts} texts carry conflicting labels "
        f"({conflict_share:.1%} of training rows)"
        + ("; soften the targets" if label_smoothing else "; no need to soften the targets"),
        "label-smoothing-conflicts",
    )
    reasons["early_stopping_patience"] = Reason(
        "evaluate each epoch, keep the best checkpoint, stop after 2 epochs without gain",
        "early-stopping",
    )

    # -- optimisation: the Trainer defaults, which beat a textbook config here
    batch_size = 16 if resources.has_cuda and train_rows > 20000 else 8
    reasons["learning_rate"] = Reason(
        "5e-5 with a linear decay and no warmup", "trainer-defaults-lr-batch"
    )
    reasons["batch_size"] = Reason(
        f"{batch_size}: more optimizer steps on a few thousand rows than batch 32",
        "trainer-defaults-lr-batch",
    )
    reasons["epochs"] = Reason(
        "3 passes over the data, with the best epoch kept", "trainer-defaults-lr-batch"
    )
    learning_rate, epochs, patience = 5e-5, 3.0, 2
    steps_per_epoch = math.ceil(train_rows / batch_size)
    if steps_per_epoch * 3 < SMALL_DATA_STEPS:
        # few rows: 3 epochs are too few optimizer steps; train longer, faster, stop on validation
        learning_rate, patience = 1e-4, 3
        epochs = float(min(10, math.ceil(SMALL_DATA_STEPS / steps_per_epoch)))
        why = (
            f"{train_rows} training rows give only {steps_per_epoch} steps per epoch: train up to "
            f"{epochs:g} epochs at 1e-4 and keep the best (measured at 400 rows here)"
        )
        reasons["learning_rate"] = Reason(f"1e-4 — {why}", "small-data-longer-training")
        reasons["epochs"] = Reason(f"{epochs:g} — {why}", "small-data-longer-training")
        reasons["early_stopping_patience"] = Reason(
            "patience 3: with short epochs, allow a few evaluations without gain",
            "small-data-longer-training",
        )

    # -- metric
    labels = len(profile.label_counts)
    if labels > 2 or profile.imbalance_ratio > 1.5:
        metric, note = "macro_f1", "metric-macro-f1"
        why = f"{labels} classes, imbalance {profile.imbalance_ratio:.1f}x: every class counts equally"
    else:
        metric, note = "accuracy", "metric-accuracy"
        why = "two balanced classes: accuracy is easy to read and fair here"
    reasons["metric"] = Reason(why, note)

    seed = int(constraints.get("seed", 42))
    reasons["seed"] = Reason(
        f"{seed}, fixed so a rerun gives the same numbers; seeds move results by about a point",
        "seed-variance",
    )
    plan = Plan(
        task=task,
        base_model=base_model,
        max_length=max_length,
        freezing=freezing,
        dropout=None,
        weight_decay=0.0,
        label_smoothing=label_smoothing,
        early_stopping_patience=patience,
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        warmup=0.0,
        scheduler="linear",
        metric=metric,
        seed=seed,
        extras={"lora_targets": list(card.lora_targets)} if freezing == "lora" and card else {},
    ).validate()
    return Recommendation(plan, reasons, estimate_minutes(plan, profile, resources))
