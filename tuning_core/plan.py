"""The `Plan`: every choice that decides how a model is fine-tuned, as one validated value.

This module owns the schema, its validation and its JSON form. Who fills the plan (the
recommender, the person in the conversation) and who executes it (the training recipe) live
elsewhere. Saved JSON has sorted keys so that two plans diff cleanly.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tuning_core import recipe
from tuning_core.errors import PlanError

EMBEDDED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

FREEZING_CHOICES = ("none", "head_only", "bottom_k", "lora")
# "default": the model's own sequence-classification head (BERT: the [CLS] vector through the
# pooler); "mean": the mean of the token vectors, as sentence-embedding models were trained
POOLING_CHOICES = ("default", "mean")
SCHEDULER_CHOICES = ("linear", "cosine", "constant", "constant_with_warmup")
# the metrics that score each task, and all of them (f1: F1 of the plan's positive_label)
TASK_METRICS = recipe.METRICS
METRIC_CHOICES = tuple(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))
PRECISION_CHOICES = ("fp32", "bf16", "fp16")
# the order of training batches: "length" groups texts of similar length into a batch, in runs
# from the longest to the shortest (the Trainer's group_by_length); "buckets" groups them the
# same way and shuffles the batches; "random" shuffles the rows
SAMPLING_CHOICES = ("length", "buckets", "random")
HEAD_INIT_CHOICES = ("random", "zeros", "probe")
QUANTIZATION_CHOICES = ("none", "4bit")
MULTITASK_BATCH_CHOICES = ("by_task", "mixed")
# what a search may vary (tuning_core.recommend fills the ranges; issue 5's runner reads them)
SEARCHABLE = (
    "learning_rate",
    "epochs",
    "warmup",
    "weight_decay",
    "dropout",
    "label_smoothing",
    "lora_rank",
    "freeze_layers",
    "layerwise_lr_decay",
    "gradual_unfreezing",
    "pooling",
    "batch_size",
    "adapt_epochs",
    "auxiliary_weight",
)
TASK_CHOICES = tuple(TASK_METRICS)
TASK_LABELS = {
    "single_label_classification": "classification (one label per text)",
    "multi_label_classification": "multi-label classification (any number of labels per text)",
    "regression": "regression (a number per text)",
    "token_classification": "token classification (a tag per word: named entities)",
    "instruction_tuning": "instruction tuning (a language model learns to write the replies)",
}

FREEZING_LABELS = {
    "none": "full fine-tuning (nothing frozen)",
    "head_only": "head only (encoder frozen)",
    "bottom_k": "bottom layers frozen",
    "lora": "LoRA adapters",
}


@dataclass
class Plan:
    """How to fine-tune: model, freezing, regularisation, optimisation, seed."""

    task: str = "single_label_classification"
    base_model: str = EMBEDDED_MODEL_ID
    # consents the person gave in the conversation for one named model (`consent_model`, which
    # must be `base_model` while either is on): run the model's own Python code from its folder
    # or the hub (transformers' trust_remote_code), and read pickle weight files
    # (pytorch_model.bin, which can run code when loaded) where there are no safetensors
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False
    consent_model: str | None = None
    max_length: int = 128
    # freezing
    freezing: str = "none"
    freeze_layers: int = 0  # with freezing="bottom_k": how many lower layers stay fixed
    lora_rank: int = 8
    lora_alpha: int = 16
    pooling: str = "default"
    # regularisation
    dropout: float | None = None  # None keeps the model's own dropout
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    early_stopping_patience: int = 2  # evaluations without improvement; 0 turns it off
    class_weights: bool = False  # weight the loss by inverse class frequency in training
    # optimisation
    learning_rate: float = 5e-5
    batch_size: int = 8
    grad_accum: int = 1
    epochs: float = 3.0
    warmup: float = 0.0  # share of the training steps
    scheduler: str = "linear"
    metric: str = "macro_f1"
    positive_label: str | None = None  # with metric "f1": the class whose F1 counts
    seed: int = 42
    precision: str = "fp32"  # fp32, or bf16/fp16 mixed precision (autocast)
    sampling: str = "length"
    # the new classification layer's starting weights: "random" (small normal values, the
    # library's default) or "zeros" (every class starts at the same score)
    head_init: str = "random"
    # validation rows evaluated each epoch for early stopping: a stratified sample when the
    # validation split has more (0: all of them); the final report always uses all of them
    eval_rows: int = 0
    # discriminative fine-tuning (ULMFiT): each layer below the head learns this much slower
    # than the one above it; 1.0 gives every layer the same learning rate
    layerwise_lr_decay: float = 1.0
    # ULMFiT gradual unfreezing: the head alone trains in the first epoch, then one more group
    # of encoder layers each epoch from the top, the embeddings last; everything by the last one
    gradual_unfreezing: bool = False
    # instruction tuning on a CUDA GPU: "4bit" loads the base model in 4-bit NF4 through
    # bitsandbytes and trains LoRA adapters over it (QLoRA); "none" keeps full precision
    quantization: str = "none"
    # task- and domain-adaptive pretraining before fine-tuning: this many epochs of masked-
    # language-model training on the task's texts (0: none), at this learning rate
    adapt_epochs: float = 0.0
    adapt_learning_rate: float = 1e-4
    # multi-task: train the data's other label sets (its `auxiliary` tasks) together with the
    # main one, a head each on the shared encoder, their losses weighted by auxiliary_weight
    # against the main task's 1.0; off, the main task trains alone
    multitask: bool = False
    auxiliary_weight: float = 1.0
    # how training batches mix the tasks: "by_task" (each batch one task's rows, its loss that
    # task's mean, as MT-DNN trains) or "mixed" (rows of every task in a batch, each task's
    # mean over its rows there, summed)
    multitask_batches: str = "by_task"
    # the hyperparameter search: name -> {"low", "high", "log"} or {"choices": [...]}, and
    # how many trials to run (0: train once with the values above)
    search_space: dict[str, Any] = field(default_factory=dict)
    trials: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every problem with this plan, one line each (empty when the plan is valid)."""
        out: list[str] = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                out.append(message)

        check(self.task in TASK_CHOICES, f"task must be one of {', '.join(TASK_CHOICES)}")
        check(bool(str(self.base_model).strip()), "base_model must name a model")
        for name in ("trust_remote_code", "allow_pickle_weights"):
            value = getattr(self, name)
            check(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
        granted = [n for n in ("trust_remote_code", "allow_pickle_weights") if getattr(self, n)]
        if granted:
            check(
                self.consent_model == self.base_model,
                f"{' and '.join(granted)} was agreed for model {self.consent_model!r}, not for "
                f"base_model {self.base_model!r}: a consent holds for the model it was given for",
            )
        check(8 <= self.max_length <= 8192, f"max_length must be 8..8192, got {self.max_length}")
        check(
            self.freezing in FREEZING_CHOICES,
            f"freezing must be one of {', '.join(FREEZING_CHOICES)}, got {self.freezing!r}",
        )
        check(self.freeze_layers >= 0, f"freeze_layers must be >= 0, got {self.freeze_layers}")
        check(
            self.pooling in POOLING_CHOICES,
            f"pooling must be one of {', '.join(POOLING_CHOICES)}, got {self.pooling!r}",
        )
        if self.freezing == "bottom_k":
            check(self.freeze_layers >= 1, "freezing bottom layers needs freeze_layers >= 1")
        check(1 <= self.lora_rank <= 512, f"lora_rank must be 1..512, got {self.lora_rank}")
        check(self.lora_alpha >= 1, f"lora_alpha must be >= 1, got {self.lora_alpha}")
        if self.dropout is not None:
            check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(
            0.0 <= self.weight_decay <= 1.0,
            f"weight_decay must be in [0, 1], got {self.weight_decay}",
        )
        check(
            0.0 <= self.label_smoothing < 1.0,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        check(
            self.early_stopping_patience >= 0,
            f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}",
        )
        check(
            0.0 < self.learning_rate < 1.0,
            f"learning_rate must be in (0, 1), got {self.learning_rate}",
        )
        check(1 <= self.batch_size <= 4096, f"batch_size must be 1..4096, got {self.batch_size}")
        check(1 <= self.grad_accum <= 1024, f"grad_accum must be 1..1024, got {self.grad_accum}")
        check(0 < self.epochs <= 100, f"epochs must be in (0, 100], got {self.epochs}")
        check(0.0 <= self.warmup < 1.0, f"warmup must be a share in [0, 1), got {self.warmup}")
        check(
            self.scheduler in SCHEDULER_CHOICES,
            f"scheduler must be one of {', '.join(SCHEDULER_CHOICES)}, got {self.scheduler!r}",
        )
        check(
            self.metric in METRIC_CHOICES,
            f"metric must be one of {', '.join(METRIC_CHOICES)}, got {self.metric!r}",
        )
        if self.task in TASK_METRICS and self.metric in METRIC_CHOICES:
            check(
                self.metric in TASK_METRICS[self.task],
                f"metric {self.metric!r} does not score {TASK_LABELS[self.task]}: use one of "
                f"{', '.join(TASK_METRICS[self.task])}",
            )
        if self.task != "single_label_classification":
            check(
                not self.label_smoothing and not self.class_weights,
                "label_smoothing and class_weights are for single-label classification",
            )
            check(
                self.task != "instruction_tuning" or self.freezing in ("lora", "none", "bottom_k"),
                "instruction tuning trains LoRA adapters, every layer, or the upper layers: "
                "freezing 'head_only' would train only the output layer",
            )
            check(
                self.task not in ("token_classification", "instruction_tuning")
                or self.pooling == "default",
                "pooling is for a classifier of whole texts, not token classification",
            )
            check(
                self.head_init != "probe",
                "head_init 'probe' (a logistic-regression head) is for single-label classification",
            )
        if self.metric == "f1":
            check(
                bool(self.positive_label),
                "metric 'f1' needs positive_label (the class whose F1 counts)",
            )
        check(0 <= self.seed < 2**32, f"seed must be 0..2**32-1, got {self.seed}")
        check(
            self.precision in PRECISION_CHOICES,
            f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}",
        )
        check(
            self.sampling in SAMPLING_CHOICES,
            f"sampling must be one of {', '.join(SAMPLING_CHOICES)}, got {self.sampling!r}",
        )
        check(
            self.head_init in HEAD_INIT_CHOICES,
            f"head_init must be one of {', '.join(HEAD_INIT_CHOICES)}, got {self.head_init!r}",
        )
        check(
            self.quantization in QUANTIZATION_CHOICES,
            f"quantization must be one of {', '.join(QUANTIZATION_CHOICES)}, "
            f"got {self.quantization!r}",
        )
        if self.quantization == "4bit":
            check(
                self.task == "instruction_tuning" and self.freezing == "lora",
                "4-bit quantization (QLoRA) is for instruction tuning with LoRA adapters",
            )
        check(0 <= self.adapt_epochs <= 50, f"adapt_epochs must be 0..50, got {self.adapt_epochs}")
        check(
            0.0 < self.adapt_learning_rate < 1.0,
            f"adapt_learning_rate must be in (0, 1), got {self.adapt_learning_rate}",
        )
        if self.adapt_epochs:
            check(
                self.task != "instruction_tuning",
                "adaptive pretraining (masked-LM) is for encoder tasks, not instruction tuning",
            )
        check(
            isinstance(self.multitask, bool),
            f"multitask must be true or false, got {self.multitask!r}",
        )
        check(
            0.0 < self.auxiliary_weight <= 10.0,
            f"auxiliary_weight must be in (0, 10], got {self.auxiliary_weight}",
        )
        check(
            self.multitask_batches in MULTITASK_BATCH_CHOICES,
            f"multitask_batches must be one of {', '.join(MULTITASK_BATCH_CHOICES)}, "
            f"got {self.multitask_batches!r}",
        )
        if self.multitask is True:
            check(
                self.task == "single_label_classification",
                "multi-task training is for single-label classification tasks",
            )
            check(
                self.freezing != "lora",
                "multi-task training keeps a head per task in the model: not with LoRA",
            )
        check(self.eval_rows >= 0, f"eval_rows must be >= 0 (0: all), got {self.eval_rows}")
        check(0 <= self.trials <= 1000, f"trials must be 0..1000, got {self.trials}")
        for name, space in self.search_space.items():
            out.extend(_space_problems(name, space))
        check(
            isinstance(self.class_weights, bool),
            f"class_weights must be true or false, got {self.class_weights!r}",
        )
        check(
            0.0 < self.layerwise_lr_decay <= 1.0,
            f"layerwise_lr_decay must be in (0, 1] (1 turns it off), got {self.layerwise_lr_decay}",
        )
        check(
            isinstance(self.gradual_unfreezing, bool),
            f"gradual_unfreezing must be true or false, got {self.gradual_unfreezing!r}",
        )
        if self.gradual_unfreezing is True:
            check(
                self.freezing == "none",
                "gradual_unfreezing needs freezing 'none' (it decides itself what trains when), "
                f"got {self.freezing!r}",
            )
            check(
                self.epochs >= 2,
                "gradual_unfreezing needs epochs >= 2 (the first one trains the head alone), "
                f"got {self.epochs}",
            )
        return out

    def validate(self) -> Plan:
        problems = self.problems()
        if problems:
            raise PlanError("The plan has problems:\n- " + "\n- ".join(problems))
        return self

    def replace(self, **changes: Any) -> Plan:
        """A validated copy with `changes` applied."""
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | None = None) -> Plan:
        """Build and validate a plan; unknown or wrong-typed fields are all reported at once.

        `source` (a file, "the session") names where the plan came from in the message."""
        where = f" in {source}" if source else ""
        if not isinstance(raw, dict):
            raise PlanError(f"The plan{where} must be a JSON object, got {type(raw).__name__}")
        known = {f.name: f for f in fields(cls)}
        problems: list[str] = []
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown field {key!r}{hint}")
                continue
            expected = _FIELD_TYPES[key]
            try:
                values[key] = _coerce(value, expected)
            except (TypeError, ValueError):
                problems.append(f"{key} must be {expected.__name__}, got {value!r}")
        if not problems:
            problems = cls(**values).problems()
        if problems:
            raise PlanError(f"The plan{where} has problems:\n- " + "\n- ".join(problems))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> Plan:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f" in {source}" if source else ""
            raise PlanError(f"The plan{where} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw, source)

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """The plan in JSON file `path`; PlanError naming the file when it cannot be used."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PlanError(f"There is no plan file {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PlanError(f"Cannot read the plan file {path}: {exc}") from exc
        return cls.from_json(text, str(path))


def _space_problems(name: str, space: Any) -> list[str]:
    """What is wrong with one search-space entry (empty when it is usable)."""
    if name not in SEARCHABLE:
        return [f"search_space: {name!r} cannot be searched (one of {', '.join(SEARCHABLE)})"]
    if not isinstance(space, dict):
        return [f"search_space: {name} must be a table, got {space!r}"]
    if "choices" in space:
        choices = space["choices"]
        if not isinstance(choices, list) or not choices:
            return [f"search_space: {name} choices must be a non-empty list"]
        return []
    low, high = space.get("low"), space.get("high")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not low < high:
        return [f"search_space: {name} needs numbers low < high, got {low!r} and {high!r}"]
    if space.get("log") and low <= 0:
        return [f"search_space: {name} on a log scale needs low > 0, got {low}"]
    return []


class _Optional:
    """Marks a field that also accepts null."""

    def __init__(self, inner: type) -> None:
        self.inner = inner
        self.__name__ = f"{inner.__name__} or null"


_FIELD_TYPES: dict[str, Any] = {
    "task": str,
    "base_model": str,
    "trust_remote_code": bool,
    "allow_pickle_weights": bool,
    "consent_model": _Optional(str),
    "max_length": int,
    "freezing": str,
    "freeze_layers": int,
    "lora_rank": int,
    "lora_alpha": int,
    "pooling": str,
    "dropout": _Optional(float),
    "weight_decay": float,
    "label_smoothing": float,
    "early_stopping_patience": int,
    "class_weights": bool,
    "learning_rate": float,
    "batch_size": int,
    "grad_accum": int,
    "epochs": float,
    "warmup": float,
    "scheduler": str,
    "metric": str,
    "positive_label": _Optional(str),
    "seed": int,
    "precision": str,
    "sampling": str,
    "head_init": str,
    "eval_rows": int,
    "layerwise_lr_decay": float,
    "gradual_unfreezing": bool,
    "quantization": str,
    "adapt_epochs": float,
    "adapt_learning_rate": float,
    "multitask": bool,
    "auxiliary_weight": float,
    "multitask_batches": str,
    "search_space": dict,
    "trials": int,
    "extras": dict,
}


def _coerce(value: Any, expected: Any) -> Any:
    if isinstance(expected, _Optional):
        return None if value is None else _coerce(value, expected.inner)
    if expected is bool:
        if not isinstance(value, bool):  # 0/1 or "yes" are not accepted as booleans
            raise TypeError
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers")
    if expected is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise TypeError
        return value
    if expected is float:
        if not isinstance(value, (int, float)):
            raise TypeError
        return float(value)
    if not isinstance(value, expected):
        raise TypeError
    return value
