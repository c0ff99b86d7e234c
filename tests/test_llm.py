"""The LLM front end, driven by scripted chat models from langchain_core: tools go the typed
path, numbers come from tools, failures fall back, data rows stay home without a yes."""

from __future__ import annotations

import csv
import itertools
from typing import ClassVar

import pytest
from test_app import settle

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage

from assistant import llm
from assistant.conversation import Conversation
from assistant.llm import LLMFrontEnd, LLMSetupError, build_model
from assistant.store import SessionStore
from assistant.tools import TOOLS, call_tool, openai_tools

_ids = itertools.count()


def call(name: str, **args) -> dict:
    return {"name": name, "args": args, "id": f"call-{next(_ids)}", "type": "tool_call"}


def act(*calls: dict, text: str = "") -> AIMessage:
    return AIMessage(content=text, tool_calls=list(calls))


class Scripted(FakeMessagesListChatModel):
    """Answers with the scripted messages in turn; `bind_tools` keeps the script."""

    seen: ClassVar[list] = []  # the messages each call was given, for the privacy tests

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self

    def invoke(self, messages, *args, **kwargs):
        self.seen.append(list(messages))
        return super().invoke(messages, *args, **kwargs)


class Broken(Scripted):
    def invoke(self, messages, *args, **kwargs):
        raise TimeoutError("the provider did not answer in 60 s")


class Streaming(GenericFakeChatModel):
    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self


def conversation(home) -> Conversation:
    return Conversation.start(SessionStore(home))


def texts(replies) -> str:
    return "\n\n".join(r.text for r in replies)


def test_every_tool_has_a_name_a_line_and_a_schema():
    names = [t.name for t in TOOLS]
    assert len(names) == len(set(names))
    for spec in openai_tools():
        fn = spec["function"]
        assert fn["description"] and "\n" not in fn["description"]
        assert fn["parameters"]["type"] == "object"
    assert {"set_task", "load_data", "apply_fix", "change_plan", "forecast", "explain"} <= set(
        names
    )
    assert {"start_run", "stop_run", "status", "export", "show_data"} <= set(names)


def test_a_session_driven_through_tools_ends_with_the_typed_plan(
    tmp_path, sentiment_csv, tiny_model
):
    typed = conversation(tmp_path / "typed")
    for line in (
        f"sentiment: {sentiment_csv}",
        "",
        f"use model {tiny_model}",
        "epochs 3",
        "learning rate 2e-5",
    ):
        typed.say(line)

    model = Scripted(
        responses=[
            act(call("load_data", path=str(sentiment_csv), task="sentiment")),
            act(call("answer", answer="yes")),
            AIMessage(content="I read your file; does that look right?"),
            act(
                call("change_plan", field="base_model", value=str(tiny_model)),
                call("change_plan", field="epochs", value="3"),
                call("change_plan", field="learning_rate", value="2e-5"),
            ),
            AIMessage(content="Now 3 epochs at learning rate 2e-5; I expect 97% accuracy."),
        ]
    )
    front = LLMFrontEnd(model, "scripted")
    talked = conversation(tmp_path / "llm")
    shown = []
    front.say(talked, f"train a sentiment classifier on {sentiment_csv}", on_reply=shown.append)
    assert talked.state.stage == "plan"
    assert any("Text column: `text`" in r.text for r in shown)  # tool results shown verbatim
    last = front.say(talked, "use my tiny model, 3 epochs, lr 2e-5", on_reply=shown.append)
    assert talked.state.plan == typed.state.plan
    assert talked.state.stage == typed.state.stage == "plan"
    # the explanation keeps the numbers the tools returned and hides the one it made up
    assert last[-1].text == "Now 3 epochs at learning rate 2e-5; I expect … accuracy."
    # every tool line is saved like a typed one, as a user turn of kind "tool"
    turns = talked.history()
    tool_lines = [t["text"] for t in turns if t["role"] == "user" and t["kind"] == "tool"]
    assert tool_lines[-3:] == [f"use model {tiny_model}", "epochs 3", "learning rate 2e-5"]
    # reopened, the session has the same plan
    talked.close()
    again = Conversation.start(SessionStore(tmp_path / "llm"), talked.session_id)
    assert again.state.plan == typed.state.plan
    again.close()
    typed.close()


def test_invalid_tool_arguments_get_the_typed_messages(tmp_path, sentiment_csv):
    typed, tooled = conversation(tmp_path / "a"), conversation(tmp_path / "b")
    for c in (typed, tooled):
        c.say(f"sentiment: {sentiment_csv}")
        c.say("")
    before = dict(tooled.state.plan)
    for value, line in (("-1", "learning rate -1"), ("zero", "batch size zero")):
        field = "learning_rate" if "learning" in line else "batch_size"
        expected = typed.say(line)
        result = call_tool(tooled, "change_plan", {"field": field, "value": value})
        assert texts(result.replies) == texts(expected)
        assert result.error
    assert tooled.state.plan == before == typed.state.plan
    # arguments outside the schema are refused before anything runs or is saved
    count = tooled.turn_count()
    bad = call_tool(tooled, "change_plan", {"field": "rm -rf", "value": "1"})
    assert bad.error and "must be one of" in bad.text
    assert call_tool(tooled, "start_run", {"cmd": "ls"}).error
    assert call_tool(tooled, "no_such_tool", {}).error
    assert tooled.turn_count() == count
    typed.close()
    tooled.close()


def test_a_failing_model_falls_back_to_the_planner_for_that_turn(tmp_path, sentiment_csv):
    typed, talked = conversation(tmp_path / "a"), conversation(tmp_path / "b")
    expected = typed.say(f"sentiment: {sentiment_csv}")
    front = LLMFrontEnd(Broken(responses=[]), "broken")
    replies = front.say(talked, f"sentiment: {sentiment_csv}")
    assert replies[0].kind == "error" and "\n" not in replies[0].text
    assert "TimeoutError" in replies[0].text and "rule-based planner" in replies[0].text
    assert (
        texts(replies[1:]).split("**How I read")[1].split("(")[0]
        == texts(expected).split("**How I read")[1].split("(")[0]
    )
    assert talked.state.plan == typed.state.plan and talked.state.stage == "review"
    # the person's words are saved once, then the notice and the planner's answer
    roles = [(t["role"], t["kind"]) for t in talked.history()]
    assert roles.count(("user", "text")) == 1
    typed.close()
    talked.close()


def test_a_model_failing_after_a_tool_keeps_what_the_tool_did(tmp_path, sentiment_csv):
    class FailsSecond(Scripted):
        def invoke(self, messages, *args, **kwargs):
            if len(self.seen) >= 1:
                raise ConnectionError("network is unreachable")
            return super().invoke(messages, *args, **kwargs)

    FailsSecond.seen = []
    talked = conversation(tmp_path)
    front = LLMFrontEnd(
        FailsSecond(responses=[act(call("load_data", path=str(sentiment_csv)))]), "x"
    )
    replies = front.say(talked, f"my data is {sentiment_csv}")
    assert talked.state.stage == "review" and talked.state.plan  # the load is whole
    assert "ConnectionError" in replies[-1].text and "kept" in replies[-1].text
    assert sum("How I read" in r.text for r in replies) == 1  # not read a second time
    talked.close()


def test_commands_and_enter_go_straight_to_the_planner(tmp_path):
    talked = conversation(tmp_path)
    front = LLMFrontEnd(Broken(responses=[]), "broken")  # never called
    assert "**Stage:** task" in texts(front.say(talked, "/status"))
    front.say(talked, "")
    assert talked.state.stage == "data"
    talked.close()


def test_llm_context_has_no_data_rows_before_the_person_agrees(tmp_path, sentiment_csv):
    secret = "zebra quokka secret row"
    path = tmp_path / "dups.csv"
    rows = list(csv.reader(sentiment_csv.open(encoding="utf-8")))
    rows += [[secret, "positive"], [secret, "positive"], [secret, "negative"]]
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    talked = conversation(tmp_path / "home")
    talked.say(f"sentiment: {path}")
    assert secret in talked.planner.findings_text()  # the findings do show it to the person
    Scripted.seen = []
    front = LLMFrontEnd(
        Scripted(responses=[act(call("show_data", view="findings")), AIMessage("Seen.")]), "s"
    )
    shown = texts(front.say(talked, "/llm-context"))
    assert "Session state" in shown and "label_counts" in shown and secret not in shown
    replies = front.say(talked, "what did you find in my data?")
    assert secret in texts(replies)  # the person sees the rows ...
    sent = "\n".join(str(m.content) for m in Scripted.seen[-1])
    assert secret not in sent and llm.WITHHELD in sent  # ... the model does not
    front.say(talked, "/llm-rows yes")
    assert talked.state.llm_rows
    assert secret in texts(front.say(talked, "/llm-context"))
    talked.close()
    again = Conversation.start(SessionStore(tmp_path / "home"), talked.session_id)
    assert again.state.llm_rows  # once per session: kept with it
    again.close()


def test_the_explanation_streams_line_by_line_with_grounded_numbers(tmp_path):
    talked = conversation(tmp_path)
    front = LLMFrontEnd(
        Streaming(messages=iter([AIMessage("Hello there.\nYou have 12 rows, I think.")])), "s"
    )
    lines, tokens = [], []
    replies = front.say(talked, "hi", on_line=lines.append)
    assert lines == ["Hello there.", "You have … rows, I think."]
    assert replies == []  # printed already; saved in the session
    assert talked.history()[-1]["text"] == "Hello there.\nYou have … rows, I think."
    front = LLMFrontEnd(Streaming(messages=iter([AIMessage("About 42 of them")])), "s")
    front.say(talked, "how many?", on_token=tokens.append)
    assert len(tokens) > 1 and all("42" not in t for t in tokens)
    talked.close()


def test_ground_keeps_only_numbers_from_the_sources():
    sources = llm.grounded_numbers(["macro-F1 **0.8123** on 1,200 rows, run-2"])
    assert llm.ground("0.8123 on 1,200 rows", sources) == "0.8123 on 1,200 rows"
    assert llm.ground("0.9 on 1200 rows; MiniLM-L6-v2, gpt-4o", sources) == (
        "… on 1200 rows; MiniLM-L6-v2, gpt-4o"
    )
    assert llm.ground("it is 0.81", sources, final=False) == "it is "


def test_missing_langchain_package_or_key_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.setattr(
        llm.importlib.util,
        "find_spec",
        lambda name: None if name.startswith("langchain_") else object(),
    )
    with pytest.raises(LLMSetupError) as info:
        build_model("openai:gpt-4o-mini")
    assert "pip install 'tunesmith[openai]'" in info.value.message
    monkeypatch.setattr(llm.importlib.util, "find_spec", lambda name: object())
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMSetupError) as info:
        build_model("anthropic:claude-sonnet-4-5")
    assert "export ANTHROPIC_API_KEY=..." in info.value.message
    with pytest.raises(LLMSetupError) as info:
        build_model("gpt-4o-mini")
    assert "PROVIDER:MODEL" in info.value.message
    for error in ("openai:gpt-4o-mini", "gpt-4o-mini"):
        with pytest.raises(LLMSetupError) as info:
            build_model(error)
        assert "\n" not in info.value.message


def test_llm_spec_reads_the_flag_then_the_environment(monkeypatch):
    monkeypatch.setenv(llm.LLM_ENV, "ollama:llama3.1")
    assert llm.llm_spec(None) == "ollama:llama3.1"
    assert llm.llm_spec("openai:gpt-4o") == "openai:gpt-4o"
    monkeypatch.delenv(llm.LLM_ENV)
    assert llm.llm_spec(None) is None


def test_cli_llm_setup_problem_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    from assistant.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["--home", str(tmp_path), "chat", "--headless", "--llm", "openai:gpt-4o-mini"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert "pip install 'tunesmith[openai]'" in err or "export OPENAI_API_KEY=..." in err
    assert not list(tmp_path.iterdir())  # no session was opened


def test_headless_chat_through_a_model(tmp_path, monkeypatch, capsys, sentiment_csv):
    import io

    from assistant.cli import main

    model = Streaming(
        messages=iter([AIMessage("Hello! I can train a classifier for you.\nGive me a file.")])
    )
    monkeypatch.setattr(llm, "build_model", lambda spec: model)
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/status\n"))
    monkeypatch.setenv(llm.LLM_ENV, "scripted:model")
    assert main(["--home", str(tmp_path), "chat", "--headless"]) == 0
    out = capsys.readouterr().out
    assert "> hello\nHello! I can train a classifier for you.\nGive me a file.\n" in out
    assert "**Stage:** task" in out


def test_tools_train_and_export_like_the_typed_path(tmp_path, sentiment_csv, tiny_model):
    from conftest import TINY_PLAN

    from tuning_core.runs import follow_run

    lr, epochs = str(TINY_PLAN["learning_rate"]), f"{TINY_PLAN['epochs']:g}"
    model = Scripted(
        responses=[
            act(
                call("load_data", path=str(sentiment_csv), task="sentiment"),
                call("answer", answer="yes"),
                call("change_plan", field="base_model", value=str(tiny_model)),
                call("change_plan", field="learning_rate", value=lr),
                call("change_plan", field="epochs", value=epochs),
                call("start_run"),
            ),
            AIMessage("Training has started."),
            act(call("status")),
            AIMessage("It is done."),
            act(call("export", folder=str(tmp_path / "bundle"))),
            AIMessage("Exported."),
        ]
    )
    front = LLMFrontEnd(model, "scripted")
    talked = conversation(tmp_path / "home")
    replies = front.say(talked, f"train on {sentiment_csv} with my tiny model, then go")
    assert "Training started (`run-1`)" in texts(replies)
    assert talked.state.stage == "run"
    plan = talked.state.plan
    assert (plan["base_model"], plan["learning_rate"], plan["epochs"]) == (
        str(tiny_model),
        TINY_PLAN["learning_rate"],
        TINY_PLAN["epochs"],
    )
    status = follow_run(talked.run_dir, lambda event: None, poll_s=0.2)
    assert "**Results**" in texts(talked.finish_run(status))
    assert "finished" in texts(front.say(talked, "how did it go?"))
    replies = front.say(talked, "export it into bundle")
    assert (tmp_path / "bundle" / "train.py").exists() and talked.state.stage == "export"
    assert "Exported to" in texts(replies)

    # the typed path: the lines the tools typed, typed by a person into another session, give
    # the same plan, the same run (metrics bit for bit on the CPU) and the same bundle
    from tuning_core.runs import read_report

    lines = [
        t["text"] for t in talked.session.turns() if t["role"] == "user" and t["kind"] == "tool"
    ]
    assert any(line.startswith("/export") for line in lines), lines
    typed = conversation(tmp_path / "typed-home")
    for line in lines:
        typed.say(line.replace(str(tmp_path / "bundle"), str(tmp_path / "typed-bundle")))
        if typed.state.stage == "run":
            typed.finish_run(follow_run(typed.run_dir, lambda event: None, poll_s=0.2))
    assert typed.state.plan == talked.state.plan
    ran, typed_ran = read_report(talked.run_dir), read_report(typed.run_dir)
    for part in ("validation", "test"):
        assert typed_ran[part] == ran[part]
    for name in ("train.py", "plan.json", "requirements.txt"):
        assert (tmp_path / "typed-bundle" / name).read_text() == (
            tmp_path / "bundle" / name
        ).read_text()
    typed.close()
    talked.close()


async def test_mcp_client_lists_and_calls_the_tools_over_stdio(tmp_path, sentiment_csv):
    import os
    import sys

    mcp = pytest.importorskip("mcp")
    from mcp.client.stdio import StdioServerParameters, stdio_client

    home = tmp_path / "home"
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "assistant.cli", "mcp", "--home", str(home)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    async with stdio_client(server) as (read, write), mcp.ClientSession(read, write) as client:
        await client.initialize()
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == {t.name for t in TOOLS}
        load = next(t for t in listed.tools if t.name == "load_data")
        assert load.input_schema["required"] == ["path"]
        result = await client.call_tool("load_data", {"path": str(sentiment_csv)})
        assert not result.is_error and "Text column: `text`" in result.content[0].text
        await client.call_tool("answer", {"answer": "yes"})
        result = await client.call_tool("change_plan", {"field": "learning_rate", "value": "-1"})
        refused = result.content[0].text
        result = await client.call_tool("change_plan", {"field": "epochs", "value": "2"})
        assert not result.is_error and "epochs → 2" in result.content[0].text
    # the session the agent drove is saved like a typed one, with the same messages
    store = SessionStore(home)
    (listed_session,) = store.list()
    talked = Conversation.start(store, listed_session["id"])
    assert talked.state.plan["epochs"] == 2 and talked.state.stage == "plan"
    typed = conversation(tmp_path / "typed")
    typed.say(f"sentiment: {sentiment_csv}")
    typed.say("")
    assert refused == texts(typed.say("learning rate -1"))
    talked.close()
    typed.close()


def test_redact_withholds_sample_rows_and_confident_errors():
    text = "\n".join(
        [
            "1. **3 exact duplicates** (medium)",
            "   - train row 4: `my secret text` → positive",
            "   -  row 9: `another secret` → negative",
            "| 0.987 | positive | negative | a third secret |",
            "Rows: train 100",
        ]
    )
    out = llm.redact(text, rows_allowed=False)
    assert "secret" not in out and out.count(llm.WITHHELD) == 1
    assert "3 exact duplicates" in out and "Rows: train 100" in out
    assert llm.redact(text, rows_allowed=True) == text


async def test_the_app_streams_the_model_into_the_working_line(home):
    from textual.widgets import Input

    from assistant.app import TunesmithApp
    from assistant.widgets import ChatMessage

    class Slow(Streaming):  # records what the working line shows while it streams
        def _stream(self, *args, **kwargs):
            for chunk in super()._stream(*args, **kwargs):
                shown.append(str(app.query_one("#working").content))
                yield chunk

    shown: list[str] = []
    app = TunesmithApp(home=home)
    app.llm = LLMFrontEnd(Slow(messages=iter([AIMessage("Tell me the task and the file.")])))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.query_one("#prompt", Input).value = "hello there"
        await pilot.press("enter")
        await settle(app, pilot)
        sources = [m.source for m in app.query(ChatMessage)]
        assert sources[-2:] == ["hello there", "Tell me the task and the file."]
    assert any(s.startswith("Tell me") for s in shown)  # the partial text, token by token
