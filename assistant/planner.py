"""The planner: a dialogue engine that walks task -> data -> profile -> plan -> adjust -> run ->
results -> export over the headless core.

Pure Python, no Textual and no database: it takes one user turn and returns replies, and its
whole state is a JSON-serialisable dict (the session store saves it after every turn). It
fills what the person already said, asks only for what is missing, and takes a blank answer
as "use the recommended default". Starting a run goes through `tuning_core.runs`; following
it is the front end's job, which calls `run_finished` when the worker is done.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import knowledge
from assistant.adjust import FIX_PHRASES, is_question, parse_adjustment, parse_fix, question_topic
from tuning_core import models, runs
from tuning_core.errors import PlanError, TuningError
from tuning_core.plan import EMBEDDED_MODEL_ID, FREEZING_LABELS, TASK_LABELS, Plan

# what the person agreed to for one named model (see `Plan`); never kept for another model
CONSENT_FIELDS = ("trust_remote_code", "allow_pickle_weights", "consent_model")

HEAD_INIT_LABELS = {
    "random": "random (small values)",
    "zeros": "at zero",
    "probe": "fitted first (linear probe)",
}
STAGES = ("task", "data", "review", "plan", "run", "results", "export")
TASK = "single_label_classification"

HELP = """**What I can do:** fine-tune a text classifier on your labelled file, step by step.

- Say the task and the file in one go, e.g. `classify these tweets by emotion: data/train.csv`.
  Press **Enter** on an empty line to take the recommended default (the demo data, the plan).
- Change the plan in plain words: `3 epochs`, `learning rate 2e-5`, `batch size 16`,
  `freeze all but the last two layers`, `use LoRA rank 8`, `head only`, `dropout 0.2`,
  `label smoothing 0.1`, `no early stopping`, `max length 64`, `seed 7`.
- Fix how I read your file: `the label is in column 'category'`, `text column is review`.
- Fix the data (a new version is kept in the session; your file is never changed):
  `drop duplicates`, `resolve conflicts by majority`, `drop conflicts`, `drop empty rows`,
  `remove leaked rows`, `merge rare labels`.
- Ask: `why LoRA?`, `why this learning rate?`, `what is macro-F1?`

**Commands:** `/help` this text · `/status` where we are · `/back` one step back ·
`/forecast` time a few real steps and forecast memory and time · `/data` how I read the data · `/findings` every data finding with sample rows · `/run` start
training · `/stop` stop training (it can resume) · `/export DIR` write the reproducible bundle."""

GREETING = """Hi! I'm **tunesmith**. I help you fine-tune a pretrained model on your labelled text
and leave you a script that reproduces it.

What would you like to train, and on which file? For example:
`classify these tweets by emotion: data/train.csv`

Press **Enter** to try it on the built-in demo (360 short posts labelled positive, negative or
neutral). Type `/help` for everything I understand."""

OTHER_TASKS: dict[str, str] = {}  # tasks named in words that tunesmith declines
# the person's words for a task (checked in this order); None lets the data's shape decide
TASK_WORDS = {
    "instruction_tuning": (
        r"\binstruction[ -]?(?:tun|data|follow|set)|\bchat ?bot|\bsft\b|\bsummari[sz]|\btranslat"
        r"|\bteach\b.*\bto (?:answer|reply|respond|write|chat)"
        r"|\b(?:answer|reply to|respond to) (?:the )?(?:questions|prompts|instructions)"
        r"|\bgenerat(?:e|ion of|ing) (?:text|replies|answers|responses)"
    ),
    "token_classification": (
        r"\bner\b|named[ -]entit|token[ -]classif|sequence[ -]tagg|\bpos[ -]tagg"
        r"|\btag (?:each|every) (?:word|token)"
    ),
    "multi_label_classification": (
        r"\bmulti[- ]?label|\b(?:several|multiple|many|any number of|more than one) "
        r"(?:labels|tags|categories|topics)|\btags? per\b|\blabels? sets?\b"
    ),
    "regression": (
        r"\bregression\b|\bpredict(?:ing)? (?:a|the|its)? ?(?:score|number|price|rating|value)"
        r"|\b(?:score|rating|number) (?:per|for each|for every) (?:text|review|post|row)"
        r"|\bcontinuous\b"
    ),
    "single_label_classification": (
        r"\b(?:single[- ]label|one label per|(?:just |only )?one (?:class|label|category))\b"
    ),
}


# plan fields whose valid values depend on the task: a change of task drops the person's edits
TASK_BOUND_FIELDS = ("metric", "positive_label", "label_smoothing", "class_weights", "head_init")


def write_split(folder: Path, name: str, task: str, texts: list, labels: list):
    """One split of a fixed data version, in the format its task reads: (path, reader). A table
    (CSV with text and label), CoNLL (token classification) or chat-message JSON lines."""
    import csv
    import io

    from tuning_core import recipe

    if task == "token_classification":
        path, reader = folder / f"{name}.conll", {"format": "conll"}
        blocks = [
            "\n".join(f"{w} {t}" for w, t in zip(x.split(" "), y.split(" "), strict=True))
            for x, y in zip(texts, labels, strict=True)
        ]
        body = "\n\n".join(blocks) + "\n"
    elif task == "instruction_tuning":
        path, reader = folder / f"{name}.jsonl", {"format": "instruction_jsonl"}
        body = "".join(
            json.dumps({"messages": recipe.conversation(x, y)}, ensure_ascii=False) + "\n"
            for x, y in zip(texts, labels, strict=True)
        )
    else:
        path, reader = folder / f"{name}.csv", {}
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
        body = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8", newline="")
    tmp.replace(path)
    return path, reader


# "unlabelled texts in ~/more.txt", "add unlabeled data from tweets.csv"
UNLABELLED_RE = re.compile(
    r"\bunlabell?ed\b(?:\s+(?:texts?|data|tweets|posts|sentences))?"
    r"(?:\s+(?:from|in|at|file))?\s*:?\s+(\S+\.(?:txt|csv|tsv|jsonl|json|parquet)(?:\.gz)?)",
    re.I,
)


# another label set trained with the main one: "also learn the column strength", "also predict
# topic", "add the task irony from irony/train.csv"
AUXILIARY_RE = re.compile(
    r"\b(?:also\s+(?:learn|predict|train\s+on)|add\s+(?:the\s+|a\s+)?(?:task|label\s+set))"
    r"\s+(?:the\s+)?(?:column\s+|labels?\s+)?['\"`]?([\w.-]+)['\"`]?"
    r"(?:\s+(?:from|in)\s+(\S+))?",
    re.I,
)
# most distinct values a column may have to be read as a label set
AUXILIARY_MAX_LABELS = 100


def task_from_words(text: str) -> str | None:
    """The task the person named, or None when their words do not say."""
    for task, pattern in TASK_WORDS.items():
        if re.search(pattern, text, re.I):
            return task
    return None


TASK_INTROS = {
    "single_label_classification": "Text classification it is{what}: one label per text.",
    "multi_label_classification": (
        "Multi-label classification it is{what}: any number of labels per text, each a yes/no "
        "decision with its own threshold."
    ),
    "regression": "Regression it is{what}: a number per text (a score, a rating).",
    "token_classification": (
        "Token classification it is{what}: a tag for every word (named entities), scored by "
        "whole entities."
    ),
    "instruction_tuning": (
        "Instruction tuning it is{what}: a small language model learns to write the replies "
        "(LoRA; the loss counts the replies only). Give JSON lines of prompt/response pairs or "
        "chat messages."
    ),
    None: "Text classification it is{what}: I'll tell from the labels whether each text has one "
    "label, several, or a score.",
}
PATH_RE = re.compile(
    r"(?:^|[\s:'\"])((?:~|\.{1,2})?/?[\w.\-/~]+\.(?:csv|tsv|tab|jsonl|json|ndjson|parquet)(?:\.gz)?)\b",
    re.I,
)


YES = re.compile(r"(yes|y|ok|okay|go|run|start|train|sure|right|correct|looks good|yep|yeah)[.!]*")
SEVERITY_MARK = {"high": "🔴", "medium": "🟠", "low": "🟡", "info": "🔵"}
METRIC_LABELS = {
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
    "f1": "F1",
    "micro_f1": "micro-F1",
    "pearson": "Pearson's r",
    "spearman": "Spearman's rho",
    "mse": "mean squared error",
    "mae": "mean absolute error",
    "entity_f1": "entity F1",
    "token_accuracy": "token accuracy",
    "perplexity": "perplexity",
    "loss": "loss per reply token",
}


def metric_label(plan_or_report: dict) -> str:
    """'macro-F1', 'accuracy', or "F1 of 'irony'" for a plan (or a report with a metric)."""
    metric = plan_or_report.get("metric", "macro_f1")
    if metric == "f1":
        return f"F1 of '{plan_or_report.get('positive_label') or '?'}'"
    return METRIC_LABELS.get(metric, metric)


FIX_TITLES = {
    "drop_exact_duplicates": "Drop exact duplicates",
    "resolve_conflicts_majority": "Resolve conflicting labels by majority",
    "drop_conflicts": "Drop texts with conflicting labels",
    "drop_empty": "Drop empty rows",
    "drop_leaked": "Remove leaked rows from train",
    "merge_rare_labels": "Merge rare labels into 'other'",
}


def fix_summary_text(summary: dict) -> str:
    """'remove 3 of 120 training rows, relabel 2' from a `quality.apply_fix` summary."""
    parts = []
    for name, count in summary["removed"].items():
        if count:
            parts.append(f"remove {count} of {summary['rows_before'][name]} {name} rows")
    for name, count in summary["relabelled"].items():
        if count:
            parts.append(f"relabel {count} {name} rows")
    if summary.get("labels_changed"):
        merged = ", ".join(f"'{a}'" for a in summary["labels_changed"])
        parts.append(f"merge {merged} into '{next(iter(summary['labels_changed'].values()))}'")
    for name, labels in (summary.get("labels_gone") or {}).items():
        parts.append(f"leave no {name} rows for {', '.join(repr(x) for x in labels)}")
    return "; ".join(parts) or "change nothing"


def _is_model_dir(path: Path) -> bool:
    """A saved model (a folder with a config.json, its weights there or not), which is not data
    even though it holds .json files."""
    return (path / "config.json").exists()


def typed_path(text: str) -> Path:
    """A path typed in the chat as the absolute path it means here (`~` expanded, `..` and
    links resolved): replies show this form, so the person sees what is used."""
    return Path(text.strip().strip("'\"")).expanduser().resolve()


def typed_model(name: str) -> str:
    """A model named in the chat: a folder (a path, or a name that exists here) as its absolute
    path, anything else (a hub id) as said."""
    path = Path(name).expanduser()
    if name.startswith(("~", ".", "/")) or path.exists():
        return str(path.resolve())
    return name


def _run_plan(run_dir: Path) -> dict | None:
    """A run folder's plan, or None when it is damaged (then the run is not resumed)."""
    try:
        return Plan.load(run_dir / "plan.json").to_dict()
    except TuningError:
        return None


def demo_data_path() -> Path:
    return Path(str(resources.files("assistant") / "demo" / "posts.csv"))


@dataclass
class Reply:
    text: str
    kind: str = "text"  # text | error | plan | results

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class PlannerState:
    stage: str = "task"
    history: list[str] = field(default_factory=list)
    task: str | None = None
    task_words: str = ""
    task_asked: str | None = None  # the task the person named; None: the data's shape decides
    spec: dict | None = None
    profile: dict | None = None
    resources: dict | None = None
    recommendation: dict | None = None
    plan: dict | None = None
    changed: list[str] = field(default_factory=list)
    run_id: str | None = None
    run_dir: str | None = None
    run_count: int = 0
    report: dict | None = None
    export_dir: str | None = None
    baseline: dict | None = None
    source: str | None = None  # the person's own file (a fixed version lives in the session)
    data_versions: list[dict] = field(default_factory=list)
    pending_fix: str | None = None
    # a model that needs the person's yes (remote code, pickle weights) before it is used:
    # {"model", "files", "changes", "constraints", "freeze_top"}
    pending_consent: dict | None = None
    forecast: dict | None = None
    calibration: dict | None = None
    constraints: dict = field(default_factory=dict)  # the person's limits for the recommender
    diagnosed: list[str] = field(default_factory=list)  # "run-1:plateau": said once per run
    # the person agreed that data rows may be sent to the language model (`--llm`), this session
    llm_rows: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PlannerState:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


def describe_constraint(name: str, value: Any) -> str:
    if name == "time_budget_min":
        return f"time budget {value:g} min"
    if name == "max_params_m":
        return f"models up to {value:g}M parameters"
    if name == "licence":
        return f"licence {value if isinstance(value, str) else ' or '.join(value)}"
    return f"{name.replace('_', ' ')} {value}"


def fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe_freezing(plan: dict) -> str:
    label = FREEZING_LABELS.get(plan["freezing"], plan["freezing"])
    if plan["freezing"] == "bottom_k":
        return f"{label}: {plan['freeze_layers']}"
    if plan["freezing"] == "lora":
        return f"{label}: rank {plan['lora_rank']}, alpha {plan['lora_alpha']}"
    return label


PLAN_ROWS = (
    ("base_model", "Base model"),
    ("adapt_epochs", "Adaptive pretraining"),
    ("multitask", "Other tasks"),
    ("quantization", "4-bit base (QLoRA)"),
    ("trust_remote_code", "Model's own code"),
    ("allow_pickle_weights", "Pickle weights"),
    ("max_length", "Max length"),
    ("freezing", "Freezing"),
    ("pooling", "Pooling"),
    ("head_init", "Output layer starts"),
    ("learning_rate", "Learning rate"),
    ("batch_size", "Batch size"),
    ("sampling", "Batch order"),
    ("epochs", "Epochs"),
    ("precision", "Precision"),
    ("weight_decay", "Weight decay"),
    ("dropout", "Dropout"),
    ("label_smoothing", "Label smoothing"),
    ("early_stopping_patience", "Early stopping"),
    ("eval_rows", "Checked each epoch"),
    ("class_weights", "Class weights"),
    ("layerwise_lr_decay", "Layer-wise LR decay"),
    ("gradual_unfreezing", "Gradual unfreezing"),
    ("metric", "Metric"),
    ("trials", "Search"),
    ("seed", "Seed"),
)
# shown only when on (the table stays short for the common plan)
OPTIONAL_ROWS = {
    "trust_remote_code": False,
    "allow_pickle_weights": False,
    "layerwise_lr_decay": 1.0,
    "gradual_unfreezing": False,
    "eval_rows": 0,
    "head_init": "random",
    "adapt_epochs": 0.0,
    "multitask": False,
    "quantization": "none",
}
SAMPLING_LABELS = {
    "length": "grouped by length, longest first",
    "buckets": "grouped by length, shuffled",
    "random": "shuffled rows",
}


def plan_rows(plan: dict) -> list[tuple[str, str, str]]:
    """(field, label, value) for display."""
    rows = []
    for name, label in PLAN_ROWS:
        if name in OPTIONAL_ROWS and plan.get(name, OPTIONAL_ROWS[name]) == OPTIONAL_ROWS[name]:
            continue
        if name == "freezing":
            value = describe_freezing(plan)
        elif name == "dropout":
            value = "model's own" if plan["dropout"] is None else fmt_number(plan["dropout"])
        elif name == "early_stopping_patience":
            p = plan[name]
            value = f"patience {p}" if p else "off"
        elif name == "metric":
            value = metric_label(plan)
        elif name == "batch_size" and plan.get("grad_accum", 1) > 1:
            value = f"{plan['batch_size']} x {plan['grad_accum']} accumulated steps"
        elif name in ("trust_remote_code", "allow_pickle_weights"):
            value = "allowed for this model only (you agreed)"
        elif name in ("class_weights", "gradual_unfreezing"):
            value = "on" if plan.get(name) else "off"
        elif name == "trials":
            trials = plan.get("trials", 0)
            value = f"{trials} trials" if trials else "off (train once)"
        elif name == "head_init":
            value = HEAD_INIT_LABELS.get(plan.get("head_init", "random"), plan.get("head_init"))
        elif name == "adapt_epochs":
            value = (
                f"{fmt_number(plan['adapt_epochs'])} epochs of masked-LM training on the texts "
                f"at {fmt_number(plan.get('adapt_learning_rate', 1e-4))}, then fine-tuning"
            )
        elif name == "quantization":
            value = "on: NF4 base under the LoRA adapters"
        elif name == "multitask":
            value = (
                "trained together: a head each on the shared encoder, loss weight "
                f"{fmt_number(plan.get('auxiliary_weight', 1.0))}, "
                + (
                    "tasks mixed in each batch"
                    if plan.get("multitask_batches") == "mixed"
                    else "one task per batch"
                )
            )
        elif name == "sampling":
            value = SAMPLING_LABELS.get(plan.get("sampling", "length"), plan.get("sampling"))
        elif name == "eval_rows":
            value = f"a {plan['eval_rows']:,}-row validation sample"
        elif name == "precision":
            value = plan.get("precision", "fp32")
        elif name == "pooling":
            pooling = plan.get("pooling", "default")
            value = "mean of the tokens" if pooling == "mean" else "the model's own head"
        elif name == "base_model" and plan[name] == EMBEDDED_MODEL_ID:
            value = "all-MiniLM-L6-v2 (embedded)"
        else:
            value = fmt_number(plan[name])
        rows.append((name, label, value))
    return rows


def same_run_plan(ran: dict, planned: dict) -> bool:
    """True when a run folder's plan is the planned one, allowing for the worker's change after
    running out of GPU memory (a smaller micro-batch, more accumulation, the same rows per
    update)."""

    def effective(plan: dict) -> int:
        return int(plan["batch_size"]) * int(plan.get("grad_accum", 1))

    rest = ("batch_size", "grad_accum")
    return effective(ran) == effective(planned) and {
        k: v for k, v in ran.items() if k not in rest
    } == {k: v for k, v in planned.items() if k not in rest}


def relevant_notes(question: str) -> list[str]:
    """The ids of the knowledge notes that answer `question` best (BM25 over their titles and
    texts): the best one and any close to it, none when nothing fits."""
    found = knowledge.search_notes(question, k=3)
    return [note.id for note, score in found if score >= 0.7 * found[0][1]]


def quote_note(note) -> str:
    """A note quoted with its source, as the chat shows it."""
    return f"\n> **{note.title}** — {note.text}\n> Source: {note.source}"


def resumable_status(status: dict) -> bool:
    """A run that can go on from its last checkpoint: stopped, killed, or failed for want of
    disk space (the worker marks that failure resumable)."""
    state = status.get("state")
    return state in ("stopped", "dead") or (state == "failed" and bool(status.get("resumable")))


class Planner:
    """One conversation's dialogue logic. `runs_dir` is where this session's runs go."""

    def __init__(self, runs_dir: Path, state: PlannerState | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.state = state or PlannerState()
        self._rows_cache: tuple[str, dict] | None = None  # not saved: re-read after a restart
        # told what a slow step is doing ("profiling 2,862 rows…"); the app shows it under the
        # chat, the headless chat on stderr
        self.progress: Callable[[str], None] = lambda text: None
        # set by a front end that shows replies as they come: a turn hands over what it has
        # before its slow part (see `load`); None: all replies come back at the end
        self.emit: Callable[[Reply], None] | None = None

    # ------------------------------------------------------------ entry points

    def greeting(self) -> list[Reply]:
        return [Reply(GREETING)]

    def handle(self, text: str) -> list[Reply]:
        """One user turn in, replies out. Never raises for bad input."""
        text = text.strip()
        try:
            if re.match(r"/[A-Za-z?-]+(?:\s|$)", text):  # /help, /export DIR; not /a/path.csv
                return self._command(text)
            return self._by_stage(text)
        except TuningError as exc:
            return [Reply(f"**{exc.title}:** {exc.message}", "error")]

    def run_finished(self, status: dict[str, Any]) -> list[Reply]:
        """The worker reached a terminal state: report results or say what happened."""
        state = status.get("state")
        run_dir = Path(self.state.run_dir or "")
        if state == "finished":
            report = runs.read_report(run_dir)
            if report is None:
                return [Reply("The run finished but left no report; see worker.log.", "error")]
            from tuning_core.forecast import compare

            forecast_file = run_dir / "forecast.json"
            checked = None
            if forecast_file.exists():
                events, _ = runs.read_events(run_dir)
                checked = compare(json.loads(forecast_file.read_text()), events, status)
                runs.write_json_atomic(run_dir / "forecast_check.json", checked)
            self.state.report = {
                "forecast_check": checked,
                "task": report.get("task", TASK),
                "validation": report["validation"],
                "test": report["test"],
                "metric": report["metric"],
                "epochs_run": report.get("epochs_run"),
                "train_rows": report.get("train_rows"),
                "train_fit": report.get("train_fit"),
                "judge": report.get("judge"),
            }
            self._go("results")
            return [Reply(self._results_text(), "results")]
        if state == "stopped":
            self._go("plan")
            if "trials_finished" in status:  # a search: no single step to name
                done = status["trials_finished"]
                return [
                    Reply(
                        f"The search stopped after {done} finished trial"
                        f"{'' if done == 1 else 's'}; the trial it was training starts again "
                        "when it resumes. Type `/run` to resume it, or change the plan to start "
                        "over.",
                    )
                ]
            return [
                Reply(
                    f"Training stopped at step {status.get('step', '?')} with a checkpoint. "
                    "Type `/run` to resume it where it stopped, or change the plan to start over.",
                )
            ]
        self._go("plan")
        error = status.get("error") or "the worker process ended unexpectedly"
        if resumable_status(status):  # the disk filled, or a kill: nothing wrong with the plan
            then = "Then type" if status.get("error") else "Type"  # after the error's own advice
            return [
                Reply(
                    f"**Training paused:** {error.rstrip('.')}. {then} `/run` to resume it "
                    "from its last checkpoint (details in the run's worker.log); the session and "
                    "the plan are as they were.",
                    "error",
                )
            ]
        return [
            Reply(
                f"**Training failed:** {error}. The plan is unchanged: adjust it and `/run` "
                "again (details in the run's worker.log).",
                "error",
            )
        ]

    # ------------------------------------------------------------ commands

    def _command(self, text: str) -> list[Reply]:
        name, _, arg = text[1:].partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("help", "h", "?"):
            return [Reply(HELP)]
        if name == "status":
            return [Reply(self.status_text())]
        if name == "back":
            return self._back()
        if name in ("run", "train", "resume"):
            return self._start_run()
        if name == "stop":
            if self.state.run_dir and runs.stop_run(Path(self.state.run_dir)):
                return [Reply("Stopping: the worker saves a checkpoint and exits.")]
            return [Reply("No training is running.")]
        if name == "export":
            return self._export(arg)
        if name == "plan":
            return [self._plan_reply()] if self.state.plan else [Reply("There is no plan yet.")]
        if name == "forecast":
            if not self.state.plan:
                return [Reply("There is no plan yet.")]
            return [Reply(self._forecast_line(timed=True))]
        if name in ("findings", "data"):
            if not self.state.profile:
                return [Reply("Load a data file first.")]
            return [Reply(self.findings_text() if name == "findings" else self.reading_text())]
        return [Reply(f"I don't know `/{name}`. Try `/help`.", "error")]

    def _back(self) -> list[Reply]:
        if self.state.stage == "run":
            return [Reply("Training is running; `/stop` it first.")]
        if not self.state.history:
            return [Reply("We are at the first step already.")]
        self.state.stage = self.state.history.pop()
        prompts = {
            "task": "What would you like to train?",
            "data": "Which file holds your labelled data? (Enter for the demo)",
            "plan": "Back at the plan. Change anything, or press Enter to train.",
            "results": "Back at the results. `/export DIR` writes the bundle.",
        }
        return [Reply(prompts.get(self.state.stage, f"Back to {self.state.stage}."))]

    def _go(self, stage: str) -> None:
        """Move to `stage`, remembering where we were for /back (a run is not a stop on the way)."""
        if stage == self.state.stage:
            return
        if self.state.history and self.state.history[-1] == stage:
            self.state.history.pop()
        elif self.state.stage != "run":
            self.state.history.append(self.state.stage)
        self.state.stage = stage

    # ------------------------------------------------------------ stages

    def _by_stage(self, text: str) -> list[Reply]:
        stage = self.state.stage
        # "what is label smoothing?" before any data: answered from the notes
        asks = stage in ("task", "data") and re.match(r"(why|what|how|explain)\b", text.lower())
        if asks and not self._find_path(text) and relevant_notes(text):
            return self._explain(text)
        if stage == "task":
            return self._task(text)
        if stage == "data":
            return self._data(text)
        if stage == "review":
            return self._review(text)
        if self.state.pending_fix:
            return self._confirm_fix(text)
        if self.state.pending_consent:
            return self._confirm_consent(text)
        if stage == "run":
            if is_question(text) and self.state.plan:
                return self._explain(text)
            return [Reply("Training is running. `/status` shows progress; `/stop` stops it.")]
        # plan, results, export: adjustments, questions, a new file, or Enter
        unlabelled = UNLABELLED_RE.search(text)
        if unlabelled:
            return self._add_unlabelled(unlabelled.group(1))
        auxiliary = AUXILIARY_RE.search(text)
        if auxiliary:
            return self._add_auxiliary(*auxiliary.groups())
        path = self._find_path(text)
        if path:
            return self.load(path)
        if not text:
            if stage == "plan":
                return self._start_run()
            if stage == "results":
                return self._export("")
            return [Reply("Done. Change the plan and `/run` again, or `/export DIR` once more.")]
        if stage == "plan" and YES.fullmatch(text.lower()):
            return self._start_run()
        fix = parse_fix(text)
        if fix and stage == "plan":
            return self._propose_fix(fix)
        match = re.match(r"export(?: (?:it|the bundle))?(?: to)?\s+(\S+)", text, re.I)
        if match:
            return self._export(match.group(1))
        if is_question(text):
            return self._explain(text)
        adjustment = parse_adjustment(text)
        if not adjustment.empty:
            return self._adjust(adjustment)
        return [
            Reply(
                "I didn't catch a change in that. Try `3 epochs`, `learning rate 2e-5`, "
                "`use LoRA rank 8`, a question like `why this learning rate?`, or `/help`."
            )
        ]

    def _task(self, text: str) -> list[Reply]:
        for pattern, name in OTHER_TASKS.items():
            if re.search(pattern, text, re.I):
                return [
                    Reply(
                        f"{name.capitalize()} is not supported yet: I fine-tune text "
                        "classifiers (one label per text: sentiment, topics, intents; or several "
                        "labels per text), regressors (a score per text) and token classifiers "
                        "(named entities). Tell me such a task, or press Enter.",
                    )
                ]
        self.state.task_asked = task_from_words(text)
        self.state.task = self.state.task_asked or TASK
        self.state.task_words = text
        path = self._find_path(text)
        if path:
            self._go("data")
            return self.load(path)
        self._go("data")
        what = f" ({text})" if text else ""
        return [
            Reply(
                TASK_INTROS[self.state.task_asked].format(what=what)
                + " Which file holds your labelled data? CSV, TSV, JSONL or Parquet with a text "
                "and a label column. Press Enter to use the demo posts."
            )
        ]

    def _data(self, text: str) -> list[Reply]:
        if not text or text.lower() in ("demo", "the demo", "use the demo"):
            return self.load(str(demo_data_path()))
        path = self._find_path(text) or text.strip().strip("'\"")
        return self.load(path)

    @staticmethod
    def _find_path(text: str) -> str | None:
        """A data file named in `text` (by its extension), or any word that is a path on disk."""
        match = PATH_RE.search(text)
        if match:
            return match.group(1)
        for word in text.split():
            word = word.strip("'\"`,;:()")
            path = Path(word).expanduser()
            if ("/" in word or word.startswith("~")) and path.exists() and not _is_model_dir(path):
                return word
        return None

    # ------------------------------------------------------------ data, profile, plan

    def load(
        self, path: str, columns: dict[str, str] | None = None, review: bool = True
    ) -> list[Reply]:
        """Read `path`, profile it, measure a baseline and prepare a plan; then ask for a yes."""
        from tuning_core.data import inspect_data

        columns = columns or {}
        started = time.monotonic()
        seed = int((self.state.plan or {}).get("seed", 42))
        path = typed_path(path)  # the reply names the absolute file it read
        self.progress(f"reading {path.name}…")
        spec = inspect_data(
            path,
            columns.get("text"),
            columns.get("label"),
            split_seed=seed,
            task=self.state.task_asked,
        )
        old = self.state.spec or {}
        # other label sets stay: files of their own, and columns these files still have
        spec.auxiliary = [
            a
            for a in old.get("auxiliary") or []
            if a["files"] != old.get("files")
            or (
                spec.files == old.get("files")
                and a["label_column"] in spec.columns
                and a["label_column"] not in (spec.text_column, spec.label_column)
            )
        ]
        self.state.source = str(Path(spec.train_file))
        self.state.data_versions = []
        self.state.pending_fix = None
        if review and self.emit is not None:
            # the reading first, then the baseline (seconds of cross-validation) when it is done
            self._analyse(spec, baseline=False)
            self._go("review")
            self.emit(Reply(self.reading_text(time.monotonic() - started)))
            self._measure_baseline(spec)
            return [Reply(self._baseline_line(self.state.baseline)), Reply(self._review_question())]
        self._analyse(spec)
        if not review:
            self._go("plan")
            return [self._plan_reply()]
        self._go("review")
        return [
            Reply(self.reading_text(time.monotonic() - started)),
            Reply(self._review_question()),
        ]

    def _analyse(self, spec, baseline: bool = True) -> None:
        """Profile the rows, run the baseline (unless told not to), and fill the recommended
        plan (keeping edits)."""
        from tuning_core.hardware import probe_resources
        from tuning_core.profile import profile_rows
        from tuning_core.recommend import recommend_plan

        seed = int((self.state.plan or {}).get("seed", 42))
        constraints = {**self.state.constraints, "seed": seed}
        base_model = constraints.get("base_model") or EMBEDDED_MODEL_ID
        splits = self._rows(spec)
        rows = sum(len(texts) for texts, _ in splits.values())
        self.progress(f"profiling {rows:,} rows: token lengths, duplicates, leaks, conflicts…")
        task, fmt = spec.task, spec.label_format
        profile = profile_rows(splits, base_model, task=task, label_format=fmt)
        resources_ = probe_resources()
        rec = recommend_plan(task, profile, resources_, constraints, spec.auxiliary)
        if rec.plan.base_model != base_model:
            # lengths in the chosen model's own tokens, then the plan again for that model
            chosen = rec.reasons["base_model"]
            profile = profile_rows(splits, rec.plan.base_model, task=task, label_format=fmt)
            rec = recommend_plan(
                task,
                profile,
                resources_,
                {**constraints, "base_model": rec.plan.base_model},
                spec.auxiliary,
            )
            rec.reasons["base_model"] = chosen
        self.state.task = task
        self.state.spec = spec.to_dict()
        self.state.profile = profile.to_dict()
        self.state.resources = resources_.to_dict()
        self.state.recommendation = rec.to_dict()
        # the person's own changes survive a reload (new file, new columns, new model)
        previous = self.state.plan or {}
        kept = {k: previous[k] for k in self.state.changed if k in previous and k != "base_model"}
        if previous.get("task", task) != task:  # another task: the old metric may not score it
            kept = {k: v for k, v in kept.items() if k not in TASK_BOUND_FIELDS}
        self.state.changed = sorted(kept)
        if previous.get("consent_model") == rec.plan.base_model:  # the same model: still agreed
            kept.update({k: previous[k] for k in CONSENT_FIELDS if k in previous})
        self.state.plan = rec.plan.replace(**kept).to_dict() if kept else rec.plan.to_dict()
        self.state.report = None
        self.state.baseline = None
        if baseline:
            self._measure_baseline(spec)

    def _measure_baseline(self, spec) -> None:
        from tuning_core.baseline import run_baseline
        from tuning_core.judge import baseline_name

        plan = self.state.plan or {}
        if spec.task != "instruction_tuning":  # the base model is scored by the run itself
            self.progress(f"measuring the baseline to beat ({baseline_name(spec.task)}, 5 folds)…")
        self.state.baseline = run_baseline(
            self._rows(spec),
            plan["metric"],
            seed=int(plan.get("seed", 42)),
            positive=plan.get("positive_label") if plan["metric"] == "f1" else None,
            task=spec.task,
            label_format=spec.label_format,
        )

    def _review_question(self) -> str:
        fixable = [f for f in (self.state.profile or {}).get("findings", []) if f.get("fix")]
        lines = [
            "**Did I read it right?** Press **Enter** (or say `yes`) to see my plan.",
            "To correct me, say e.g. `the label is in column 'category'`, `several labels per "
            "text`, `predict the score`, or give another file.",
        ]
        if fixable:
            fixes = ", ".join(
                f"`{FIX_PHRASES[f['fix']]}`" for f in fixable if f["fix"] in FIX_PHRASES
            )
            lines.append(
                f"Suggested fixes (your file is never changed; I keep a fixed copy in the session): {fixes}."
            )
        return "\n".join(lines)

    def reading_text(self, seconds: float | None = None) -> str:
        """How I read the data, what is wrong with it, and the baseline to beat."""
        from tuning_core.data import DataSpec
        from tuning_core.profile import DataProfile

        spec = DataSpec.from_dict(self.state.spec)
        profile = DataProfile.from_dict(self.state.profile)
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        name = Path(self.state.source or spec.train_file).name
        labels = ", ".join(f"`{k}` ({v})" for k, v in profile.label_counts.items())
        if spec.task == "instruction_tuning":
            labels_line = "- " + profile.labels_line()
            masked = profile.label_stats.get("masked_example")
            if masked:
                labels_line += (
                    "\n- How the first example trains (`[masked: …]` is prompt, not learned; "
                    "the rest is the reply the loss reads):\n\n```\n" + masked + "\n```"
                )
        elif spec.task == "token_classification":
            stats = profile.label_stats
            labels_line = (
                f"- {len(spec.labels)} tags ({spec.label_format} scheme), entities: "
                + (labels or "none")
                + f"; {stats.get('sentences', 0):,} sentences, "
                f"{stats.get('tokens', 0):,} tokens"
            )
        elif spec.task == "regression":
            stats = profile.label_stats
            labels_line = (
                f"- Targets: numbers from {stats['min']:g} to {stats['max']:g} (median "
                f"{stats['median']:g}, mean {stats['mean']:g}, standard deviation {stats['std']:g})"
            )
        elif spec.task == "multi_label_classification":
            how = "JSON lists" if spec.label_format == "json" else f"split at `{spec.label_format}`"
            labels_line = (
                f"- {len(spec.labels)} labels ({how}), rows per label: {labels}; "
                f"{profile.label_stats.get('labels_per_row', 0):.2f} labels per row, "
                f"{profile.label_stats.get('rows_without', 0)} rows with none"
            )
            pairs = profile.label_stats.get("top_pairs") or []
            if pairs:
                labels_line += "; most often together: " + ", ".join(
                    f"`{a}`+`{b}` ({n})" for a, b, n in pairs[:3]
                )
        else:
            labels_line = f"- {len(spec.labels)} labels: {labels}"
        lines = [f"**How I read `{name}`**{took}", ""]
        if self.state.source:
            lines.append(f"- File: `{self.state.source}`")
        if self.state.data_versions:
            last = self.state.data_versions[-1]
            lines.append(
                f"- Using fixed version v{last['version']} kept in the session ({last['what']}); your file is unchanged"
            )
        lines += [
            f"- Text column: `{spec.text_column}` ({spec.reasons.get('text', '')})",
            f"- Label column: `{spec.label_column}` ({spec.reasons.get('label', '')})",
            f"- Task: {TASK_LABELS.get(spec.task, spec.task)}: {spec.reasons.get('task', '')}",
            labels_line,
            f"- Splits: {spec.describe_splits()}",
        ]
        lines += [f"- ⚠ {w}" for w in getattr(spec, "warnings", []) or []]
        lines += ["", "**What I found**", ""]
        findings = profile.findings or []
        shown = [f for f in findings if f.get("severity") != "info"][:5] or findings[:3]
        for f in shown:
            fix = f" → {f['fix_text']}" if f.get("fix_text") else ""
            lines.append(f"- {SEVERITY_MARK.get(f['severity'], '')} **{f['title']}**{fix}")
        if not shown:
            lines.append("- Nothing worrying: no duplicates, conflicts, empty rows or leakage.")
        if len(findings) > len(shown):
            lines.append(
                f"- … {len(findings) - len(shown)} more: `/findings` lists them all with sample rows"
            )
        lengths = profile.token_lengths
        lines += [
            "",
            f"Rows: {', '.join(f'{k} {v}' for k, v in profile.rows.items())} · tokens per text: "
            f"median {lengths['p50']}, p90 {lengths['p90']}, p99 {lengths['p99']}, max {lengths['max']}",
        ]
        traits = profile.text_traits or {}
        if "split_words" in traits:
            lines[-1] += (
                f" · words the model's tokenizer splits: {traits['split_words']:.1%}, unknown "
                f"tokens: {traits['unknown_tokens']:.2%}"
            )
        if spec.unlabelled:
            lines.append(f"Unlabelled texts for adaptive pretraining: `{spec.unlabelled}`")
        for aux in spec.auxiliary:
            lines.append(self._auxiliary_line(aux))
        baseline = self.state.baseline
        if baseline:
            lines += ["", self._baseline_line(baseline)]
        return "\n".join(lines)

    @staticmethod
    def _baseline_line(baseline: dict) -> str:
        metric = metric_label(baseline)
        tfidf, majority = baseline["tfidf_lr"], baseline["majority"]
        if tfidf.get("cv_mean") is None:
            return f"**Baseline:** not measured ({'; '.join(baseline.get('notes', [])) or 'too little data'})."
        from tuning_core.judge import baseline_name

        task = baseline.get("task") or TASK
        if tfidf.get("cv_mean") is None and task == "instruction_tuning":
            return "**Baseline:** " + "; ".join(baseline.get("notes", [])) + "."
        constant = {
            "token_classification": "tagging every word `O`",
            "regression": f"always predicting the mean ({majority.get('label')})",
            "multi_label_classification": "always predicting the most common labels "
            f"({majority.get('label')})",
        }.get(task, "always predicting the majority class")
        sampled = f", sampled to {baseline['rows_used']} rows" if baseline.get("sampled") else ""
        text = (
            f"**Baseline to beat:** {baseline_name(task)} scores {metric} "
            f"**{tfidf['cv_mean']:.4f}** ± {tfidf['cv_std']:.4f} ({baseline.get('folds')}-fold CV "
            f"on train{sampled}, {baseline.get('seconds', 0):.1f} s"
        )
        if tfidf.get("validation") is not None:
            text += f"; {tfidf['validation']:.4f} on validation"
        return text + f"); {constant} scores {majority['cv_mean']:.4f}."

    def findings_text(self) -> str:
        findings = (self.state.profile or {}).get("findings") or []
        if not findings:
            return "No findings: the data looks clean."
        lines = ["**Findings**, most serious first:", ""]
        for i, f in enumerate(findings, 1):
            lines.append(
                f"{i}. {SEVERITY_MARK.get(f['severity'], '')} **{f['title']}** ({f['severity']})"
            )
            lines.append(f"   {f['detail']}")
            if f.get("fix_text"):
                phrase = FIX_PHRASES.get(f.get("fix") or "", "")
                lines.append(f"   Fix: {f['fix_text']}" + (f" — say `{phrase}`" if phrase else ""))
            for sample in f.get("samples", [])[:3]:
                text = str(sample.get("text", ""))[:80].replace("`", "'")
                lines.append(
                    f"   - {sample.get('split', '')} row {sample.get('row', '')}: `{text}` → {sample.get('label', '')}"
                )
        return "\n".join(lines)

    # ------------------------------------------------------------ review and fixes

    def _read_as_task(self, text: str) -> list[Reply] | None:
        """The same file read again as the task the words name while reviewing ("it is
        multi-label", "predict the score", "one label per text"); None when they name none."""
        task = task_from_words(text)
        if task is None or not self.state.spec or task == self.state.spec.get("task"):
            return None
        previous = self.state.task_asked
        self.state.task_asked = task
        try:
            return self.load(self.state.source or self.state.spec["files"]["train"])
        except TuningError:
            self.state.task_asked = previous  # the file stays read as it was
            raise

    @staticmethod
    def _auxiliary_line(aux: dict) -> str:
        where = (
            f"column `{aux['label_column']}` of the same file"
            if aux.get("same_texts")
            else f"`{Path(aux['files']['train']).name}`, column `{aux['label_column']}`"
        )
        return (
            f"Other task `{aux['name']}`: {len(aux['labels'])} labels "
            f"({', '.join(f'`{x}`' for x in aux['labels'][:6])}"
            f"{', …' if len(aux['labels']) > 6 else ''}) from {where}"
        )

    def _add_auxiliary(self, name: str, typed_file: str | None) -> list[Reply]:
        """Keep another label set in the data spec (a column of the same file, or a labelled
        file of its own), read and checked; then plan again, so the recommender says whether
        to train it together with the main task."""
        from tuning_core import recipe
        from tuning_core.data import DataSpec, inspect_data

        if not self.state.spec:
            return [Reply("Load the labelled data first, then add another task.", "error")]
        spec = dict(self.state.spec)
        if spec.get("task", TASK) != TASK:
            return [
                Reply(
                    "Training several label sets together is for single-label classification; "
                    f"this data is read for {spec.get('task')}.",
                    "error",
                )
            ]
        if typed_file:
            path = typed_path(typed_file.strip("'\"`"))
            other = inspect_data(path, split_seed=int(spec.get("split_seed", 42)), task=TASK)
            if other.task != TASK:
                return [Reply(f"`{path.name}` is not read as one label per text.", "error")]
            entry = {
                "name": name,
                "files": other.files,
                "text_column": other.text_column,
                "label_column": other.label_column,
                "labels": other.labels,
                "readers": other.readers,
                "sha256": other.sha256,
                "split_seed": other.split_seed,
            }
        else:
            column = next((c for c in spec["columns"] if c.lower() == name.lower()), None)
            if column is None:
                return [
                    Reply(
                        f"There is no column `{name}` in the data (columns: "
                        f"{', '.join(f'`{c}`' for c in spec['columns'])}). Say `also learn "
                        "COLUMN`, or `also learn NAME from FILE` for a labelled file of its own.",
                        "error",
                    )
                ]
            if column in (spec["text_column"], spec["label_column"]):
                return [Reply(f"`{column}` is already the text or the label column.", "error")]
            name = column
            entry = {
                "name": column,
                "files": spec["files"],
                "text_column": spec["text_column"],
                "label_column": column,
                "labels": [],  # read below, with its rows
                "readers": spec.get("readers") or {},
                "sha256": spec.get("sha256") or {},
                "split_seed": spec.get("split_seed", 42),
                "same_texts": True,
            }
        if name == spec["label_column"]:
            return [Reply(f"`{name}` is the main task's name; give the other task another.")]
        try:  # its rows: the labels of a column, and what it adds to each epoch (the forecast)
            other_splits = recipe.auxiliary_splits(
                entry, spec, self._rows(DataSpec.from_dict(spec))
            )
        except (ValueError, OSError) as exc:
            return [Reply(f"Could not read `{name}`: {str(exc).splitlines()[0]}", "error")]
        if entry.get("same_texts"):
            values = [y for _, labels in other_splits.values() for y in labels]
            entry["labels"] = sorted(set(values))
            if not 2 <= len(entry["labels"]) <= min(AUXILIARY_MAX_LABELS, len(values) // 2):
                return [
                    Reply(
                        f"`{name}` has {len(entry['labels'])} distinct value(s) in {len(values)} "
                        "rows: not a label set (two or more classes, each on several rows).",
                        "error",
                    )
                ]
        entry["train_rows"] = len(other_splits["train"][0])
        spec["auxiliary"] = [a for a in spec.get("auxiliary") or [] if a["name"] != name] + [entry]
        baseline = self.state.baseline
        self._analyse(DataSpec.from_dict(spec), baseline=False)
        self.state.baseline = baseline
        plan = self.state.plan or {}
        reason = ((self.state.recommendation or {}).get("reasons") or {}).get("multitask") or {}
        said = (
            "I train it together with the main task"
            if plan.get("multitask")
            else "I train the main task alone"
        )
        why = reason.get("text", "")
        switch = "`train apart`" if plan.get("multitask") else "`train them together`"
        if switch not in why:
            why += f". Say {switch} to change that"
        return [
            Reply(self._auxiliary_line(entry) + f".\n\n{said}: {why}."),
            self._plan_reply(),
        ]

    def _add_unlabelled(self, typed: str) -> list[Reply]:
        """Keep an unlabelled file in the data spec for adaptive pretraining (checked, counted,
        its checksum recorded); the plan changes only when the person asks for the stage."""
        from tuning_core import recipe

        if not self.state.spec:
            return [Reply("Load the labelled data first, then add unlabelled texts.", "error")]
        path = typed_path(typed.strip("'\"`"))
        if not path.is_file():
            return [Reply(f"No such file: `{path}`", "error")]
        spec = dict(self.state.spec)
        try:
            texts = recipe.unlabelled_texts({**spec, "unlabelled": str(path)})
        except (ValueError, OSError) as exc:
            return [Reply(f"Could not read `{path}`: {str(exc).splitlines()[0]}", "error")]
        if not texts:
            return [Reply(f"`{path}` holds no texts.", "error")]
        spec["unlabelled"] = str(path)
        spec["sha256"] = {**spec.get("sha256", {}), "unlabelled": recipe.file_sha256(path)}
        self.state.spec = spec
        adapt = float((self.state.plan or {}).get("adapt_epochs", 0) or 0)
        then = (
            f"they join the training texts in its {adapt:g} epochs of adaptive pretraining."
            if adapt
            else "say `2 epochs of adaptive pretraining` to train the model on them (masked "
            "language modelling) before fine-tuning."
        )
        return [Reply(f"Added {len(texts):,} unlabelled texts from `{path}`: {then}")]

    def _review(self, text: str) -> list[Reply]:
        if self.state.pending_fix:
            return self._confirm_fix(text)
        if self.state.pending_consent:
            return self._confirm_consent(text)
        if not text or YES.fullmatch(text.lower()):
            self._go("plan")
            return [self._plan_reply(intro="**My plan**, with the reason for each choice:")]
        unlabelled = UNLABELLED_RE.search(text)
        if unlabelled:
            return self._add_unlabelled(unlabelled.group(1))
        auxiliary = AUXILIARY_RE.search(text)
        if auxiliary:
            return self._add_auxiliary(*auxiliary.groups())
        path = self._find_path(text)
        if path:
            return self.load(path)
        retask = self._read_as_task(text)
        if retask is not None:
            return retask
        fix = parse_fix(text)
        if fix:
            return self._propose_fix(fix)
        if is_question(text):
            return self._explain(text)
        adjustment = parse_adjustment(text)
        if not adjustment.empty:
            replies = self._adjust(adjustment)  # a refused change leaves us here, as we were
            accepted = not any(r.kind == "error" for r in replies)
            if accepted and not adjustment.columns and not self.state.pending_consent:
                self._go("plan")  # changing the plan means the reading is accepted
            return replies
        return [
            Reply(
                "Press **Enter** if I read your data right, or tell me what to correct (`/help`)."
            )
        ]

    def _propose_fix(self, fix: str) -> list[Reply]:
        from tuning_core.quality import apply_fix

        if not self.state.spec:
            return [Reply("Load a data file first.")]
        splits = self._rows(self._spec())
        try:
            _, summary = apply_fix(splits, fix, **self._fix_options(fix))
        except ValueError as exc:  # e.g. merging would leave a single label
            return [Reply(f"I can't apply that fix: {exc}", "error")]
        if not any(summary["removed"].values()) and not any(summary["relabelled"].values()):
            return [Reply(f"Nothing to do: no rows to {FIX_PHRASES.get(fix, fix)}.")]
        self.state.pending_fix = fix
        return [
            Reply(
                f"**{FIX_TITLES.get(fix, fix)}:** this would {fix_summary_text(summary)}. I'd write "
                "it as a new "
                "version of the dataset inside the session; your file stays as it is. "
                "Apply it? (`yes` / `no`)"
            )
        ]

    def _confirm_fix(self, text: str) -> list[Reply]:
        fix, self.state.pending_fix = self.state.pending_fix, None
        if not YES.fullmatch(text.lower().strip()):
            return [Reply("Left the data as it is.")]
        return self._apply_fix(fix)

    def _apply_fix(self, fix: str) -> list[Reply]:

        from tuning_core import recipe
        from tuning_core.data import DataSpec
        from tuning_core.quality import apply_fix

        spec = self._spec()
        splits, summary = apply_fix(self._rows(spec), fix, **self._fix_options(fix))
        data_root = self.runs_dir.parent / "data"
        taken = [int(p.name[1:]) for p in data_root.glob("v*") if p.name[1:].isdigit()]
        version = max(taken, default=0) + 1  # numbered per session, never reused
        folder = data_root / f"v{version}"
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str | None] = {}
        readers: dict[str, dict] = {}
        for name, (texts, labels) in splits.items():
            path, readers[name] = write_split(folder, name, spec.task, texts, labels)
            files[name] = str(path)
        table = spec.task not in ("token_classification", "instruction_tuning")
        what = f"{FIX_TITLES.get(fix, fix).lower()} ({fix_summary_text(summary)})"
        new_spec = DataSpec(
            files=files,
            text_column="text" if table else spec.text_column,
            label_column="label" if table else spec.label_column,
            labels=sorted(set(splits["train"][1])) if spec.task == TASK else spec.labels,
            sha256={name: recipe.file_sha256(path) for name, path in files.items() if path},
            split_seed=spec.split_seed,
            columns=["text", "label"] if table else spec.columns,
            readers={} if table else readers,
            reasons={
                "text": f"fixed copy v{version}",
                "label": f"fixed copy v{version}",
                "task": spec.reasons.get("task", ""),
            },
            task=spec.task,
            label_format=spec.label_format,
        )
        (folder / "changes.json").write_text(
            json.dumps(
                {"version": version, "fix": fix, "summary": summary, "from": spec.to_dict()},
                indent=2,
                sort_keys=True,
                default=str,
            )
        )
        self.state.data_versions = [
            *self.state.data_versions,
            {"version": version, "fix": fix, "what": what, "dir": str(folder), "summary": summary},
        ]
        self._analyse(new_spec)
        if self.state.stage not in ("review", "plan"):
            self._go("review")
        replies = [
            Reply(f"Done: {what}. Saved as version v{version} in the session, and profiled again."),
            Reply(self.reading_text()),
        ]
        if self.state.stage == "review":
            replies.append(Reply(self._review_question()))
        return replies

    def _fix_options(self, fix: str) -> dict:
        """The options the finding that suggested `fix` measured (e.g. the rare-label threshold)."""
        for finding in (self.state.profile or {}).get("findings", []):
            if finding.get("fix") == fix:
                return dict(finding.get("fix_options") or {})
        return {}

    def _rows(self, spec) -> dict:
        """The rows of `spec`, read once per data version (profile, fix preview and fix share them)."""
        from tuning_core.data import load_split_rows

        key = json.dumps(spec.to_dict(), sort_keys=True)
        if self._rows_cache is None or self._rows_cache[0] != key:
            self._rows_cache = (key, load_split_rows(spec))
        return self._rows_cache[1]

    def _spec(self):
        from tuning_core.data import DataSpec

        return DataSpec.from_dict(self.state.spec)

    def _plan_reply(self, intro: str = "**The plan now:**") -> Reply:
        plan = self.state.plan or {}
        reasons = (self.state.recommendation or {}).get("reasons", {})
        lines = [intro, ""]
        for name, label, value in plan_rows(plan):
            if name in self.state.changed:
                lines.append(f"- **{label}: {value}** (you asked for it)")
            else:
                lines.append(f"- **{label}:** {value} — {reasons.get(name, {}).get('text', '')}")
        lines += [
            "",
            self._forecast_line(),
            "",
            "Press **Enter** (or `/run`) to train, or tell me what to change.",
        ]
        return Reply("\n".join(lines), "plan")

    def _forecast_line(self, timed: bool = False) -> str:
        forecast = self._forecast(timed)
        if forecast is None:
            return "No forecast yet: load a data file first."
        memory_gb = self._memory_gb()
        line = f"**Forecast:** {forecast['describe']}."
        if memory_gb and forecast["peak_memory_mb"] > 0.8 * memory_gb * 1024:
            line += (
                f" ⚠ That is over 80% of the {memory_gb:.0f} GiB here: try `use LoRA rank 8`, "
                "a smaller `batch size`, or a shorter `max length`."
            )
        return line

    def _memory_gb(self) -> float:
        """The memory a run can use here: the largest GPU's, or the RAM without a GPU."""
        resources = self.state.resources or {}
        gpus = resources.get("gpus") or []
        return max((g["memory_gb"] for g in gpus), default=0) or resources.get("ram_gb", 0)

    def _memory_limits(self) -> dict | None:
        """What a search may use: 90% of the GPU's memory (of the RAM without one), with the
        profile and the measured runtime overhead the forecast needs."""
        memory_gb = self._memory_gb()
        if not memory_gb or not self.state.profile:
            return None
        runtime = (self.state.calibration or {}).get("runtime_mb")
        return {
            "memory_mb": round(0.9 * memory_gb * 1024),
            "profile": self.state.profile,
            "calibration": {"runtime_mb": runtime} if runtime else {},
        }

    def _forecast(self, timed: bool = False) -> dict | None:
        """Peak memory and time for the current plan; with `timed`, corrected by timing a few
        real steps on this machine (a subprocess, a few seconds; cached per plan shape)."""
        from tuning_core.forecast import calibrate, forecast_run
        from tuning_core.profile import DataProfile

        if not (self.state.plan and self.state.profile and self.state.spec):
            return None
        plan = Plan.from_dict(self.state.plan)
        key = json.dumps(
            [plan.base_model, plan.batch_size, plan.max_length, plan.freezing, plan.freeze_layers,
             plan.lora_rank, self.state.spec.get("sha256")],
            sort_keys=True,
        )  # fmt: skip
        calibration = self.state.calibration or {}
        if timed and calibration.get("key") != key:
            self.progress("timing a few real training steps on this machine for the forecast…")
            calibration = {"key": key, **calibrate(plan, self.state.spec)}
            self.state.calibration = calibration
        if "error" in calibration or calibration.get("key") != key:
            calibration = {}
        forecast = forecast_run(
            plan,
            DataProfile.from_dict(self.state.profile),
            max(1, len(self.state.spec["labels"])),
            calibration,
            sum(int(a.get("train_rows", 0)) for a in self.state.spec.get("auxiliary") or []),
        )
        result = forecast.to_dict()
        result["describe"] = forecast.describe()
        self.state.forecast = result
        return result

    def _adjust(self, adjustment, consented: bool = False) -> list[Reply]:
        """Apply a plan change, or refuse it and leave everything as it was: the plan, the
        stage, the limits, the pending questions."""
        if adjustment.problems:
            return [
                Reply(
                    "I could not apply that: "
                    + "; ".join(adjustment.problems)
                    + ". The plan is unchanged.",
                    "error",
                )
            ]
        saved = copy.deepcopy(self.state.to_dict())
        try:
            replies = self._apply_adjustment(adjustment, consented)
        except TuningError as exc:
            self.state = PlannerState.from_dict(saved)
            if isinstance(exc, PlanError):  # a value out of range: say so, keep the plan
                problems = exc.message.split("\n- ")[1:] or [exc.message]
                return [
                    Reply(
                        "I kept the plan as it was: " + "; ".join(problems) + ".",
                        "error",
                    )
                ]
            raise
        if any(r.kind == "error" for r in replies):
            self.state = PlannerState.from_dict(saved)
        return replies

    def _apply_adjustment(self, adjustment, consented: bool = False) -> list[Reply]:
        if adjustment.columns:
            if not self.state.spec:
                return [Reply("Load a data file first.")]
            return self.load(
                self.state.source or self.state.spec["files"]["train"], adjustment.columns
            )
        if not self.state.plan:
            return [Reply("There is no plan yet: give me a data file first.")]
        changes = dict(adjustment.changes)
        for name in CONSENT_FIELDS:  # consents come from a yes to a named model, never typed
            changes.pop(name, None)
        if "base_model" in changes:
            changes["base_model"] = typed_model(changes["base_model"])
            consent = self._model_consent(changes["base_model"], adjustment, consented)
            if consent is None:  # asked: nothing changes until the person answers
                return [Reply(models.consent_question(self.state.pending_consent["files"]))]
            changes.update(consent)
        if changes.get("multitask") and not (self.state.spec or {}).get("auxiliary"):
            return [
                Reply(
                    "There is no other label set to train together with this one. Say `also "
                    "learn COLUMN` for another label column of this file, or `also learn NAME "
                    "from FILE` for a labelled file of its own.",
                    "error",
                )
            ]
        if changes.get("quantization") == "4bit" and not (self.state.resources or {}).get("gpus"):
            return [
                Reply(
                    "4-bit loading (QLoRA) needs a CUDA GPU and the bitsandbytes package; this "
                    "machine has no CUDA GPU, so the base model stays in full precision.",
                    "error",
                )
            ]
        if adjustment.constraints:
            self.state.constraints = {**self.state.constraints, **adjustment.constraints}
            self._analyse(self._spec())
            said = ", ".join(describe_constraint(k, v) for k, v in adjustment.constraints.items())
            noted = Reply(f"Noted: {said}. I planned again within that.")
            if not changes:
                return [noted, self._plan_reply()]
        if adjustment.freeze_top is not None:
            layers = self._model_layers(changes.get("base_model") or self.state.plan["base_model"])
            if layers is None:
                return [
                    Reply(
                        "I don't know how many layers this model has; say `freeze the bottom N layers`."
                    )
                ]
            keep = adjustment.freeze_top
            if not 0 < keep < layers:
                return [
                    Reply(
                        f"The model has {layers} layers; keep between 1 and {layers - 1} trainable.",
                        "error",
                    )
                ]
            changes.update(freezing="bottom_k", freeze_layers=layers - keep)
        if changes.get("freezing") == "lora" and "lora_rank" in changes:
            changes.setdefault("lora_alpha", max(1, 2 * changes["lora_rank"]))
        if "freezing" in changes and "pooling" not in changes:
            from tuning_core.recommend import model_facts, pooling_for

            card = model_facts(changes.get("base_model") or self.state.plan["base_model"])
            pooling = pooling_for(card, changes["freezing"])
            if pooling != self.state.plan.get("pooling", "default"):
                changes["pooling"] = pooling
        if changes.get("freezing") == "lora":
            card = knowledge.get_model(changes.get("base_model") or self.state.plan["base_model"])
            if card:
                extras = dict(self.state.plan.get("extras") or {})
                extras["lora_targets"] = list(card.lora_targets)
                changes["extras"] = extras
        if "multitask" in changes and self.state.plan.get("search_space"):
            # a search varies the other tasks' loss weight only while they train together
            from tuning_core.recommend import AUXILIARY_WEIGHT_RANGE

            space = dict(changes.get("search_space") or self.state.plan["search_space"])
            space.pop("auxiliary_weight", None)
            if changes["multitask"]:
                space["auxiliary_weight"] = dict(AUXILIARY_WEIGHT_RANGE)
            changes["search_space"] = space
            derived = {"search_space"}  # follows the change; not the person's own edit
        else:
            derived = set()
        plan = Plan.from_dict(self.state.plan).replace(**changes)  # PlanError says what is wrong
        self.state.plan = plan.to_dict()
        self.state.changed = sorted(
            set(self.state.changed)
            | set(changes) - {"extras", "base_model", *CONSENT_FIELDS} - derived
        )
        if "base_model" in changes and self.state.spec:
            # a new model means a new tokenizer: profile and recommend again, then show the plan
            self.state.constraints = {**self.state.constraints, "base_model": changes["base_model"]}
            self._analyse(self._spec())
            self._go("plan")
            agreed = [
                what
                for key, what in (
                    ("trust_remote_code", "its own code"),
                    ("allow_pickle_weights", "its pickle weights"),
                )
                if changes.get(key)
            ]
            note = f" (you allowed {' and '.join(agreed)} for this model only)" if agreed else ""
            return [
                Reply(
                    f"Base model → `{changes['base_model']}`{note}; token lengths measured again."
                ),
                self._plan_reply(),
            ]
        said = ", ".join(
            f"{k.replace('_', ' ')} → {fmt_number(v)}"
            for k, v in changes.items()
            if k not in ("extras", "search_space", *CONSENT_FIELDS)
        )
        return [Reply(f"Done: {said}."), self._plan_reply()]

    def _model_consent(self, name: str, adjustment, consented: bool) -> dict | None:
        """The consent fields for switching to model `name`: none needed (any earlier consent
        is dropped: it was for another model), the yes just given, one already given for this
        very model; or None after asking (the question is pending). ModelError when the model
        cannot be loaded at all (missing folder or weights, unknown name offline)."""
        files = models.check_model_files(name)
        needs = models.consents_needed(files)
        if not any(needs.values()):
            return {
                "trust_remote_code": False,
                "allow_pickle_weights": False,
                "consent_model": None,
            }
        plan = self.state.plan or {}
        if not consented and plan.get("consent_model") == name:
            consented = all(plan.get(k) for k, on in needs.items() if on)
        if consented:
            return {**needs, "consent_model": name}
        self.state.pending_consent = {
            "model": name,
            "files": files,
            "changes": {k: v for k, v in adjustment.changes.items() if k != "base_model"},
            "constraints": dict(adjustment.constraints),
            "freeze_top": adjustment.freeze_top,
        }
        return None

    def _confirm_consent(self, text: str) -> list[Reply]:
        pending, self.state.pending_consent = self.state.pending_consent, None
        if not YES.fullmatch(text.lower().strip()):
            current = (self.state.plan or {}).get("base_model", "")
            return [
                Reply(f"Nothing allowed: I kept the model `{current}` and left the plan as it was.")
            ]
        from assistant.adjust import Adjustment

        adjustment = Adjustment(
            changes={**pending["changes"], "base_model": pending["model"]},
            constraints=pending["constraints"],
            freeze_top=pending["freeze_top"],
        )
        replies = self._adjust(adjustment, consented=True)
        if self.state.stage == "review" and not any(r.kind == "error" for r in replies):
            self._go("plan")
        return replies

    @staticmethod
    def _model_layers(name: str) -> int | None:
        from tuning_core.recommend import model_facts

        card = model_facts(name)
        return card.layers if card and card.layers else None

    def _explain(self, text: str) -> list[Reply]:
        topic = question_topic(text)
        reasons = (self.state.recommendation or {}).get("reasons", {})
        notes = knowledge.load_notes()
        if topic is None:  # not about a plan field: the notes that fit the words best
            found = relevant_notes(text)
            if not found:
                return [
                    Reply(
                        "I have no note on that. Ask me about a choice in the plan, e.g. "
                        "`why LoRA?` or `why 3 epochs?`, or a technique, e.g. "
                        "`what is label smoothing?`."
                    )
                ]
            return [Reply("\n".join(quote_note(notes[i]) for i in found).lstrip())]
        lines = []
        if self.state.plan:
            current = dict((n, v) for n, _, v in plan_rows(self.state.plan)).get(topic)
            reason = reasons.get(topic)
            if current is not None:
                lines.append(f"**{topic.replace('_', ' ').capitalize()}: {current}.**")
            if topic in self.state.changed:
                lines.append("You set this yourself.")
            elif reason:
                lines.append(f"Why: {reason['text']}.")
        note_ids = [reasons[topic]["note"]] if topic in reasons else []
        if "lora" in text.lower():
            note_ids = ["lora-large-model", "lora-rank"]
        elif "head" in text.lower() and topic == "freezing":
            note_ids = ["head-only-small-data"]
        elif "freez" in text.lower() and topic == "freezing":
            note_ids = note_ids + ["freeze-bottom-layers"]
        if not note_ids:  # a plan field without a rule of its own: the notes that fit best
            note_ids = relevant_notes(text)
        for note_id in dict.fromkeys(note_ids):
            note = notes.get(note_id)
            if note:
                lines.append(quote_note(note))
        if not lines:
            return [Reply("I have no note on that yet.")]
        return [Reply("\n".join(lines).lstrip("\n"))]

    # ------------------------------------------------------------ run, results, export

    def _start_run(self) -> list[Reply]:
        if not self.state.plan or not self.state.spec:
            return [Reply("Nothing to train yet: tell me the task and the data file first.")]
        if self.state.stage == "run":
            return [Reply("Training is already running.")]
        # the model still there, with its weights, and loadable with what was agreed to
        models.check_model(Plan.from_dict(self.state.plan, "the session").to_dict())
        run_dir = Path(self.state.run_dir) if self.state.run_dir else None
        resumable = (
            run_dir is not None
            and resumable_status(runs.read_status(run_dir))
            and runs.read_report(run_dir) is None
            and (run_dir / "plan.json").exists()
            and (ran := _run_plan(run_dir)) is not None
            and same_run_plan(ran, self.state.plan)
        )
        if resumable:
            runs.start_worker(run_dir)
            self._go("run")
            return [Reply(f"Resuming run `{self.state.run_id}` from its last checkpoint.")]
        self.state.run_count += 1
        run_id = f"run-{self.state.run_count}"
        run_dir = self.runs_dir / run_id
        forecast_line = self._forecast_line(timed=True)  # time a few real steps first
        runs.prepare_run(run_dir, self.state.plan, self.state.spec)
        if self.state.forecast:
            runs.write_json_atomic(run_dir / "forecast.json", self.state.forecast)
        limits = self._memory_limits()
        if limits:  # the search leaves out trials whose forecast does not fit
            runs.write_json_atomic(run_dir / "limits.json", limits)
        runs.start_worker(run_dir)
        self.state.run_id, self.state.run_dir = run_id, str(run_dir)
        self.state.report = None
        self._go("run")
        return [
            Reply(
                f"{forecast_line}\n\nTraining started (`{run_id}`). It runs in its own "
                "process: you can close this window and come back with `tunesmith "
                f"--session {self.runs_dir.parent.name}` or the app's session picker (ctrl+o)."
            )
        ]

    def _results_text(self) -> str:
        from tuning_core.judge import judge, judgement_text

        report = self.state.report or {}
        val, metric = report["validation"], report["metric"]
        # runs from before the verdict existed are judged now, without test-set baselines
        verdict = report.get("judge") or judge(report)
        lines = [
            f"**Results** (best epoch kept; {report.get('epochs_run')} epochs run on "
            f"{report.get('train_rows')} training rows)",
            "",
        ]
        baseline = self.state.baseline
        if baseline and baseline.get("metric") == metric and not verdict.get("deltas"):
            tfidf = baseline["tfidf_lr"]
            if tfidf.get("validation") is not None:
                gain = val[metric] - tfidf["validation"]
                lines.append(
                    f"- Against the baseline on validation: TF-IDF + logistic regression "
                    f"{tfidf['validation']:.4f}, so the fine-tuned model is **{gain:+.4f}**"
                    + (" better" if gain > 0 else " — it does not beat the baseline")
                )
        checked = report.get("forecast_check")
        if checked and checked.get("measured_peak_mb"):
            line = (
                f"- Forecast vs measured: peak memory {checked['forecast_peak_mb']:,.0f} vs "
                f"{checked['measured_peak_mb']:,.0f} MB ({checked['memory_error']:+.0%})"
            )
            if checked.get("measured_seconds_per_epoch"):
                line += (
                    f"; first epoch {checked['forecast_seconds_per_epoch']:,.0f} vs "
                    f"{checked['measured_seconds_per_epoch']:,.0f} s ({checked['time_error']:+.0%})"
                )
            lines.append(line)
        if len(lines) > 2:
            lines.append("")
        errors = len(verdict.get("confident_errors") or [])
        lines += [judgement_text(verdict, errors=5)]
        if errors > 5:
            lines += ["", f"The results view (ctrl+r in the app) lists all {errors}."]
        lines += [
            "",
            "`/export DIR` writes a standalone `train.py` that reproduces these numbers "
            "(Enter exports into this session's folder).",
        ]
        return "\n".join(lines)

    def _export(self, arg: str) -> list[Reply]:
        from tuning_core.export import export_bundle

        if not self.state.run_dir or runs.read_report(Path(self.state.run_dir)) is None:
            return [Reply("There is no finished run to export yet.")]
        target = (
            typed_path(arg)
            if arg
            else self.runs_dir.parent / "export" / (self.state.run_id or "run")
        )
        out = export_bundle(Path(self.state.run_dir), target, overwrite=not arg)
        self.state.export_dir = str(out)
        self._go("export")
        return [
            Reply(
                f"Exported to `{out}`: `train.py`, `plan.json`, `requirements.txt`, `README.md`. "
                f"Run `python {out}/train.py` to reproduce the metrics."
            )
        ]

    # ------------------------------------------------------------ status

    def status_text(self) -> str:
        s = self.state
        lines = [f"**Stage:** {s.stage}"]
        if s.spec:
            lines.append(
                f"**Data:** `{s.spec['files']['train']}` ({s.spec['text_column']} → {s.spec['label_column']})"
            )
        if s.plan:
            p = s.plan
            lines.append(
                f"**Plan:** {p['base_model']}, {describe_freezing(p)}, lr {fmt_number(p['learning_rate'])}, "
                f"batch {p['batch_size']}, {fmt_number(p['epochs'])} epochs, seed {p['seed']}"
            )
        if s.run_dir:
            status = runs.read_status(Path(s.run_dir))
            line = f"**Run:** `{s.run_id}` {status.get('state')}"
            running = status.get("state") in ("running", "starting")
            # the newest events only: a long run's file holds hundreds of thousands
            events = runs.read_last_events(Path(s.run_dir)) if running else []
            logs = [e for e in events if e.get("type") == "log"]
            if logs and running:
                last = logs[-1]
                line += f", step {last['step']}/{last['max_steps']}, loss {last['loss']:.4f}, ETA {last['eta_s']:.0f} s"
            if status.get("headline"):
                line += f", {status['headline']}"
            lines.append(line)
        if s.export_dir:
            lines.append(f"**Exported:** `{s.export_dir}`")
        return "\n\n".join(lines)

    def summary(self) -> dict[str, str]:
        """What the session list shows about this conversation."""
        s = self.state
        return {
            "stage": s.stage,
            "task": s.task or "",
            "data_file": (s.spec or {}).get("files", {}).get("train") or "",
            "base_model": (s.plan or {}).get("base_model") or "",
        }
