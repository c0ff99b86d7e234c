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
    # limits for the recommender: time_budget_min, max_params_m, licence, language, domain
    constraints: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.changes
            or self.columns
            or self.problems
            or self.constraints
            or self.freeze_top is not None
        )


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
    (
        rf"\b(?:layer[ -]?wise|llrd|discriminative)(?:[ -](?:lr|learning[ -]rate))?(?:[ -]decay)?{SEP}{NUM}",
        "layerwise_lr_decay",
        float,
    ),
    (
        rf"\b(?:auxiliary|other tasks?'?s?)(?:[ -]loss)?[ -]weight{SEP}{NUM}",
        "auxiliary_weight",
        float,
    ),
    (rf"\b{NUM}\s*trials?\b", "trials", int),
    (rf"\btrials?{SEP}{NUM}", "trials", int),
]
LANGUAGES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "chinese": "zh", "japanese": "ja", "arabic": "ar",
    "hindi": "hi", "russian": "ru", "multilingual": "multi", "many languages": "multi",
}  # fmt: skip
DOMAIN_WORDS = {
    "tweets": r"tweets?|twitter|social media",
    "biomedical": r"biomedical|medical|clinical|pubmed",
    "legal": r"legal|contracts?|law",
    "finance": r"financ\w*|earnings",
    "code": r"source code|code snippets?|programming",
    "general": r"general",
}
TIME_UNIT = r"(min(?:ute)?s?|h(?:ours?|rs?)?)\b"


def parse_constraints(t: str) -> dict[str, Any]:
    """Limits for the recommender in lower-cased `t`: "within 20 minutes", "at most 100M
    parameters", "permissive licence", "German texts", "biomedical domain"."""
    out: dict[str, Any] = {}
    match = re.search(
        rf"\b(?:time[ -]budget|budget|within|in under|under|search for|at most|up to)\s+{NUM}\s*{TIME_UNIT}",
        t,
    )
    if match:
        value = parse_number(match.group(1))
        out["time_budget_min"] = value * 60 if match.group(2).startswith("h") else value
    match = re.search(
        rf"\b(?:at most|up to|max(?:imum)?|no (?:more|bigger|larger) than|under|below)\s+{NUM}\s*([mb])(?:illion)?\b(?:\s*param\w*)?",
        t,
    )
    if match:
        value = parse_number(match.group(1))
        out["max_params_m"] = value * 1000 if match.group(2) == "b" else value
    if re.search(
        r"\bpermissive(?:ly)?\b.*\blicen[cs]|\blicen[cs]e\w*\s+(?:must be\s+)?permissive", t
    ):
        out["licence"] = "permissive"
    elif re.search(r"\bany licen[cs]e\b", t):
        out["licence"] = "any"
    else:
        match = re.search(
            r"\blicen[cs]e\w*\s*(?:must be|is|=|:)?\s*(apache-2\.0|mit|cc-by-4\.0)\b", t
        )
        if match:
            out["licence"] = [match.group(1)]
    for word, code in LANGUAGES.items():
        if re.search(rf"\b{word}\b(?:\s+(?:texts?|data|language|tweets|reviews))?", t) and (
            re.search(
                rf"\b(?:in|language)\s+{word}\b|\b{word}\s+(?:texts?|data|language|tweets|reviews)\b",
                t,
            )
        ):
            out["language"] = code
            break
    for domain, words in DOMAIN_WORDS.items():
        if re.search(
            rf"\b(?:{words})\s+(?:domain|texts?|data|documents?|notes?)\b|\bdomain\s*(?:is|=|:)?\s*(?:{words})\b",
            t,
        ):
            out["domain"] = domain
            break
    return out


VALUE_WORDS = (
    r"(a lot|lots|a bit|a little|many|more|less|fewer|few|some|several|high|low|higher|lower|"
    r"big|small|bigger|smaller|huge|tiny|large|fast|slow|faster|slower|nan|inf|infinity|"
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred|thousand|million|dozen)"
)
# the settings people name with a number, and an example of each (said back when the value
# given is not a number)
NAMED_SETTINGS = (
    (r"epochs?", "epochs", "4 epochs"),
    (r"learning[ -]rate|lr", "learning_rate", "learning rate 3e-5"),
    (r"batch(?:[ -]size)?", "batch_size", "batch size 16"),
    (r"dropout", "dropout", "dropout 0.1"),
    (r"weight[ -]decay", "weight_decay", "weight decay 0.01"),
    (r"label[ -]smoothing", "label_smoothing", "label smoothing 0.1"),
    (r"patience", "early_stopping_patience", "patience 2"),
    (r"warm[ -]?up", "warmup", "warmup 0.1"),
    (r"seed", "seed", "seed 7"),
    (r"max(?:imum)?[ -_]?(?:length|len|tokens)", "max_length", "max length 128"),
    (r"(?:gradient[ -])?accumulation(?:[ -]steps)?", "grad_accum", "accumulation 4"),
    (r"lora[ -]alpha", "lora_alpha", "lora alpha 16"),
    (r"trials?", "trials", "20 trials"),
    (r"auxiliary[ -]weight", "auxiliary_weight", "auxiliary weight 0.5"),
)
EXAMPLES = {name: example for _, name, example in NAMED_SETTINGS}
# what may not follow a number: more of a word or a number ("1k", "1,000", "ten thousand")
NUMBER_GOES_ON = re.compile(r"[a-z0-9_]|[.,]\d|\s+(?:hundred|thousand|million|billion|k)\b")


def _not_a_number(name: str, said: str) -> str:
    return (
        f"{name.replace('_', ' ')}: give a number in digits, e.g. '{EXAMPLES.get(name, name)}' "
        f"(not '{said.strip()}')"
    )


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
    # adaptive pretraining first, its epochs taken out of the text so that "2 epochs of
    # adaptive pretraining" does not also set the fine-tuning epochs
    stage = r"(?:(?:task|domain)[ -])?adaptive pre-?training|\bdapt\b|\btapt\b|\bmlm\b"
    adapt = re.search(rf"\b{NUM}\s*epochs?\s+(?:of\s+)?(?:{stage})", t) or re.search(
        rf"(?:{stage}){SEP}(?:for\s+)?{NUM}(?:\s*epochs?)?", t
    )
    if re.search(rf"\b(?:no|without|skip|turn off|drop)\s+(?:the\s+)?(?:{stage})", t):
        out.changes["adapt_epochs"] = 0.0
    elif adapt:
        try:
            out.changes["adapt_epochs"] = float(parse_number(adapt.group(1)))
        except ValueError as exc:
            out.problems.append(f"adapt epochs: {exc}")
        t = t[: adapt.start()] + " " + t[adapt.end() :]
    elif re.search(rf"\b(?:use|add|with|do|try)\s+(?:some\s+)?(?:{stage})", t):
        out.changes["adapt_epochs"] = 2.0  # the measured setting (bench/adaptive_pretraining.py)

    problem_names: set[str] = set()
    for pattern, name, kind in SIMPLE:
        match = re.search(pattern, t)
        if match and name not in out.changes and name not in problem_names:
            # "max length ten thousand", "batch size 1,000", "1k": not the number it looks like
            start, end = match.span(1)
            if NUMBER_GOES_ON.match(t, end) or re.search(r"\d[.,]$", t[:start]):
                rest = re.match(r"[\w.,%-]*(?:\s+(?:hundred|thousand|million|billion)\b)?", t[end:])
                said = t[start:end] + (rest.group(0) if rest else "")
                out.problems.append(_not_a_number(name, said))
                problem_names.add(name)
                continue
            try:
                out.changes[name] = _to_kind(parse_number(match.group(1)), kind)
            except ValueError as exc:
                out.problems.append(f"{name.replace('_', ' ')}: {exc}")
                problem_names.add(name)
    # "epochs a lot", "learning rate fast", "lr=abc": a setting named without a number
    for label, name, _ in NAMED_SETTINGS:
        if name in out.changes or name in problem_names:
            continue
        match = re.search(rf"\b(?:{label})\s*(?:to|=|of|at|:|is|be)?\s*{VALUE_WORDS}\b", t)
        if match is None:
            match = re.search(rf"\b(?:{label})\s*[=:]\s*([^\s,;]+)", t)
            if match is not None and re.fullmatch(NUM, match.group(1).rstrip(".")):
                match = None
        if match is not None:
            out.problems.append(_not_a_number(name, match.group(1)))
            problem_names.add(name)

    out.constraints = parse_constraints(t)
    # multi-task: the data's other label sets trained with the main one, or not
    tasks = r"(?:them|the tasks|both|all|the labels|each task|every task|the other tasks?)"
    if re.search(
        rf"\b(?:no|without|turn off|switch off)\s+multi[ -]?task|\bsingle[ -]task\b|\btrain\s+"
        rf"(?:{tasks}\s+)?(?:apart|separately|alone)\b|\bonly the main task\b",
        t,
    ):
        out.changes["multitask"] = False
    elif re.search(
        rf"\bmulti[ -]?task\b|\btrain\s+(?:{tasks}\s+)?together\b|\btogether with the other",
        t,
    ):
        out.changes["multitask"] = True
    if re.search(r"\bmixed(?: task)? batches\b|\bmix the tasks\b", t):
        out.changes["multitask_batches"] = "mixed"
    elif re.search(r"\bone task (?:per|a|each) batch\b|\bbatches by task\b", t):
        out.changes["multitask_batches"] = "by_task"
    if re.search(r"\bno (?:hyperparameter )?search\b|\btrain (?:just )?once\b", t):
        out.changes["trials"] = 0
    if re.search(r"\b(?:no|without|disable|turn off|switch off)\s+class[ -]weight", t):
        out.changes["class_weights"] = False
    elif re.search(r"\bclass[ -]weight", t):
        out.changes["class_weights"] = True
    if re.search(r"\b(?:no|without|disable|turn off)\s+gradual[ -]unfreez", t):
        out.changes["gradual_unfreezing"] = False
    elif re.search(r"\bgradual(?:ly)?[ -]unfreez", t):
        out.changes["gradual_unfreezing"] = True
    if re.search(r"\b(?:no|without|disable|turn off)\s+(?:layer[ -]?wise|llrd)", t):
        out.changes["layerwise_lr_decay"] = 1.0
    match = re.search(
        r"\b(bf16|bfloat16|fp16|float16|half precision|fp32|float32|full precision)\b", t
    )
    if match:
        word = match.group(1)
        out.changes["precision"] = (
            "bf16"
            if word.startswith("bf")
            else "fp32"
            if "32" in word or "full" in word
            else "fp16"
        )
    if re.search(r"\b(?:qlora|4[ -]?bit)\b", t) and not re.search(r"\b(?:no|without)\b", t):
        out.changes["quantization"] = "4bit"
    elif re.search(r"\b(?:no|without) (?:qlora|quantization|4[ -]?bit)\b|\bquantization none\b", t):
        out.changes["quantization"] = "none"
    if re.search(r"\bmean[ -]pool", t):
        out.changes["pooling"] = "mean"
    elif re.search(r"\b(?:cls|default|model's own)[ -]pool", t):
        out.changes["pooling"] = "default"
    if re.search(r"\b(?:random|shuffled?) (?:batches|order|sampling)\b|\bshuffle the rows\b", t):
        out.changes["sampling"] = "random"
    elif re.search(r"\bbuckets?\b", t):
        out.changes["sampling"] = "buckets"
    elif re.search(r"\bgroup(?:ed)? by length\b|\blength[ -]grouped\b", t):
        out.changes["sampling"] = "length"
    if re.search(
        r"\b(?:zero|zeroed|zeros)[ -](?:init(?:iali[sz]ed?)? )?(?:head|output layer)\b", t
    ) or re.search(r"\b(?:head|output layer) (?:starts? )?at zeros?\b", t):
        out.changes["head_init"] = "zeros"
    elif re.search(r"\brandom(?:ly initiali[sz]ed)? (?:head|output layer)\b", t):
        out.changes["head_init"] = "random"
    elif re.search(r"\b(?:linear[ -])?probe (?:the )?(?:head|output layer)\b", t) or re.search(
        r"\b(?:head|output layer) from a (?:linear )?probe\b|\blinear probe first\b", t
    ):
        out.changes["head_init"] = "probe"
    if re.search(r"\b(?:all|every|whole|full) (?:the )?validation\b", t):
        out.changes["eval_rows"] = 0
    else:
        match = re.search(r"\b(?:eval(?:uate)? rows|validation sample(?: of)?)\s+(\d+)", t)
        if match:
            out.changes["eval_rows"] = int(match.group(1))
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
    else:
        match = re.search(
            r"\bf1 (?:of|for) (?:the )?(?:class |label )?['\"]?([\w\-]+)['\"]?", text.lower()
        )
        if match:
            out.changes["metric"] = "f1"
            out.changes["positive_label"] = match.group(1)

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
    # "linear probe" alone means training the head only; "a linear probe first" starts the head
    probe_first = out.changes.get("head_init") == "probe"
    if re.search(
        r"\bhead[ -]only\b|\bonly (?:train )?the head\b|\bfreeze (?:the )?(?:encoder|whole model|all but the head|everything but the head)\b",
        t,
    ) or (re.search(r"\blinear prob", t) and not probe_first):
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
        r"\b(?:base model|model|switch to|use)\s+(?:to\s+|=\s*)?([~./][^\s]+|[\w.\-]+(?:/[\w.\-]+)+)",
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
    "gradual_unfreezing": ("gradual",),
    "layerwise_lr_decay": ("layer-wise", "layerwise", "llrd", "discriminative"),
    "class_weights": ("class weight", "imbalance"),
    "precision": ("precision", "bf16", "fp16", "fp32", "mixed"),
    "trials": ("search", "trial", "optuna", "budget"),
    "grad_accum": ("accumulat",),
    "pooling": ("pooling", "mean pool", "[cls]"),
    "adapt_epochs": ("adaptive pretraining", "dapt", "tapt", "masked-lm", "mlm", "domain adapt"),
    "quantization": ("qlora", "4-bit", "4bit", "quantiz"),
    "multitask": ("multi-task", "multitask", "together", "apart", "other task"),
    "sampling": ("sampling", "shuffl", "bucket", "batch order", "random batches"),
    "head_init": (
        "zero head",
        "head at zero",
        "output layer",
        "head init",
        "zeros",
        "probe",
        "lp-ft",
    ),
    "eval_rows": ("validation sample", "eval rows", "sample of the validation", "each epoch"),
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
