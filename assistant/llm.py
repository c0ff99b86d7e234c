"""An optional language-model front end: the person talks freely, the model acts only through
the planner's tools (`assistant.tools`) and explains their results.

    tunesmith --llm openai:gpt-4o-mini          (or TUNESMITH_LLM=openai:gpt-4o-mini)

What keeps it honest:

- **Tools, not free text.** Every action is a tool call that types, on the person's behalf,
  the line a person would type; the planner validates it as it validates typed lines.
- **Numbers from tools only.** Tool results are shown to the person verbatim, and the model's
  own text comes after them as a short explanation in which every number must appear in this
  turn's tool results (or the person's own words); any other number is replaced by `…`
  (`ground`), also while it streams.
- **Privacy.** The model sees the session's aggregate state (`context`): stage, task, plan,
  profile figures, baseline, run state; never data rows unless the person said `/llm-rows yes`
  (kept in the session's planner state). Sample rows in tool results are withheld likewise.
  `/llm-context` shows exactly what would be sent.
- **Failure is ordinary.** Any exception from the model before a tool ran: the rule-based
  planner answers the turn, after a one-line notice. After a tool ran: what the tools did is
  kept (each tool call is a whole, saved turn) and a notice says the model stopped.

Commands (`/...`), an empty line (Enter: the default) and a yes/no to a pending question go
straight to the planner: they need no model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable
from typing import Any

from assistant.planner import YES, Reply
from assistant.tools import ToolResult, call_tool, openai_tools
from tuning_core.errors import TuningError

LLM_ENV = "TUNESMITH_LLM"
MAX_ROUNDS = 6  # model calls per person turn (each may call several tools)
MAX_EXPLANATION = 800  # characters of the model's own text shown after the tool results
HISTORY_TURNS = 6  # the person's last words sent as context (their own words only)

# provider -> (tunesmith extra, the environment variable holding its key; None: no key)
PROVIDERS = {
    "openai": ("openai", "OPENAI_API_KEY"),
    "anthropic": ("anthropic", "ANTHROPIC_API_KEY"),
    "ollama": ("ollama", None),
}
OTHER_KEYS = {
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "xai": "XAI_API_KEY",
}

SYSTEM_PROMPT = """You are the conversational front end of tunesmith, which fine-tunes text \
classifiers. You act ONLY by calling the tools; each tool does what a person would type and \
its result is shown to the person word for word. Rules:
- To change anything (task, data, fixes, plan, runs, export), call a tool. Never claim a change \
you did not make through a tool.
- Never state a number yourself: numbers may only be quoted from this turn's tool results \
(any other number is hidden). To report the plan or progress, call show_plan or status.
- When a tool result asks the person a question (apply a fix? allow a model?), stop and let \
them answer; call `answer` only with what the person said.
- After the tools, reply in one to three short sentences; do not repeat the tool results.
The session state below holds aggregate figures only."""

ROW_LINE = re.compile(
    r"^\s*- \S* ?row \d+: `.*$"  # a finding's sample row (planner.findings_text)
    r"|^\| [\d.]+ \| .* \| .* \| .* \|$"  # a confident error (judge.judgement_text)
)
WITHHELD = "(data rows withheld: the person has not agreed to send rows to the model)"
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?(?!\w)", re.I)


class LLMSetupError(TuningError):
    title = "Language model"


# ------------------------------------------------------------ building the model


def llm_spec(cli_value: str | None = None) -> str | None:
    """`--llm`, else $TUNESMITH_LLM, else None (the rule-based planner alone)."""
    return (cli_value or os.environ.get(LLM_ENV) or "").strip() or None


def build_model(spec: str):
    """The chat model named `PROVIDER:MODEL`; LLMSetupError (one line, with the command that
    fixes it) when langchain, the provider package or its API key is missing."""
    provider, sep, model = spec.partition(":")
    provider = provider.strip().lower()
    if not sep or not provider or not model.strip():
        raise LLMSetupError(
            f"--llm {spec!r}: say PROVIDER:MODEL, e.g. openai:gpt-4o-mini, "
            "anthropic:claude-sonnet-4-5 or ollama:llama3.1"
        )
    extra, key = PROVIDERS.get(provider, (None, OTHER_KEYS.get(provider)))
    install = (
        f"pip install 'tunesmith[{extra}]'"
        if extra
        else f"pip install 'tunesmith[llm]' langchain-{provider.replace('_', '-')}"
    )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise LLMSetupError(f"--llm needs langchain, which is not installed: {install}") from None
    if extra and importlib.util.find_spec(f"langchain_{provider}") is None:
        raise LLMSetupError(f"--llm {provider}: its langchain package is not installed: {install}")
    if key and not os.environ.get(key):
        raise LLMSetupError(f"--llm {provider}: no API key; set it with `export {key}=...`")
    try:
        return init_chat_model(model.strip(), model_provider=provider)
    except ImportError:
        raise LLMSetupError(
            f"--llm {provider}: its langchain package is not installed: {install}"
        ) from None
    except Exception as exc:  # unknown provider, bad options: one line, never a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LLMSetupError(f"--llm {spec}: {first}") from None


# ------------------------------------------------------------ what the model sees


def context(conversation) -> dict[str, Any]:
    """The session state sent with every turn: aggregate figures only (data rows only after
    the person's `/llm-rows yes`)."""
    s = conversation.state
    out: dict[str, Any] = {"stage": s.stage, "task": s.task, "task_words": s.task_words or None}
    if s.spec:
        out["data"] = {
            "file": os.path.basename(str(s.source or s.spec["files"].get("train") or "")),
            "text_column": s.spec.get("text_column"),
            "label_column": s.spec.get("label_column"),
            "labels": s.spec.get("labels"),
            "fixed_versions": [v["what"] for v in s.data_versions],
        }
    if s.profile:
        p = s.profile
        findings = []
        for f in p.get("findings") or []:
            finding = {k: f.get(k) for k in ("title", "severity", "fix")}
            if s.llm_rows:
                finding["samples"] = (f.get("samples") or [])[:3]
            findings.append(finding)
        out["profile"] = {
            "rows": p.get("rows"),
            "label_counts": p.get("label_counts"),
            "token_lengths": p.get("token_lengths"),
            "findings": findings,
        }
    if s.baseline:
        b = s.baseline
        out["baseline"] = {
            "metric": b.get("metric"),
            "tfidf_lr_cv_mean": (b.get("tfidf_lr") or {}).get("cv_mean"),
            "majority_cv_mean": (b.get("majority") or {}).get("cv_mean"),
        }
    if s.plan:
        out["plan"] = {k: v for k, v in s.plan.items() if k != "extras"}
        out["changed_by_person"] = s.changed
    if s.run_id:
        out["run"] = {"id": s.run_id, "state": conversation.run_status().get("state")}
    if s.report:
        out["results"] = {
            "metric": s.report.get("metric"),
            "validation": s.report.get("validation"),
        }
    if s.pending_fix or s.pending_consent:
        out["waiting_for_answer"] = "apply fix" if s.pending_fix else "allow model"
    out["data_rows_allowed"] = bool(s.llm_rows)
    return out


def person_words(conversation) -> list[str]:
    """The person's own recent words (not lines tools typed, not replies)."""
    turns = conversation.history(limit=HISTORY_TURNS * 4)
    said = [t["text"] for t in turns if t["role"] == "user" and (t.get("kind") or "text") == "text"]
    return said[-HISTORY_TURNS:]


def messages_for(conversation, text: str | None) -> list:
    from langchain_core.messages import HumanMessage, SystemMessage

    state = json.dumps(context(conversation), indent=1, sort_keys=True, default=str)
    earlier = person_words(conversation)
    if text is not None and earlier and earlier[-1] == text:
        earlier = earlier[:-1]  # the turn being answered is saved already
    system = f"{SYSTEM_PROMPT}\n\nSession state:\n{state}"
    if earlier:
        system += "\n\nThe person said earlier:\n" + "\n".join(f"- {w}" for w in earlier)
    messages = [SystemMessage(system)]
    if text is not None:
        messages.append(HumanMessage(text))
    return messages


def redact(text: str, rows_allowed: bool) -> str:
    """A tool result as the model sees it: sample rows withheld without the person's yes."""
    if rows_allowed:
        return text
    out, withheld = [], False
    for line in text.splitlines():
        if ROW_LINE.match(line):
            if not withheld:
                out.append(WITHHELD)
            withheld = True
            continue
        out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------ numbers only from tools


def _value(token: str) -> float | None:
    token = token.replace(",", "").rstrip("%")
    try:
        return float(token)
    except ValueError:
        return None


def grounded_numbers(texts: list[str]) -> tuple[set[str], set[float]]:
    tokens = {m.group(0) for text in texts for m in NUMBER.finditer(text)}
    return tokens, {v for v in map(_value, tokens) if v is not None}


def ground(text: str, sources: tuple[set[str], set[float]], final: bool = True) -> str:
    """`text` with every number not found in `sources` replaced by `…`. Not `final` (a
    stream): a number at the very end may still grow, so it is held back."""
    tokens, values = sources
    out, last = [], 0
    for match in NUMBER.finditer(text):
        if not final and match.end() == len(text):
            return "".join(out) + text[last : match.start()]
        token = match.group(0)
        ok = token in tokens or _value(token) in values
        out.append(text[last : match.start()] + (token if ok else "…"))
        last = match.end()
    return "".join(out) + text[last:]


# ------------------------------------------------------------ the front end


class LLMFrontEnd:
    """Answers person turns with a chat model that calls the planner's tools."""

    def __init__(self, model, name: str = "", max_rounds: int = MAX_ROUNDS) -> None:
        self.name = name or getattr(model, "model_name", None) or type(model).__name__
        self.max_rounds = max_rounds
        try:
            self.model = model.bind_tools(openai_tools())
        except NotImplementedError:
            raise LLMSetupError(f"--llm {self.name}: this model cannot call tools") from None

    def say(
        self,
        conversation,
        text: str,
        on_reply: Callable[[Reply], None] | None = None,
        on_user: Callable[[], None] | None = None,
        on_token: Callable[[str], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> list[Reply]:
        """One person turn, like `Conversation.say`: the turn is saved first; tool replies go
        to `on_reply` as they come (else they are returned). The model's explanation streams
        to `on_token` (the text so far) or `on_line` (each finished line); a streamed-by-line
        explanation is saved but not returned again."""
        stripped = text.strip()
        command = stripped.split(maxsplit=1)[0].lower() if stripped else ""
        if command in ("/llm-context", "/llm-rows"):
            conversation.note("user", text)
            if on_user:
                on_user()
            reply = self._llm_command(conversation, command, stripped[len(command) :].strip())
            conversation.note("assistant", reply.text, reply.kind)
            return [reply]
        state = conversation.state
        pending = state.pending_fix or state.pending_consent
        answer = YES.fullmatch(stripped.lower()) or stripped.lower() in ("no", "n", "nope")
        if (
            conversation.read_only
            or not stripped
            or command.startswith("/")
            or (pending and answer)
        ):
            return conversation.say(text, on_reply=on_reply, on_user=on_user)
        conversation.note("user", text)
        if on_user:
            on_user()
        return self._turn(conversation, text, on_reply, on_token, on_line)

    def _llm_command(self, conversation, command: str, arg: str) -> Reply:
        if command == "/llm-context":
            shown = "\n\n".join(
                f"[{type(m).__name__.removesuffix('Message').lower()}]\n{m.text}"
                for m in messages_for(conversation, None)
            )
            tools = ", ".join(t["function"]["name"] for t in openai_tools())
            return Reply(
                f"**Sent to `{self.name}` with each turn** (then your words and the tool "
                f"results):\n\n```\n{shown}\n```\n\nTools: {tools}."
            )
        if arg.lower() in ("yes", "on", "y"):
            conversation.state.llm_rows = True
            conversation.save_state()
            return Reply(
                "Data rows may now be sent to the model in this session (sample rows of "
                "findings and results). `/llm-rows no` takes it back."
            )
        if arg.lower() in ("no", "off", "n"):
            conversation.state.llm_rows = False
            conversation.save_state()
            return Reply("No data rows are sent to the model; only aggregate figures.")
        now = "may" if conversation.state.llm_rows else "may not"
        return Reply(
            f"Data rows {now} be sent to the model. `/llm-rows yes` allows it for this "
            "session, `/llm-rows no` stops it; `/llm-context` shows what is sent."
        )

    def _turn(self, conversation, text, on_reply, on_token, on_line) -> list[Reply]:
        from langchain_core.messages import ToolMessage

        messages = messages_for(conversation, text)
        results: list[ToolResult] = []
        returned: list[Reply] = []

        def show(reply: Reply) -> None:
            if on_reply:
                on_reply(reply)
            else:
                returned.append(reply)

        def sources() -> tuple[set[str], set[float]]:
            return grounded_numbers([text, *(r.text for r in results)])

        explanation, streamed = "", False
        try:
            for _ in range(self.max_rounds):
                ai, streamed = self._invoke(messages, sources(), on_token, on_line)
                messages.append(ai)
                if not ai.tool_calls:
                    explanation = ai.text
                    break
                for call in ai.tool_calls:
                    result = call_tool(conversation, call["name"], call.get("args"), show)
                    results.append(result)
                    content = redact(result.text, conversation.state.llm_rows) or "(no reply)"
                    messages.append(ToolMessage(content=content, tool_call_id=call["id"]))
            else:
                notice = Reply(
                    f"The model stopped after {self.max_rounds} rounds of tool calls; "
                    "what they did is above.",
                    "error",
                )
                conversation.note("assistant", notice.text, notice.kind)
                return [*returned, notice]
        except Exception as exc:  # timeout, rate limit, network, a malformed answer
            return returned + self._failed(conversation, text, exc, results, on_reply)
        explanation = ground(explanation.strip(), sources())
        if len(explanation) > MAX_EXPLANATION:
            explanation = explanation[: MAX_EXPLANATION - 1].rstrip() + "…"
        if not explanation:
            return returned
        reply = Reply(explanation)
        conversation.note("assistant", reply.text, reply.kind)
        if streamed and on_line:
            return returned  # already printed line by line
        return [*returned, reply]

    def _invoke(self, messages, sources, on_token, on_line):
        """One model call: streamed when a front end shows tokens or lines (the text
        grounded as it comes), else a plain invoke. (message, whether it streamed)."""
        if not (on_token or on_line):
            return self.model.invoke(messages), False
        full, printed = None, 0
        for chunk in self.model.stream(messages):
            full = chunk if full is None else full + chunk
            so_far = ground(full.text, sources, final=False)
            if on_token:
                on_token(so_far)
            if on_line and not full.tool_call_chunks:
                lines = so_far.split("\n")
                for line in lines[printed:-1]:
                    on_line(line)
                printed = max(printed, len(lines) - 1)
        if full is None:
            raise ValueError("the model returned nothing")
        if on_line and not full.tool_calls:
            lines = ground(full.text.strip(), sources).split("\n")
            for line in lines[printed:]:
                on_line(line)
        from langchain_core.messages import AIMessage

        message = AIMessage(content=full.content, tool_calls=full.tool_calls, id=full.id)
        return message, bool(on_line and full.text.strip())

    def _failed(self, conversation, text, exc, results, on_reply) -> list[Reply]:
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        if results:  # tools ran: each was a whole turn, saved; do not act on the words again
            notice = Reply(
                f"The language model failed ({type(exc).__name__}: {why}) after "
                f"{len(results)} tool call(s); what they did is above and kept.",
                "error",
            )
            conversation.note("assistant", notice.text, notice.kind)
            return [notice]
        notice = Reply(
            f"The language model failed ({type(exc).__name__}: {why}); the rule-based "
            "planner answers this turn.",
            "error",
        )
        conversation.note("assistant", notice.text, notice.kind)
        if on_reply:
            on_reply(notice)
            return conversation.say(text, on_reply=on_reply, record_user=False)
        return [notice, *conversation.say(text, record_user=False)]
