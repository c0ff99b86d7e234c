"""Rule-based recommendations: fill a `Plan` from the task, the data profile, the machine and
the person's constraints.

`recommend_plan` is a pure function: the same inputs give the same plan and the same reasons.
Each choice carries a one-line reason tied to a measured fact and the id of the knowledge note
that backs it (`knowledge/notes.toml`), so the conversation can answer "why?". The rules stay
simple until a benchmark shows a better one (BASELINES.md: textbook settings lost to plain
defaults; bench/RESULTS.md has the measurements each rule cites).

Constraints (all optional): `base_model` (the person's choice, used as is), `seed`,
`time_budget_min` (wall-clock minutes for training, search included), `max_params_m` (largest
model, millions of parameters), `licence` ("any", "permissive", or a list of licence ids),
`language` (an ISO code, or "multi"), `domain` (one of knowledge.DOMAINS).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import knowledge
from tuning_core.hardware import Resources
from tuning_core.models import model_facts
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan
from tuning_core.profile import DataProfile

__all__ = [
    "Reason",
    "Recommendation",
    "estimate_minutes",
    "model_facts",
    "recommend_plan",
]

# Bytes per parameter for full fine-tuning with AdamW in float32: weights, gradients and two
# optimizer moments (4 + 4 + 8).
BYTES_PER_PARAM_FULL = 16
# Samples per second measured here for MiniLM-L6 training on 2 CPU cores at ~48 tokens
# (BASELINES.md: about 60 samples/s at batch 32).
MINILM_CPU_SAMPLES_PER_S = 60.0
# A CUDA GPU against these 2 CPU cores, for the rough time estimate before calibration.
GPU_SPEEDUP = 20.0
# Below this many optimizer steps in 3 epochs, the small-data rule trains longer at a higher
# learning rate (bench/RESULTS.md, recommend_vs_defaults_400).
SMALL_DATA_STEPS = 600
# Below this many training rows, models of LORA_TINY_PARAMS_M and more train with LoRA. Small
# models fine-tune fully: on MiniLM at 100 rows full fine-tuning beat a head on the frozen
# encoder (bench/RESULTS.md, rule_checks: tiny).
TINY_ROWS = 200
LORA_TINY_PARAMS_M = 100.0
# With fewer rows than this, models above BASE_SIZE_M are not proposed: large models fail to
# train more often on small data (Mosbach et al. 2021).
SMALL_DATA_ROWS = 1000
BASE_SIZE_M = 200.0
# Models at least this large train with LoRA on fewer than LORA_DATA_ROWS rows.
LORA_PARAMS_M = 300.0
LORA_DATA_ROWS = 5000
# Class weights when the largest class is this many times the smallest and the metric is
# macro-averaged (bench/RESULTS.md, rule_checks: skewed emotion subsample).
CLASS_WEIGHT_IMBALANCE = 10.0
# Each epoch's early-stopping check reads at most max(training rows, EVAL_ROWS_MIN) validation
# rows (a stratified sample); the final report reads all of them.
EVAL_ROWS_MIN = 300
# what bench/adaptive_pretraining.py measured (bench/RESULTS.md), said when the stage is off
ADAPT_MEASURED = (
    "on TweetEval with MiniLM (400 labelled tweets plus 2,462-2,832 unlabelled ones, 2 "
    "masked-LM epochs at 1e-4, three seeds) fine-tuning after it scored 0.5 points lower on "
    "emotion and 3.5 lower on irony than fine-tuning alone offered the same compute, and took "
    "3.6-5.5x the time"
)
# bench/multitask.py: TweetEval emotion and irony, each trained with the other or with sentiment;
# together lost, so other label sets are planned apart and trained together only on request
MULTITASK_MEASURED = (
    "on TweetEval with MiniLM (400 labelled tweets for the task, one task per batch, three "
    "seeds) training together scored lower than apart in 3 of 4 pairings: emotion -2.9 points "
    "macro-F1 with 400 irony tweets and -5.1 with 2,000 sentiment tweets, irony -2.7 F1 with "
    "2,000 sentiment tweets; only irony with 400 emotion tweets gained (+1.5, better on 1 seed "
    "of 3), and together took 1.2-5x the time"
)
AUXILIARY_WEIGHT_RANGE = {"low": 0.25, "high": 1.0}
# Share of the device's memory a plan may use (the rest for the system and allocator spikes).
MEMORY_SHARE = 0.8
# Time budget when the person gives none: what fits "one sitting" on this kind of machine.
DEFAULT_BUDGET_MIN = {"cpu": 30.0, "gpu": 60.0}
# A search needs this many trials before TPE does better than random (its startup trials).
MIN_TRIALS = 5
MAX_TRIALS = 50
# Under the search's default pruner (asha: every trial gets the space's longest schedule, and
# the pruner or early stopping ends it), a trial costs about this share of one run of the plan
# on average: measured 0.44 and 0.55 (bench/search_pruning.py, emotion-400, 20 trials, seeds 42
# and 7: 87 and 110 epochs for 20 trials of a 10-epoch plan). Median pruning measured 0.70.
PRUNED_TRIAL_SHARE = 0.5
PERMISSIVE_LICENCES = frozenset(
    {"apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc-by-4.0", "cc0-1.0"}
)
NEGATION_PREFIXES = ("non_", "non-", "not_", "not-", "no_", "no-", "non", "not ")


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


# ------------------------------------------------------------------ estimates


def _speed(
    params_m: float, tokens: float, resources: Resources, freezing: str, layers: int, frozen: int
) -> float:
    """Training samples per second, scaled from MiniLM measured on 2 CPU cores."""
    speed = MINILM_CPU_SAMPLES_PER_S * (22.7 / params_m) * (48 / tokens)
    speed *= max(1, resources.cpu_cores) / 2
    if resources.has_cuda:
        speed *= GPU_SPEEDUP
    if freezing in ("head_only", "lora"):
        speed *= 1.5  # no backward pass through (most of) the encoder weights
    elif freezing == "bottom_k" and layers:
        # forward costs a third of a step, backward two; frozen layers skip the backward
        speed *= 3 / (1 + 2 * (1 - min(frozen, layers) / layers))
    return speed


def estimate_minutes(plan: Plan, profile: DataProfile, resources: Resources) -> float:
    """A rough training time: samples to process over a throughput scaled from MiniLM on CPU."""
    card = model_facts(plan.base_model)
    params = card.params_m if card else 110.0
    layers = card.layers if card else 12
    tokens = max(8, min(plan.max_length, profile.token_lengths.get("p50", 32) * 1.5))
    speed = _speed(params, tokens, resources, plan.freezing, layers, plan.freeze_layers)
    evals = profile.rows.get("validation", 0) + profile.rows.get("test", 0)
    samples = profile.rows.get("train", 0) * plan.epochs + evals * (plan.epochs + 1) / 3
    return round(samples / speed / 60 + 0.3, 1)  # + model loading


def _peak_mb(plan: Plan, profile: DataProfile) -> float:
    from tuning_core.forecast import forecast_run

    return forecast_run(plan, profile, max(2, len(profile.label_counts))).peak_memory_mb


# ------------------------------------------------------------------ the base model


def _licence_ok(rule: Any):
    if rule in (None, "any"):
        return None
    if rule == "permissive":
        return lambda licence: licence in PERMISSIVE_LICENCES
    allowed = {rule} if isinstance(rule, str) else set(rule)
    return lambda licence: licence in allowed


def guess_domain(profile: DataProfile) -> tuple[str, str]:
    """The data's domain from its text traits, with the fact behind the guess."""
    traits = profile.text_traits or {}
    social = max(traits.get("mentions", 0.0), traits.get("hashtags", 0.0))
    if social >= 0.2:
        return "tweets", (
            f"{traits.get('mentions', 0):.0%} of texts have @mentions and "
            f"{traits.get('hashtags', 0):.0%} #hashtags"
        )
    return "general", "no sign of a specialised domain in the texts"


def guess_language(profile: DataProfile) -> tuple[str, str]:
    share = (profile.text_traits or {}).get("non_ascii_letters", 0.0)
    if share > 0.3:
        return "multi", f"{share:.0%} of letters are outside ASCII"
    return "en", f"assumed, as only {share:.1%} of letters are outside ASCII"


def _choose_decoder(
    profile: DataProfile, resources: Resources, constraints: dict[str, Any], budget_min: float
) -> tuple[str, Reason]:
    """The smallest catalogue decoder this machine has (instruction tuning trains a causal
    LM); without one, the smallest in the catalogue, and the reason says to name a local one."""
    size_cap = constraints.get("max_params_m")
    decoders = sorted(
        knowledge.models_by(
            kind="decoder",
            max_params_m=float(size_cap) if size_cap else None,
            licence_ok=_licence_ok(constraints.get("licence")),
        ),
        key=lambda card: card.params_m,
    )
    if not decoders:
        raise ValueError("the model catalogue has no decoder model within the limits")
    here = set(resources.models_here)
    usable = [card for card in decoders if resources.hub or card.id in here]
    best = (usable or decoders)[0]
    text = (
        f"the smallest decoder in the catalogue ({best.params_m}M parameters, {best.licence}): "
        "instruction tuning trains a causal language model, and small ones train on a CPU"
    )
    if not usable:
        text += (
            "; it is not on this machine and the hub cannot be reached: name a local decoder "
            "folder, e.g. `use model ~/models/SmolLM2-135M`"
        )
    return best.id, Reason(text, "lora-instruction-tuning")


def _choose_model(
    profile: DataProfile, resources: Resources, constraints: dict[str, Any], budget_min: float
) -> tuple[str, Reason]:
    """The catalogue encoder that best fits language, domain, data size, memory and budget,
    among those this machine can load; says which better one it could not use."""
    language, language_why = (
        (constraints["language"], "you asked for it")
        if constraints.get("language")
        else guess_language(profile)
    )
    domain, domain_why = (
        (constraints["domain"], "you said so")
        if constraints.get("domain")
        else guess_domain(profile)
    )
    train_rows = profile.rows.get("train", 0)
    size_cap = constraints.get("max_params_m")
    candidates = knowledge.models_by(
        kind="encoder",
        language=language,
        max_params_m=float(size_cap) if size_cap else None,
        licence_ok=_licence_ok(constraints.get("licence")),
    )
    memory_mb = (resources.gpu_memory_gb if resources.has_cuda else resources.ram_gb) * 1024
    p95 = profile.token_lengths.get("p95", profile.token_lengths.get("p99", 128))

    def fits(card: knowledge.ModelCard) -> tuple[bool, str]:
        if train_rows < SMALL_DATA_ROWS and card.params_m > BASE_SIZE_M:
            return False, f"too large for {train_rows} rows"
        plan = Plan(base_model=card.id, max_length=min(card.max_positions, 128), freezing="lora")
        minutes = estimate_minutes(plan.replace(freezing="none"), profile, resources)
        if minutes > budget_min:
            return False, f"~{minutes:.0f} min, over the {budget_min:.0f} min budget"
        if memory_mb and _peak_mb(plan.replace(batch_size=1), profile) > MEMORY_SHARE * memory_mb:
            return False, "does not fit in memory even with LoRA"
        return True, f"~{minutes:.0f} min"

    def rank(card: knowledge.ModelCard):
        # domain fit first, then room for the texts, then size (capacity) within the budget
        return (card.domain == domain, card.max_positions >= p95, card.params_m)

    fitting = [(card, why) for card in candidates for ok, why in [fits(card)] if ok]
    here = set(resources.models_here)
    usable = [(c, w) for c, w in fitting if resources.hub or c.id in here]
    facts = f"{domain} text ({domain_why}) in language {language} ({language_why})"
    if not usable:
        card = knowledge.get_model(EMBEDDED_MODEL_ID)
        return EMBEDDED_MODEL_ID, Reason(
            f"nothing in the catalogue fits {facts} within the limits, so the embedded "
            f"all-MiniLM-L6-v2 ({card.params_m}M parameters) that ships with tunesmith",
            "embedded-default-model",
        )
    best, best_why = max(usable, key=lambda cw: rank(cw[0]))
    ideal, _ = max(fitting, key=lambda cw: rank(cw[0]))
    text = f"{best.params_m}M parameters, {best.domain}, {best.licence}; the data is {facts}; "
    text += f"it fits the time budget ({best_why}) and memory"
    if ideal.id != best.id:
        text += (
            f". {ideal.id} would fit better ({ideal.domain}, {ideal.params_m}M), but it is not "
            "on this machine and the hub cannot be reached"
        )
    note = "domain-pretrained-model" if best.domain != "general" else "model-choice"
    if best.embedded and ideal.id == best.id:
        note = "embedded-default-model"
    return best.id, Reason(text, note)


def pooling_for(card: knowledge.ModelCard | None, freezing: str) -> str:
    """Mean pooling for a frozen sentence-embedding model (its features were trained pooled
    that way); the model's own head otherwise (measured no better when every layer trains)."""
    if card and card.pooling == "mean" and freezing == "head_only":
        return "mean"
    return "default"


# ------------------------------------------------------------------ the metric


def positive_label(labels: list[str]) -> str | None:
    """With two labels where one negates the other ("irony" / "non_irony"), the named one."""
    if len(labels) != 2:
        return None
    a, b = labels
    for x, y in ((a, b), (b, a)):
        low = y.lower()
        for prefix in NEGATION_PREFIXES:
            if low.startswith(prefix) and low[len(prefix) :].strip(" _-") == x.lower():
                return x
    return None


# ------------------------------------------------------------------ the search


def search_space(
    plan: Plan, card: knowledge.ModelCard | None, conflicts: bool, train_rows: int = 0
) -> dict:
    """What a search should vary around the plan, and over which ranges."""
    lr = plan.learning_rate
    space: dict[str, Any] = {
        "learning_rate": {"low": round(lr / 3, 8), "high": round(min(lr * 3, 0.5), 8), "log": True},
        "epochs": {
            "low": max(1, math.floor(plan.epochs / 2)),
            "high": math.ceil(plan.epochs * 1.5),
            "step": 1,
        },
        "warmup": {"low": 0.0, "high": 0.1},
        "weight_decay": {"low": 0.0, "high": 0.1},
    }
    if plan.freezing != "head_only":
        space["dropout"] = {"low": 0.0, "high": 0.2}
    if conflicts:
        space["label_smoothing"] = {"low": 0.0, "high": 0.2}
    if plan.freezing == "lora":
        space["lora_rank"] = {"choices": [4, 8, 16, 32]}
    if plan.freezing == "bottom_k" and card and card.layers > 1:
        space["freeze_layers"] = {"low": 1, "high": card.layers - 1, "step": 1}
    if plan.freezing == "none" and card and card.layers >= 12:
        space["layerwise_lr_decay"] = {"low": 0.8, "high": 1.0}
    if plan.freezing == "none" and train_rows < SMALL_DATA_ROWS:
        # ULMFiT's setting: little data; it needs two epochs at least (head first)
        space["gradual_unfreezing"] = {"choices": [False, True]}
        space["epochs"]["low"] = max(2, space["epochs"]["low"])
    return space


# ------------------------------------------------------------------ the plan


def recommend_plan(
    task: str,
    profile: DataProfile,
    resources: Resources,
    constraints: dict[str, Any] | None = None,
    auxiliary: list[dict] | None = None,
) -> Recommendation:
    """Fill a plan with a reason per choice (see the module docstring for `constraints`).
    `auxiliary`: the data's other label sets (`DataSpec.auxiliary`), for multi-task training."""
    constraints = constraints or {}
    reasons: dict[str, Reason] = {}
    device = "gpu" if resources.has_cuda else "cpu"
    budget = constraints.get("time_budget_min")
    budget_min = float(budget) if budget else DEFAULT_BUDGET_MIN[device]
    budget_said = (
        f"your {budget_min:g} min budget"
        if budget
        else f"the default {budget_min:g} min budget on a {device.upper()}"
    )
    train_rows = max(1, profile.rows.get("train", 0))

    # -- base model
    if constraints.get("base_model"):
        base_model = constraints["base_model"]
        known = "from the catalogue" if knowledge.get_model(base_model) else "outside the catalogue"
        reasons["base_model"] = Reason(f"you chose it ({known})", "model-choice")
    else:
        choose = _choose_decoder if task == "instruction_tuning" else _choose_model
        base_model, reasons["base_model"] = choose(profile, resources, constraints, budget_min)
    card = model_facts(base_model)
    params = card.params_m if card else 110.0
    layers = card.layers if card else 12

    # -- max length: cover 99% of the training texts, within the model's positions
    max_positions = card.max_positions if card else 512
    lengths = profile.token_lengths
    p99 = max(8, lengths.get("p99", 128))
    max_length = min(max_positions, int(math.ceil(p99 / 8) * 8))
    truncated = profile.truncated_share(max_length)
    text = (
        f"p99 length is {lengths.get('p99')} tokens (p95 {lengths.get('p95', '?')}, "
        f"longest {lengths.get('max')}), so {truncated:.1%} of training texts are truncated; "
        "batches are padded only to their longest text"
    )
    note = "max-length-p99"
    if p99 > max_positions:
        text += (
            f". The texts are longer than {base_model}'s {max_positions} positions: a model with "
            "more (ModernBERT reads 8192) would see all of them"
        )
        note = "long-texts-more-positions"
    reasons["max_length"] = Reason(text, note)

    # -- metric
    labels = sorted(profile.label_counts)
    single = task == "single_label_classification"
    positive = positive_label(labels) if single else None
    if task == "instruction_tuning":
        metric = "perplexity"
        reasons["metric"] = Reason(
            "a language model learning replies: perplexity of the held-out replies (the exp of "
            "the loss per reply token; lower is better), beside the base model's, with both "
            "models' replies to held-out prompts side by side",
            "metric-perplexity",
        )
    elif task == "token_classification":
        metric = "entity_f1"
        reasons["metric"] = Reason(
            f"a tag per word: entity-level F1 over {len(labels)} entity types (an entity counts "
            "only with its type and both boundaries right, as CoNLL-2003 is scored); the "
            "report adds per-type scores and token accuracy",
            "metric-entity-f1",
        )
    elif task == "regression":
        metric = "pearson"
        reasons["metric"] = Reason(
            "a number per text: Pearson's correlation between predicted and true scores, as "
            "STS-B is scored; the report adds Spearman's, the mean squared and absolute errors",
            "metric-regression",
        )
    elif task == "multi_label_classification":
        metric = "micro_f1"
        reasons["metric"] = Reason(
            f"any of {len(labels)} labels per text: micro-F1 counts every (text, label) "
            "decision alike; the report adds macro-F1 (every label equal) and per-label scores",
            "metric-multi-label",
        )
    elif positive:
        metric = "f1"
        reasons["metric"] = Reason(
            "two labels, one the negation of the other, so finding "
            f"'{positive}' is the point (TweetEval scores irony this way)",
            "metric-positive-f1",
        )
    elif len(labels) > 2 or profile.imbalance_ratio > 1.5:
        metric = "macro_f1"
        reasons["metric"] = Reason(
            f"{len(labels)} classes, largest {profile.imbalance_ratio:.1f}x the "
            "smallest; every class counts equally",
            "metric-macro-f1",
        )
    else:
        metric = "accuracy"
        reasons["metric"] = Reason(
            f"two classes, largest {profile.imbalance_ratio:.1f}x the smallest, "
            "so accuracy is fair and easy to read",
            "metric-accuracy",
        )

    # -- optimisation: the Trainer defaults, which beat a textbook config here
    batch_size = 16 if resources.has_cuda and train_rows > 20000 else 8
    learning_rate, epochs, patience = 5e-5, 3.0, 2
    reasons["learning_rate"] = Reason(
        "linear decay, no warmup: the Trainer default, which beat a tuned "
        "'textbook' setting on TweetEval here",
        "trainer-defaults-lr-batch",
    )
    reasons["epochs"] = Reason(
        "the Trainer default; the best epoch is kept", "trainer-defaults-lr-batch"
    )
    reasons["early_stopping_patience"] = Reason(
        "evaluate each epoch, keep the best checkpoint, stop after 2 epochs without gain",
        "early-stopping",
    )
    steps_per_epoch = math.ceil(train_rows / batch_size)
    if steps_per_epoch * 3 < SMALL_DATA_STEPS:
        # few rows: 3 epochs are too few optimizer steps; train longer, faster, stop on validation
        learning_rate, patience = 1e-4, 3
        epochs = float(min(10, math.ceil(SMALL_DATA_STEPS / steps_per_epoch)))
        why = (
            f"{train_rows} training rows give only {steps_per_epoch} steps per epoch: train up to "
            f"{epochs:g} epochs at 1e-4 and keep the best (measured at 400 rows here)"
        )
        reasons["learning_rate"] = Reason(why, "small-data-longer-training")
        reasons["epochs"] = Reason(why, "small-data-longer-training")
        reasons["early_stopping_patience"] = Reason(
            "with short epochs, allow 3 evaluations without gain",
            "small-data-longer-training",
        )

    instruct = task == "instruction_tuning"
    if instruct:  # LoRA's usual setting for instruction tuning (not measured here: no LLM)
        learning_rate = 2e-4
        if "small-data" in reasons["epochs"].note:
            reasons["epochs"] = Reason(
                f"{train_rows} training rows give only {steps_per_epoch} steps per epoch: up to "
                f"{epochs:g} epochs, keeping the best by validation loss",
                "small-data-longer-training",
            )
        reasons["learning_rate"] = Reason(
            "2e-4 with LoRA: the rate the LoRA and QLoRA papers used for models of this size "
            "(not measured here: no decoder model is on this machine); the best epoch by "
            "validation loss is kept",
            "lora-instruction-tuning",
        )

    # -- freezing: by data size, model size, memory and the time budget
    memory_gb = resources.gpu_memory_gb if resources.has_cuda else resources.ram_gb
    where = f"the {memory_gb:.0f} GiB of {'GPU' if resources.has_cuda else 'RAM'}"
    precision = _precision(resources)
    draft = Plan(
        task=task,
        metric=metric,
        positive_label=positive,
        base_model=base_model,
        max_length=max_length,
        batch_size=batch_size,
        learning_rate=learning_rate,
        epochs=epochs,
        precision=precision,
    )
    full_mb = _peak_mb(draft.replace(batch_size=1), profile)
    freezing, freeze_layers, lora_rank = "none", 0, 8
    if instruct:
        freezing = "lora"
        reasons["freezing"] = Reason(
            "LoRA adapters on every linear layer of the attention and MLP blocks: close to full "
            "fine-tuning on instruction data at a fraction of the memory, and the adapter "
            "is a small file to share or merge",
            "lora-instruction-tuning",
        )
    elif memory_gb and full_mb > MEMORY_SHARE * memory_gb * 1024:
        freezing = "lora"
        why = (
            f"full fine-tuning needs ~{full_mb / 1024:.1f} GiB even at batch 1, more than "
            f"{MEMORY_SHARE:.0%} of {where}; LoRA trains small adapters instead"
        )
        reasons["freezing"] = Reason(why, "lora-large-model")
    elif train_rows < TINY_ROWS and params >= LORA_TINY_PARAMS_M:
        freezing = "lora"
        why = (
            f"only {train_rows} training rows for {params:.0f}M parameters: too few to move "
            "every weight reliably; LoRA trains under 1% of them and keeps the update small"
        )
        reasons["freezing"] = Reason(why, "lora-large-model")
    elif params >= LORA_PARAMS_M and train_rows < LORA_DATA_ROWS:
        freezing = "lora"
        why = (
            f"{params:.0f}M parameters against {train_rows} rows: LoRA matches full fine-tuning "
            "on such models while training under 1% of the weights, which keeps the update small"
        )
        reasons["freezing"] = Reason(why, "lora-large-model")
    else:
        full_min = estimate_minutes(draft, profile, resources)
        if full_min > budget_min and layers >= 2:
            half = layers // 2
            frozen_min = estimate_minutes(
                draft.replace(freezing="bottom_k", freeze_layers=half), profile, resources
            )
            if frozen_min <= budget_min:
                freezing, freeze_layers = "bottom_k", half
                reasons["freezing"] = Reason(
                    f"full fine-tuning takes ~{full_min:.0f} min, over {budget_said}; freezing "
                    f"the lower {half} of {layers} layers skips their backward pass "
                    f"(~{frozen_min:.0f} min)",
                    "freeze-bottom-layers",
                )
        if freezing == "none":
            tiny = (
                "; with this few rows a head on the frozen encoder did worse here (MiniLM, "
                "100 rows)"
                if train_rows < TINY_ROWS
                else ""
            )
            reasons["freezing"] = Reason(
                f"the whole model ({params:,.1f}M parameters, ~"
                f"{full_mb / 1024:.1f} GiB at batch 1) fits in {where}, and tuning every layer "
                f"is the strong default{tiny}",
                "head-only-small-data" if tiny else "full-finetune-default",
            )
    quantization = "none"
    if instruct:
        import importlib.util

        if resources.has_cuda and importlib.util.find_spec("bitsandbytes") is not None:
            quantization = "4bit"
            reasons["quantization"] = Reason(
                "a CUDA GPU and bitsandbytes are here: the base model loads in 4-bit NF4 under "
                "the LoRA adapters (QLoRA), a quarter of the memory at a quality close to 16-bit",
                "lora-instruction-tuning",
            )
        else:
            reasons["quantization"] = Reason(
                "full precision: 4-bit loading (QLoRA) needs a CUDA GPU and bitsandbytes",
                "lora-instruction-tuning",
            )
        lora_rank = 16
        targets = ", ".join(card.lora_targets) if card else "the attention projections it has"
        reasons["lora_rank"] = Reason(
            f"rank 16, alpha 32, on {targets} (the catalogue's entry for this architecture)",
            "lora-instruction-tuning",
        )
    elif freezing == "lora":
        lora_rank = 16 if train_rows >= 20000 else 8
        reasons["lora_rank"] = Reason(
            f"alpha {2 * lora_rank}, on {', '.join(card.lora_targets) if card else 'query, value'}"
            + (": more data can use a larger update" if lora_rank == 16 else ": the common start"),
            "lora-rank",
        )

    # -- pooling: how the text becomes one vector for the classifier
    pooling = pooling_for(card, freezing)
    if instruct or task == "token_classification":
        pooling = "default"
        reasons["pooling"] = Reason(
            "none: the model reads out every token (a tag or the next word), not one vector",
            "full-finetune-default",
        )
    elif card and card.pooling == "mean":
        reasons["pooling"] = Reason(
            "with every layer training, mean pooling scored no better "
            "here (TweetEval emotion: full set and 100 rows); with a frozen encoder ('head "
            "only') tunesmith switches to the mean pooling this model was trained with",
            "mean-pooling-sentence-models",
        )
    else:
        reasons["pooling"] = Reason(
            f"the {card.architecture if card else 'architecture'}'s own classification head",
            "full-finetune-default",
        )

    # -- regularisation
    reasons["dropout"] = Reason(
        "the pretrained model's own (0.1 for BERT-style models)", "dropout-pretrained"
    )
    reasons["weight_decay"] = Reason(
        "the Trainer default: a 'textbook' 0.01 did not beat it on TweetEval here",
        "weight-decay-zero",
    )
    conflict_share = profile.conflicting_texts / train_rows
    label_smoothing = 0.1 if conflict_share > 0.01 and single else 0.0
    reasons["label_smoothing"] = Reason(
        f"{profile.conflicting_texts} texts carry conflicting labels "
        f"({conflict_share:.1%} of training rows)"
        + ("; soften the targets" if label_smoothing else "; no need to soften the targets"),
        "label-smoothing-conflicts",
    )
    if not single:
        reasons["label_smoothing"] = Reason(
            "off: it softens a softmax over classes, which this task does not have",
            "label-smoothing-conflicts",
        )
    class_weights = (
        single and metric == "macro_f1" and profile.imbalance_ratio >= CLASS_WEIGHT_IMBALANCE
    )
    reasons["class_weights"] = Reason(
        (
            f"the largest class is {profile.imbalance_ratio:.1f}x the smallest and the "
            "metric is macro-F1, so rare classes get a proportionally larger share of the loss"
        )
        if class_weights
        else (
            f"imbalance {profile.imbalance_ratio:.1f}x is under "
            f"{CLASS_WEIGHT_IMBALANCE:g}x"
            + (" (the metric is not macro-averaged)" if metric != "macro_f1" else "")
            + "; below that they did not help here"
        ),
        "class-weights-imbalance",
    )
    if not single:
        reasons["class_weights"] = Reason(
            "off: they weight classes of a single-label task", "class-weights-imbalance"
        )
    reasons["layerwise_lr_decay"] = Reason(
        "on MiniLM it lowered the score here; the search tries 0.8-1.0 on models "
        "with 12 or more layers, where the papers found it helps",
        "layerwise-lr-decay",
    )
    reasons["gradual_unfreezing"] = Reason(
        "+1 point on 400 emotion rows here (three seeds), within a seed's spread and not yet "
        f"checked on another task; with under {SMALL_DATA_ROWS} rows (ULMFiT's setting) the "
        "search tries it",
        "gradual-unfreezing",
    )

    # -- precision by device
    reasons["precision"] = _precision_reason(resources, precision)

    # -- the order of training batches
    reasons["sampling"] = Reason(
        "texts of similar length share a batch, so padding stays short: faster than shuffled "
        "rows at the same score (irony, full set, four seeds)",
        "dynamic-padding",
    )

    # -- the output layer's starting weights
    n_labels = len(profile.label_counts)
    if single and freezing == "none" and train_rows >= SMALL_DATA_ROWS and n_labels == 2:
        head_init = "probe"
        reasons["head_init"] = Reason(
            f"two labels, {train_rows:,} training rows and every layer training: the output "
            "layer is first fitted by logistic regression on the pretrained model's features "
            "(linear probe, then fine-tune), so training starts from a head that already "
            "separates the classes: +2.2 points F1 on TweetEval irony (five seeds, each better)",
            "linear-probe-then-fine-tune",
        )
    else:
        head_init = "random"
        if freezing != "none":
            why = "the library's default for a new output layer"
        elif train_rows < SMALL_DATA_ROWS:
            why = (
                f"below {SMALL_DATA_ROWS:,} training rows a head fitted first by a linear probe "
                "scored lower (TweetEval emotion, 400 rows: -3.8 and -5.4 points, two seeds)"
            )
        else:
            why = (
                f"with {n_labels} labels a head fitted first by a linear probe scored lower "
                "(TweetEval emotion, all rows: -1.1 and -1.0 points macro-F1, two seeds); it "
                "helped on a two-label task"
            )
        reasons["head_init"] = Reason(
            f"small random values: {why}; a zero start scored lower on irony (0.649 against "
            "0.664 F1, three seeds)",
            "output-layer-init",
        )

    # -- adaptive pretraining: measured by bench/adaptive_pretraining.py, not proposed
    split = (profile.text_traits or {}).get("split_words")
    if instruct:
        reasons["adapt_epochs"] = Reason(
            "off: masked-LM adaptation is for encoders; a language model already learns from "
            "the replies' text",
            "adaptive-pretraining",
        )
    else:
        words = (
            f"; the model's tokenizer splits {split:.1%} of the words here (TweetEval: 6.6-6.9%)"
            if split is not None
            else ""
        )
        reasons["adapt_epochs"] = Reason(
            f"off: {ADAPT_MEASURED}{words}. Say `2 epochs of adaptive pretraining` (and `add "
            "unlabelled texts from FILE`) to try it on your texts",
            "adaptive-pretraining",
        )

    # -- other label sets: apart, as bench/multitask.py measured
    if auxiliary:
        names = ", ".join(f"`{a['name']}`" for a in auxiliary)
        if task != "single_label_classification":
            why = f"apart: {names} can join single-label classification only"
        elif freezing == "lora":
            why = f"apart: a LoRA adapter does not carry the extra heads {names} would need"
        else:
            why = (
                f"apart ({names} not trained with it): {MULTITASK_MEASURED}. Say `train them "
                "together` to try it on your tasks"
            )
        reasons["multitask"] = Reason(why, "multi-task")

    # -- how much validation each epoch's check reads
    val_rows = profile.rows.get("validation", 0)
    eval_rows = 0
    if patience and val_rows > max(train_rows, EVAL_ROWS_MIN):
        eval_rows = max(train_rows, EVAL_ROWS_MIN)
        reasons["eval_rows"] = Reason(
            f"validation has {val_rows:,} rows, more than the {train_rows:,} training rows: "
            f"each epoch's check reads a stratified {eval_rows:,}-row sample, so checking "
            f"costs less than training; the final report reads all {val_rows:,}",
            "validation-sample",
        )
    else:
        reasons["eval_rows"] = Reason(
            f"all {val_rows:,} validation rows each epoch: no more than the training rows",
            "validation-sample",
        )

    # -- batch size and gradient accumulation to fit memory
    plan = draft.replace(
        freezing=freezing,
        freeze_layers=freeze_layers,
        pooling=pooling,
        lora_rank=lora_rank,
        lora_alpha=2 * lora_rank,
        label_smoothing=label_smoothing,
        early_stopping_patience=patience,
        class_weights=class_weights,
        eval_rows=eval_rows,
        head_init=head_init,
        quantization=quantization,
        metric=metric,
        positive_label=positive,
        seed=int(constraints.get("seed", 42)),
        extras={"lora_targets": list(card.lora_targets)} if freezing == "lora" and card else {},
    )
    micro, accum = batch_size, 1
    peak = _peak_mb(plan, profile)
    limit = MEMORY_SHARE * memory_gb * 1024 if memory_gb else math.inf
    while peak > limit and micro > 1:
        micro, accum = micro // 2, accum * 2
        peak = _peak_mb(plan.replace(batch_size=micro, grad_accum=accum), profile)
    plan = plan.replace(batch_size=micro, grad_accum=accum)
    if accum > 1:
        reasons["batch_size"] = Reason(
            f"{micro} per step x {accum} accumulated = {batch_size}: {batch_size} at once would "
            f"not fit in {MEMORY_SHARE:.0%} of {where}; ~{peak:,.0f} MB forecast at {micro}",
            "batch-fits-memory",
        )
    else:
        reasons["batch_size"] = Reason(
            "more optimizer steps on a few thousand rows than batch 32 "
            f"(~{peak:,.0f} MB forecast, within {where})",
            "trainer-defaults-lr-batch",
        )
    reasons["grad_accum"] = (
        reasons["batch_size"]
        if accum > 1
        else Reason(
            f"batch {batch_size} fits in memory, no need to accumulate", "batch-fits-memory"
        )
    )

    # -- search space and trial budget
    minutes = estimate_minutes(plan, profile, resources)
    space = search_space(plan, card, label_smoothing > 0, train_rows)
    trials = 0
    if budget:
        affordable = math.floor(budget_min / max(0.1, minutes * PRUNED_TRIAL_SHARE))
        if affordable >= MIN_TRIALS:
            trials = min(MAX_TRIALS, affordable)
            why = (
                f"one run takes ~{minutes:.1f} min and pruning stops poor trials "
                f"early (~{PRUNED_TRIAL_SHARE:.0%} of a run each), within {budget_said}"
            )
        else:
            why = (
                f"{budget_said} buys ~{affordable} trials of ~{minutes:.1f} min; TPE "
                f"needs at least {MIN_TRIALS} before it beats the defaults, so train once"
            )
    else:
        why = (
            f"none without a time budget (say 'search for 30 minutes'); one run "
            f"takes ~{minutes:.1f} min"
        )
    reasons["trials"] = Reason(why, "search-space-budget")
    reasons["search_space"] = Reason(
        "around the plan: " + ", ".join(_describe_space(space)), "search-space-budget"
    )
    plan = plan.replace(search_space=space, trials=trials)
    reasons["seed"] = Reason(
        "fixed so a rerun gives the same numbers; seeds move results by about a point",
        "seed-variance",
    )
    return Recommendation(plan, reasons, minutes)


def _precision(resources: Resources) -> str:
    if resources.has_cuda:
        return "bf16" if all(g.bf16 for g in resources.gpus) else "fp16"
    return "fp32"


def _precision_reason(resources: Resources, precision: str) -> Reason:
    if precision == "bf16":
        text = "the GPU has bfloat16 tensor cores (compute capability 8.0+)"
    elif precision == "fp16":
        text = "with loss scaling: the GPU predates bfloat16 (before Ampere)"
    elif {"amx_bf16", "avx512_bf16"} & set(resources.cpu_flags):
        text = (
            "on the CPU bf16 autocast ran a step 1.7x faster here, but whether the "
            "metric holds under it is not measured yet"
        )
    else:
        text = "this CPU has no bfloat16 units, so autocast would not be faster"
    return Reason(text, "precision-by-device")


def _describe_space(space: dict) -> list[str]:
    out = []
    for name, spec in space.items():
        if name == "epochs":  # the pruner's budget (search.epochs_as_budget), not a searched value
            out.append(f"epochs up to {spec['high']:g} (the pruner stops weak trials early)")
        elif "choices" in spec:
            out.append(f"{name} in {spec['choices']}")
        else:
            scale = " (log)" if spec.get("log") else ""
            out.append(f"{name} {spec['low']:g}-{spec['high']:g}{scale}")
    return out
