"""Understand plain-words plan changes and questions: "3 epochs", "learning rate 2e-5",
"freeze all but the last two layers", "use LoRA rank 8", "why LoRA?".

Pure parsing into (field, value) changes or a topic; the planner applies and validates them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip

NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
SEP = r"\s*(?:to|=|of|at|:|is|be)?\s*"


def parse_number(token: str) -> float:
    token = token.lower().strip()
    if token in NUMBER_WORDS:
        return float(NUMBER_WORDS[token])
    if token.endswith("%"):
        return float(token[:-1]) / 100
    return float(token)


@dataclass
class Adjustment:
    """What one message asks for: plan changes, column remaps, problems it could not read."""

    changes: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # "text"/"label" -> column name
    problems: list[str] = field(default_factory=list)
    freeze_top: int | None = None  # "all but the last N layers": resolved with the model depth

    @property
    def empty(self) -> bool:
        return not (self.changes or self.columns or self.problems or self.freeze_top is not None)


# (pattern, plan field, kind) for simple "name value" settings
SIMPLE = [
    (rf"\b{NUM}\s*epochs?\b", "epochs", float),
    (rf"\bepochs?{SEP}{NUM}", "epochs", float),
    (rf"\b(?:learning[ -]rate|lr){SEP}{NUM}", "learning_rate", float),
    (rf"\bbatch(?:[ -]size)?{SEP}{NUM}", "batch_size", int),
    (rf"\bdropout{SEP}{NUM}", "dropout", float),
    (rf"\bweight[ -]decay{SEP}{NUM}", "weight_decay", float),
    (rf"\blabel[ -]smoothing{SEP}{NUM}", "label_smoothing", float),
    (rf"\bpatience{SEP}{NUM}", "early_stopping_patience", int),
    (rf"\bwarm[ -]?up{SEP}{NUM}", "warmup", float),
    (rf"\bseed{SEP}{NUM}", "seed", int),
    (rf"\bmax(?:imum)?[ -_]?(?:length|len|tokens){SEP}{NUM}", "max_length", int),
    (rf"\b(?:gradient[ -])?accumulation(?:[ -]steps)?{SEP}{NUM}", "grad_accum", int),
    (rf"\blora[ -]alpha{SEP}{NUM}", "lora_alpha", int),
]
VALUE_WORDS = r"(a lot|lots|many|more|less|fewer|few|some|several|high|low|higher|lower|big|small)"


def _to_kind(value: float, kind: type) -> Any:
    if kind is int:
        if value != int(value):
            raise ValueError(f"{value:g} is not a whole number")
        return int(value)
    return value


def parse_adjustment(text: str) -> Adjustment:
    """Read the plan changes in `text`. Unknown wording yields an empty adjustment."""
    t = " " + text.lower().strip() + " "
    out = Adjustment()

    for pattern, name, kind in SIMPLE:
        match = re.search(pattern, t)
        if match and name not in out.changes:
            try:
                out.changes[name] = _to_kind(parse_number(match.group(1)), kind)
            except ValueError as exc:
                out.problems.append(f"{name.replace('_', ' ')}: {exc}")
    # "epochs a lot", "learning rate high": a setting named with no number
    for label, name in (("epochs?", "epochs"), ("learning[ -]rate|lr", "learning rate")):
        match = re.search(rf"\b(?:{label})\s+{VALUE_WORDS}\b", t)
        if match and name.replace(" ", "_") not in out.changes:
            out.problems.append(
                f"{name}: give a number, e.g. '{'4 epochs' if name == 'epochs' else 'learning rate 3e-5'}' (not '{match.group(1)}')"
            )

    if re.search(r"\bno early[ -]stopping\b|\bdisable early[ -]stopping\b", t):
        out.changes["early_stopping_patience"] = 0
    for name in ("linear", "cosine", "constant_with_warmup", "constant"):
        if re.search(rf"\b{name.replace('_', '[ _-]')}\b\s*(?:schedule|scheduler|decay)?", t) and (
            "schedul" in t or "decay" in t
        ):
            out.changes["scheduler"] = name
            break
    if re.search(r"\b(?:metric|optimi[sz]e|score)\b.*\baccuracy\b|\buse accuracy\b", t):
        out.changes["metric"] = "accuracy"
    elif re.search(r"\b(?:metric|optimi[sz]e|score)\b.*\bmacro[ -]?f1\b|\buse macro[ -]?f1\b", t):
        out.changes["metric"] = "macro_f1"

    # freezing
    match = re.search(
        rf"\bfreeze (?:all|everything|every layer) (?:but|except) (?:for )?(?:the )?(?:last|top) {NUM}\s+layers?",
        t,
    )
    if match:
        out.freeze_top = int(parse_number(match.group(1)))
    match = re.search(rf"\bfreeze (?:the )?(?:bottom|lower|lowest|first) {NUM}\s+layers?", t)
    if match:
        out.changes["freezing"] = "bottom_k"
        out.changes["freeze_layers"] = int(parse_number(match.group(1)))
    if re.search(
        r"\bhead[ -]only\b|\bonly (?:train )?the head\b|\bfreeze (?:the )?(?:encoder|whole model|all but the head|everything but the head)\b|\blinear prob",
        t,
    ):
        out.changes["freezing"] = "head_only"
    match = re.search(
        rf"\blora\b(?![ -]alpha)(?:\s*(?:with|at|of))?(?:\s*(?:rank|r))?{SEP}{NUM}?", t
    )
    if match:
        out.changes["freezing"] = "lora"
        if match.group(1):
            try:
                out.changes["lora_rank"] = _to_kind(parse_number(match.group(1)), int)
            except ValueError as exc:
                out.problems.append(f"lora rank: {exc}")
    if re.search(
        r"\bno freezing\b|\bfull fine[ -]?tun|\bunfreeze\b|\btrain (?:all|everything|every layer)\b|\bfreeze nothing\b",
        t,
    ):
        out.changes["freezing"] = "none"

    # base model: "use model X", "base model X", "switch to X"
    match = re.search(
        r"\b(?:base model|model|switch to|use)\s+(?:to\s+|=\s*)?([\w.\-]+/[\w.\-]+|[~./][^\s]+)",
        text,
        re.I,
    )
    if match:
        out.changes["base_model"] = match.group(1).rstrip(".,")

    # column remaps: "the label is in column 'category'", "text column is review"
    for role in ("label", "text"):
        match = re.search(
            rf"\b{role}s?\b(?: is| are)? in(?: the)? column\s+['\"]?([\w.\-]+)['\"]?|"
            rf"\b{role} column(?: is|=|:)?\s+['\"]?([\w.\-]+)['\"]?",
            text.strip(),
            re.I,
        )
        if match:
            out.columns[role] = (match.group(1) or match.group(2)).strip()
    return out


TOPICS = {
    "freezing": ("lora", "freez", "head only", "layers", "adapter", "unfreez"),
    "learning_rate": ("learning rate", " lr"),
    "batch_size": ("batch",),
    "epochs": ("epoch",),
    "max_length": ("max length", "length", "truncat", "tokens"),
    "dropout": ("dropout",),
    "weight_decay": ("weight decay", "decay"),
    "label_smoothing": ("smoothing",),
    "early_stopping_patience": ("early stop", "patience"),
    "metric": ("metric", "macro", "f1", "accuracy"),
    "base_model": ("model", "minilm", "bert"),
    "seed": ("seed",),
}


def question_topic(text: str) -> str | None:
    """The plan field a question is about ("why LoRA?" -> "freezing"), if any."""
    t = " " + text.lower()
    for topic, words in TOPICS.items():
        if any(w in t for w in words):
            return topic
    return None


def is_question(text: str) -> bool:
    t = text.strip().lower()
    return t.endswith("?") or bool(re.match(r"(why|what|how|explain|which|should)\b", t))


# The data fixes, by the words that ask for them (first match wins), and the phrase shown.
FIX_PATTERNS = (
    (
        r"\b(?:resolve|fix|relabel)\b.*\bconflict\w*.*\bmajority\b|\bmajority (?:vote|label)",
        "resolve_conflicts_majority",
    ),
    (r"\b(?:drop|remove|delete)\b.*\bconflict", "drop_conflicts"),
    (r"\b(?:drop|remove|delete|dedup\w*)\b.*\bdup|\bdedup", "drop_exact_duplicates"),
    (r"\b(?:drop|remove|delete)\b.*\b(?:empty|blank)", "drop_empty"),
    (r"\b(?:drop|remove|delete|fix)\b.*\bleak", "drop_leaked"),
    (r"\bmerge\b.*\brare\b", "merge_rare_labels"),
)
FIX_PHRASES = {
    "drop_exact_duplicates": "drop duplicates",
    "resolve_conflicts_majority": "resolve conflicts by majority",
    "drop_conflicts": "drop conflicts",
    "drop_empty": "drop empty rows",
    "drop_leaked": "remove leaked rows",
    "merge_rare_labels": "merge rare labels",
}


def parse_fix(text: str) -> str | None:
    """The data fix `text` asks for ("drop duplicates" -> "drop_exact_duplicates"), if any."""
    t = text.lower()
    for pattern, fix in FIX_PATTERNS:
        if re.search(pattern, t):
            return fix
    return None
