"""The planner's actions as tools, for a language model (`assistant.llm`) or an agent (MCP).

A tool never acts on its own: it writes the line a person would type for the same action
(`learning rate 2e-5`, `/run`, `/export DIR`) and hands it to `Conversation.say`, so the turn
is saved like a typed one (as a user turn of kind "tool") and every argument goes through the
very validation a typed line does; a bad value gets the same message. No tool runs a shell
command or reads or writes anything the typed line could not: data paths and export folders
are the ones a person could type.

Each tool is a name, a one-line description and a JSON schema for its arguments
(`TOOLS`); `openai_tools()` gives them in the function-calling format chat models bind, and
`call_tool()` runs one. Arguments that do not fit the schema are refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.adjust import FIX_PHRASES
from assistant.planner import Reply, demo_data_path

# plan fields a tool may change, and the words a person would type for each
PLAN_PHRASES = {
    "epochs": "epochs {v}",
    "learning_rate": "learning rate {v}",
    "batch_size": "batch size {v}",
    "dropout": "dropout {v}",
    "weight_decay": "weight decay {v}",
    "label_smoothing": "label smoothing {v}",
    "warmup": "warmup {v}",
    "seed": "seed {v}",
    "max_length": "max length {v}",
    "grad_accum": "accumulation steps {v}",
    "early_stopping_patience": "patience {v}",
    "lora_rank": "use LoRA rank {v}",
    "lora_alpha": "lora alpha {v}",
    "trials": "trials {v}",
    "base_model": "use model {v}",
    "freeze_bottom_layers": "freeze the bottom {v} layers",
    "trainable_top_layers": "freeze all but the last {v} layers",
    "text_column": "the text column is '{v}'",
    "label_column": "the label is in column '{v}'",
}
FREEZING_PHRASES = {"none": "full fine-tuning", "head_only": "head only", "lora": "use LoRA"}
NO_PLAN = "There is no plan yet."  # the planner's own words (`/plan` before a plan)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    # the typed lines for these arguments; or a Reply when the action cannot apply now
    typed: Callable[[Any, dict[str, Any]], list[str] | Reply]


@dataclass
class ToolResult:
    name: str
    lines: list[str]  # what was "typed" on the person's behalf
    replies: list[Reply] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(r.text for r in self.replies)

    @property
    def error(self) -> bool:
        return any(r.kind == "error" for r in self.replies)


def _schema(properties: dict[str, Any] | None = None, required: tuple = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties or {},
        "required": list(required),
        "additionalProperties": False,
    }


def _needs_plan(lines: Callable[[dict[str, Any]], list[str]]):
    """Typed lines that mean a plan change only once there is a plan (before it, the same
    words would be taken as the task or a file name)."""

    def typed(conversation, args: dict[str, Any]) -> list[str] | Reply:
        if not conversation.state.plan:
            return Reply(NO_PLAN)
        return lines(args)

    return typed


def _set_task(conversation, args: dict[str, Any]) -> list[str] | Reply:
    if conversation.state.stage != "task":
        return Reply(
            "The task is set already (single-label text classification); `/back` goes back."
        )
    return [args["description"]]


def _load_data(conversation, args: dict[str, Any]) -> list[str] | Reply:
    path = args["path"]
    stage = conversation.state.stage
    if stage == "task":  # the task said with the file, as in `classify these: data.csv`
        lines = [f"{args.get('task') or 'text classification'}: {path}"]
    elif stage == "run":
        return Reply("Training is running. `/status` shows progress; `/stop` stops it.")
    else:
        lines = [path]
    for role in ("text", "label"):
        if args.get(f"{role}_column"):
            lines.append(PLAN_PHRASES[f"{role}_column"].format(v=args[f"{role}_column"]))
    return lines


def _change_plan(args: dict[str, Any]) -> list[str]:
    name, value = args["field"], str(args["value"]).strip()
    if name == "freezing":
        return [FREEZING_PHRASES.get(value, value)]
    if name == "early_stopping" and value.lower() in ("off", "no", "false", "none"):
        return ["no early stopping"]
    return [PLAN_PHRASES[name].format(v=value)]


def _answer(conversation, args: dict[str, Any]) -> list[str] | Reply:
    state = conversation.state
    if not (state.pending_fix or state.pending_consent or state.stage in ("review", "plan")):
        return Reply("There is no question waiting for an answer.")
    if (
        args["answer"] == "no"
        and state.stage == "review"
        and not (state.pending_fix or state.pending_consent)
    ):
        return Reply("Say what to correct: another file, or a column (`load_data`).")
    if (
        args["answer"] == "yes"
        and state.stage == "plan"
        and not (state.pending_fix or state.pending_consent)
    ):
        return Reply("Nothing is waiting for a yes; `start_run` trains the plan.")
    return [args["answer"]]


TOOLS: list[Tool] = [
    Tool(
        "set_task",
        "Set the task from the person's words (only single-label text classification is supported).",
        _schema(
            {"description": {"type": "string", "description": "the task in the person's words"}},
            ("description",),
        ),
        _set_task,
    ),
    Tool(
        "load_data",
        "Read a labelled data file (CSV, TSV, JSONL, JSON, Parquet), profile it and measure a baseline.",
        _schema(
            {
                "path": {"type": "string", "description": "the file as the person named it"},
                "text_column": {"type": "string", "description": "the text column, if not guessed"},
                "label_column": {
                    "type": "string",
                    "description": "the label column, if not guessed",
                },
                "task": {"type": "string", "description": "the task in the person's words"},
            },
            ("path",),
        ),
        _load_data,
    ),
    Tool(
        "use_demo_data",
        "Use the built-in demo data (360 posts labelled positive, negative or neutral).",
        _schema(),
        lambda c, a: (
            ["", ""]
            if c.state.stage == "task"
            else [""]
            if c.state.stage == "data"
            else [str(demo_data_path())]
        ),
    ),
    Tool(
        "show_data",
        "How the data was read (columns, labels, splits), or every data finding ('findings').",
        _schema({"view": {"type": "string", "enum": ["reading", "findings"]}}, ("view",)),
        lambda c, a: ["/data" if a["view"] == "reading" else "/findings"],
    ),
    Tool(
        "answer",
        "Answer the question the assistant asked (apply a fix? allow a model? data read right?).",
        _schema({"answer": {"type": "string", "enum": ["yes", "no"]}}, ("answer",)),
        _answer,
    ),
    Tool(
        "apply_fix",
        "Propose a data fix (kept as a new version in the session); the person confirms with answer.",
        _schema({"fix": {"type": "string", "enum": sorted(FIX_PHRASES)}}, ("fix",)),
        _needs_plan(lambda a: [FIX_PHRASES[a["fix"]]]),
    ),
    Tool(
        "change_plan",
        "Change one field of the training plan; the value is checked as if typed.",
        _schema(
            {
                "field": {
                    "type": "string",
                    "enum": sorted([*PLAN_PHRASES, "freezing", "early_stopping"]),
                },
                "value": {
                    "type": "string",
                    "description": "the new value, e.g. 3, 2e-5, a model id or folder; "
                    "freezing: none | head_only | lora; early_stopping: off",
                },
            },
            ("field", "value"),
        ),
        _needs_plan(_change_plan),
    ),
    Tool(
        "show_plan",
        "Show the current plan with the reason for each choice.",
        _schema(),
        lambda c, a: ["/plan"],
    ),
    Tool(
        "forecast",
        "Time a few real training steps and forecast memory and training time for the plan.",
        _schema(),
        lambda c, a: ["/forecast"],
    ),
    Tool(
        "explain",
        "Explain a choice or a term from the notes, e.g. topic 'LoRA', 'this learning rate', 'macro-F1'.",
        _schema({"topic": {"type": "string"}}, ("topic",)),
        _needs_plan(lambda a: [f"why {a['topic'].strip().rstrip('?')}?"]),
    ),
    Tool("start_run", "Start (or resume) training the plan.", _schema(), lambda c, a: ["/run"]),
    Tool(
        "stop_run",
        "Stop training (it saves a checkpoint and can resume).",
        _schema(),
        lambda c, a: ["/stop"],
    ),
    Tool(
        "status",
        "Where the session stands: stage, data, plan, run progress and its results.",
        _schema(),
        lambda c, a: ["/status"],
    ),
    Tool("go_back", "Go one step back.", _schema(), lambda c, a: ["/back"]),
    Tool(
        "export",
        "Write the reproducible bundle (train.py, plan.json) of the finished run.",
        _schema(
            {
                "folder": {
                    "type": "string",
                    "description": "a new or empty folder; omit for the session's own",
                }
            }
        ),
        lambda c, a: [f"/export {a['folder']}".strip() if a.get("folder") else "/export"],
    ),
]
TOOLS_BY_NAME = {t.name: t for t in TOOLS}


def openai_tools() -> list[dict[str, Any]]:
    """The tools in the function-calling format `bind_tools` takes."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in TOOLS
    ]


def check_args(tool: Tool, args: Any) -> str | None:
    """Why `args` does not fit the tool's schema, or None."""
    if not isinstance(args, dict):
        return "arguments must be an object"
    schema = tool.parameters
    props = schema["properties"]
    for name in schema["required"]:
        if name not in args or args[name] in (None, ""):
            return f"`{name}` is required"
    for name, value in args.items():
        if name not in props:
            return f"unknown argument `{name}` (it takes {', '.join(props) or 'none'})"
        if value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return f"`{name}` must be a string"
        allowed = props[name].get("enum")
        if allowed and str(value) not in allowed:
            return f"`{name}` must be one of {', '.join(allowed)}"
        if "\n" in str(value):
            return f"`{name}` must be one line"
    return None


def call_tool(
    conversation,
    name: str,
    args: Any,
    on_reply: Callable[[Reply], None] | None = None,
) -> ToolResult:
    """Run tool `name`: its typed lines go through `conversation.say` one by one (stopping at
    the first refused one). Nothing is saved for an unknown tool or ill-formed arguments."""
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        known = ", ".join(TOOLS_BY_NAME)
        return ToolResult(name, [], [Reply(f"No tool `{name}`; the tools are {known}.", "error")])
    problem = check_args(tool, args or {})
    if problem:
        return ToolResult(name, [], [Reply(f"`{name}`: {problem}.", "error")])
    args = {k: v for k, v in (args or {}).items() if v is not None}
    typed = tool.typed(conversation, args)
    if isinstance(typed, Reply):
        return ToolResult(name, [], [typed])
    result = ToolResult(name, [])
    for line in typed:
        result.lines.append(line)
        replies = conversation.say(line, on_reply=_collect(result, on_reply), user_kind="tool")
        for reply in replies:
            result.replies.append(reply)
            if on_reply:
                on_reply(reply)
        if result.error:
            break
    return result


def _collect(result: ToolResult, on_reply: Callable[[Reply], None] | None):
    def early(reply: Reply) -> None:
        result.replies.append(reply)
        if on_reply:
            on_reply(reply)

    return early
