"""The Textual app driven through Pilot: a whole run with the tiny model, reopening a session,
bad input, and the session picker."""

from __future__ import annotations

import io
import json
import os
import time

from conftest import TINY_PLAN
from rich.console import Console
from textual.widgets import Input, OptionList, ProgressBar, Static

from assistant.app import RepliesReady, TunesmithApp
from assistant.conversation import Conversation
from assistant.dataview import DataScreen
from assistant.store import SessionStore
from assistant.widgets import ChatMessage, PlanPanel, QuitScreen, RunPanel, SessionPicker
from tuning_core.runs import write_json_atomic

SIZE = (120, 40)


def messages(app: TunesmithApp) -> list[ChatMessage]:
    return list(app.query(ChatMessage))


def chat_text(app: TunesmithApp) -> str:
    return "\n\n".join(m.source for m in messages(app))


async def settle(app: TunesmithApp, pilot) -> None:
    """Wait until no conversation call is in flight or queued and its replies are shown."""
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.busy:
            return
    raise AssertionError("the conversation never settled")


async def say(app: TunesmithApp, pilot, text: str) -> list[ChatMessage]:
    """Type `text` and Enter; the messages that came back."""
    before = len(messages(app))
    prompt = app.query_one("#prompt", Input)
    prompt.value = text
    await pilot.press("enter")
    await settle(app, pilot)
    return messages(app)[before + 1 :]


def side_text(app: TunesmithApp) -> str:
    """The side panel as plain text, rendered 34 columns wide."""
    console = Console(width=34, record=True, file=io.StringIO())
    for static in app.query_one(PlanPanel).query(Static):
        console.print(static.content)
    return console.export_text()


async def test_whole_run_with_tiny_model(home, tiny_model, sentiment_csv, tmp_path):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "tunesmith" in chat_text(app)
        replies = await say(app, pilot, f"classify these posts by sentiment: {sentiment_csv}")
        assert any("How I read" in m.source for m in replies)
        assert any("Did I read it right?" in m.source for m in replies)
        # the data view: label chart, length histogram, findings with sample rows
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        chart = str(app.screen.query_one("#label-chart", Static).content)
        assert "negative" in chart and "█" in chart
        histogram = str(app.screen.query_one("#length-histogram", Static).content)
        assert "median" in histogram and "%" in histogram
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DataScreen)
        replies = await say(app, pilot, "")  # Enter: yes, I read it right
        assert any(m.kind == "plan" for m in replies)
        await say(app, pilot, f"use model {tiny_model}")
        replies = await say(
            app,
            pilot,
            f"learning rate {TINY_PLAN['learning_rate']}, {TINY_PLAN['epochs']:g} epochs",
        )
        assert "learning_rate" in app.conversation.state.changed
        side = side_text(app)
        assert "Learning rate" in side and "0.003 ●" in side, side

        await say(app, pilot, "")  # Enter: take the default, i.e. train
        assert app.conversation.running
        bar = app.query_one("#run-bar", ProgressBar)
        panel = app.query_one(RunPanel)
        saw_panel = saw_total = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
            saw_panel = saw_panel or panel.display
            saw_total = saw_total or bool(bar.total)
            if any("**Results**" in m.source for m in messages(app)):
                break
        else:
            raise AssertionError("no results after 120 s:\n" + chat_text(app)[-2000:])
        await settle(app, pilot)
        assert saw_panel and saw_total
        assert bar.progress == bar.total
        assert not panel.display
        results = [m for m in messages(app) if "**Results**" in m.source][-1]
        assert results.kind == "results"
        assert "**Test (" in results.source, results.source
        assert "Baselines on the same test rows" in results.source, results.source
        assert app.conversation.state.stage == "results"

        bundle = tmp_path / "bundle"
        await say(app, pilot, f"/export {bundle}")
        assert (bundle / "train.py").exists()
        assert (bundle / "README.md").exists()


async def test_reopened_session_shows_its_conversation(home, sentiment_csv):
    first = TunesmithApp(home=home)
    async with first.run_test(size=SIZE) as pilot:
        await settle(first, pilot)
        await say(first, pilot, f"classify these posts: {sentiment_csv}")
        session_id = first.conversation.session_id
        await pilot.press("ctrl+q")  # idle: quits at once
    assert first.return_code == 0

    second = TunesmithApp(home=home, session_id=session_id)
    async with second.run_test(size=SIZE) as pilot:
        await settle(second, pilot)
        user = [m for m in messages(second) if m.role == "user"]
        assert any(f"classify these posts: {sentiment_csv}" in m.source for m in user)
        assert "Welcome back" in messages(second)[-1].source
        assert second.conversation.state.plan is not None
        assert "posts.csv" in side_text(second)


async def test_bad_input_shows_errors_and_keeps_going(home):
    app = TunesmithApp(home=home)
    flowed = []
    async with app.run_test(size=SIZE, message_hook=flowed.append) as pilot:
        await settle(app, pilot)
        replies = await say(app, pilot, "/nonsense")
        assert [m.kind for m in replies] == ["error"]
        assert replies[0].has_class("error")
        replies = await say(app, pilot, "/no/such/file.csv")
        assert replies and replies[-1].has_class("error")
        assert "file.csv" in replies[-1].source
        replies = await say(app, pilot, "/help")
        assert "What I can do" in replies[-1].source
        assert app.query_one("#prompt", Input).has_focus
    kinds = [[r.kind for r in m.replies] for m in flowed if isinstance(m, RepliesReady)]
    assert kinds[:3] == [["text"], ["error"], ["error"]]


async def test_failed_turn_gives_the_text_back(home, monkeypatch):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)

        def broken(text, on_reply=None, on_user=None):
            raise RuntimeError("planner exploded")

        notes = []
        monkeypatch.setattr(app.conversation, "say", broken)
        monkeypatch.setattr(app, "notify", lambda message, **kw: notes.append((message, kw)))
        await say(app, pilot, "3 epochs")
        assert app.query_one("#prompt", Input).value == "3 epochs"
        assert notes and "planner exploded" in notes[0][0]
        assert notes[0][1]["severity"] == "error"
        assert not app.busy  # the next turn can go


async def test_session_picker(home):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        first_id = app.conversation.session_id
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.conversation.session_id != first_id

        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, SessionPicker)
        option_list = app.screen.query_one(OptionList)
        ids = [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]
        assert first_id in ids and app.conversation.session_id in ids
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SessionPicker)

        # choosing a session switches to it and shows its conversation again
        await pilot.press("ctrl+o")
        await pilot.pause()
        option_list = app.screen.query_one(OptionList)
        option_list.highlighted = ids.index(first_id)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.conversation.session_id == first_id
        assert "Welcome back" in messages(app)[-1].source


async def test_reopening_a_running_session_follows_its_run(home):
    """A run still going when the session is reopened is followed; its end is reported."""
    conversation = Conversation.start(SessionStore(home))
    run_dir = conversation.session.runs_dir / "run-1"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": os.getpid()})
    log = {"type": "log", "step": 6, "max_steps": 20, "epoch": 0.3, "loss": 0.9876}
    log |= {"learning_rate": 1e-4, "samples_per_s": 12.5, "eta_s": 42, "memory_mb": 321}
    evaluation = {
        "type": "eval",
        "epoch": 1,
        "metrics": {"eval_macro_f1": 0.5, "eval_accuracy": 0.625},
    }
    (run_dir / "events.jsonl").write_text(json.dumps(log) + "\n" + json.dumps(evaluation) + "\n")
    state = conversation.state
    state.stage, state.run_id, state.run_dir = "run", "run-1", str(run_dir)
    conversation.session.add_turn("user", "")
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()

    app = TunesmithApp(home=home, session_id=conversation.session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "still running" in messages(app)[-1].source
        await pilot.pause(0.6)  # one tick of the follow timer
        panel = app.query_one(RunPanel)
        bar = app.query_one("#run-bar", ProgressBar)
        assert panel.display and (bar.total, bar.progress) == (20, 6)
        line = str(app.query_one("#run-line", Static).content)
        for part in (
            "ETA 42 s",
            "loss 0.9876",
            "macro-F1 0.500",
            "acc 0.625",
            "12.5 samples/s",
            "321 MB",
        ):
            assert part in line, line

        # quitting while it runs asks first and says how to come back
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        assert f"tunesmith --session {conversation.session_id}" in str(
            app.screen.query_one("#quit-text", Static).content
        )
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, QuitScreen) and app.is_running

        write_json_atomic(run_dir / "status.json", {"state": "failed", "error": "out of memory"})
        for _ in range(20):
            await pilot.pause(0.25)
            if not app.conversation.running and not app.busy:
                break
        await settle(app, pilot)
        assert not panel.display
        assert messages(app)[-1].kind == "error" and "out of memory" in messages(app)[-1].source


async def test_a_search_shows_its_trials_table_live(home):
    """Trial events fill the run panel's table as they arrive; the best trial is marked."""
    from textual.widgets import DataTable

    conversation = Conversation.start(SessionStore(home))
    run_dir = conversation.session.runs_dir / "run-1"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": os.getpid()})
    trial = {"type": "trial", "epochs_reported": 3, "seconds": 9.5, "note": ""}
    first = trial | {"number": 0, "state": "complete", "value": 0.61, "params": {"lr": 2e-5}}
    second = trial | {"number": 1, "state": "pruned", "value": None, "params": {"lr": 1e-6}}
    second |= {"epochs_reported": 1}
    (run_dir / "events.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    state = conversation.state
    state.stage, state.run_id, state.run_dir = "run", "run-1", str(run_dir)
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()

    app = TunesmithApp(home=home, session_id=conversation.session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.pause(0.6)  # one tick of the follow timer
        table = app.query_one("#trials", DataTable)
        assert table.display and table.row_count == 2
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(2)]
        assert rows[0][:4] == ["0 ★", "complete", "0.6100", "3"] and "lr 2e-05" in rows[0][4]
        assert rows[1][:4] == ["1", "pruned", "-", "1"]
        # a third trial that beats the first moves the mark, without a restart of the app
        third = trial | {"number": 2, "state": "complete", "value": 0.7, "params": {"lr": 5e-5}}
        with (run_dir / "events.jsonl").open("a") as fh:
            fh.write(json.dumps(third) + "\n")
        await pilot.pause(0.6)
        assert table.row_count == 3
        assert str(table.get_row_at(2)[0]) == "2 ★" and str(table.get_row_at(0)[0]) == "0"


async def test_slow_steps_say_what_they_do_under_the_chat(home, sentiment_csv, monkeypatch):
    """Loading a file shows each slow step in the working line while it runs."""
    app = TunesmithApp(home=home)
    shown: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        original = app._set_working
        monkeypatch.setattr(
            app, "_set_working", lambda text: (shown.append(text or ""), original(text))
        )
        await say(app, pilot, f"classify these posts by sentiment: {sentiment_csv}")
        assert not app.query_one("#working").display  # cleared once the replies are in
    steps = [next((t for t in shown if t.startswith(p)), None) for p in ("reading", "profiling")]
    assert steps[0] == f"reading {sentiment_csv.name}…" and steps[1] is not None
    assert any(t.startswith("measuring the baseline") for t in shown)
    assert shown.index(steps[0]) < shown.index(steps[1])


async def test_replies_stream_in_as_they_are_ready(home, sentiment_csv, monkeypatch):
    """Loading a file: the reading of it shows while the baseline is still being measured;
    the baseline follows when it is done. Both are saved turns."""
    import threading

    from tuning_core import baseline

    measuring, release = threading.Event(), threading.Event()
    real = baseline.run_baseline

    def slow_baseline(*args, **kwargs):
        measuring.set()
        assert release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(baseline, "run_baseline", slow_baseline)
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#prompt", Input).value = f"classify these posts: {sentiment_csv}"
        await pilot.press("enter")
        for _ in range(200):
            if measuring.is_set() and "How I read" in chat_text(app):
                break
            await pilot.pause(0.05)
        assert "How I read" in chat_text(app) and "Baseline to beat" not in chat_text(app)
        assert app.busy  # the turn is still going
        release.set()
        await settle(app, pilot)
        text = chat_text(app)
        assert (
            text.index("How I read")
            < text.index("Baseline to beat")
            < text.index("Did I read it right?")
        )
        saved = [t["text"] for t in app.conversation.history() if t["role"] == "assistant"]
        assert any(t.startswith("**How I read") for t in saved)
        assert any("Baseline to beat" in t for t in saved)


async def test_a_long_conversation_opens_on_its_newest_turns_and_pages_back(home):
    from assistant.app import CHAT_PAGE
    from assistant.widgets import OlderTurns

    store = SessionStore(home)
    session = store.create()
    for n in range(1, 2 * CHAT_PAGE + 51):
        session.add_turn("user" if n % 2 else "assistant", f"turn {n}")
    session.close()
    app = TunesmithApp(home=home, session_id=session.id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        texts = [m.source for m in messages(app)]
        assert texts[0] == f"turn {CHAT_PAGE + 51}" and texts[CHAT_PAGE - 1] == "turn 250"
        assert "Welcome back" in texts[-1] and len(texts) == CHAT_PAGE + 1
        button = app.query_one(OlderTurns)
        assert str(button.label) == f"▲ 150 older turns: show {CHAT_PAGE} more"
        app.query_one("#chat").scroll_home(animate=False)  # the person scrolls up to it
        await pilot.pause()
        await pilot.click("#older-turns")
        await pilot.pause()
        texts = [m.source for m in messages(app)]
        assert texts[0] == "turn 51" and texts[CHAT_PAGE] == f"turn {CHAT_PAGE + 51}"
        assert str(app.query_one(OlderTurns).label) == "▲ 50 older turns: show 50 more"
        await app.action_older()  # also in the command palette ("Older turns")
        await pilot.pause()
        texts = [m.source for m in messages(app)]
        assert texts[:2] == ["turn 1", "turn 2"] and len(texts) == 251
        assert not app.query(OlderTurns)
        # the chat goes on below, in order
        await say(app, pilot, "/status")
        texts = [m.source for m in messages(app)]
        assert texts[-2] == "/status" and "Stage" in texts[-1]


async def test_timers_that_fire_while_the_app_closes_do_nothing(home):
    """At shutdown Textual removes the main screen's widgets while the follow timers may still
    fire once: they must return quietly, not raise (a CI run failed on exactly this)."""
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await app.query_one(RunPanel).remove()
        assert app._closing_down()
        app._follow_run()
        await app._follow_writer()


def test_the_collector_is_paused_during_a_call_and_what_it_imported_is_frozen():
    import gc
    import sys
    import types

    from assistant.gcpause import GarbagePauses

    pauses = GarbagePauses()
    try:
        before = gc.get_freeze_count()
        with pauses.paused():
            assert not gc.isenabled()
            with pauses.paused():  # calls may overlap: the collector stays off until both end
                pass
            assert not gc.isenabled()
        assert gc.isenabled() and gc.get_freeze_count() == before  # nothing was imported
        with pauses.paused():
            sys.modules["tunesmith_test_import"] = types.ModuleType("tunesmith_test_import")
            kept = [object() for _ in range(10)], {"cycle": []}
            kept[1]["cycle"].append(kept)
        assert gc.isenabled() and gc.get_freeze_count() > before  # an import: frozen
    finally:
        sys.modules.pop("tunesmith_test_import", None)
        gc.unfreeze()


async def test_the_app_freezes_what_its_first_screen_holds(home):
    import gc

    gc.unfreeze()
    app = TunesmithApp(home)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await pilot.pause()
            assert gc.get_freeze_count() > 0 and gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_chat_message_is_rendered_once_per_width_and_looks_the_same():
    from rich.markdown import Markdown

    from assistant.widgets import RenderedOnce

    text = "# Results\n\n- macro-F1 **0.71** on test\n\n| class | F1 |\n|---|---|\n| joy | 0.8 |\n"
    calls = []

    class Counted:
        def __rich_console__(self, console, options):
            calls.append(options.max_width)
            yield from console.render(Markdown(text), options)

    def shown(renderable, width: int) -> str:
        console = Console(width=width, record=True, file=io.StringIO(), color_system="truecolor")
        console.print(renderable)
        return console.export_text(styles=True)

    once = RenderedOnce(Counted())
    for width in (60, 60, 40, 60, 40, 30, 20, 60):
        assert shown(once, width) == shown(Markdown(text), width)
    # 60 and 40 rendered once each while kept; 30 and 20 pushed the 60 out (three widths kept)
    assert calls == [60, 40, 30, 20, 60]
