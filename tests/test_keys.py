"""Every key of the main screen through Pilot (the views' own keys are in their test files):
Tab between the panes, Escape back to the prompt, the light/dark switch and its memory, `q` and
Ctrl+C (asking first while a run goes), Ctrl+N, and a command palette entry per action."""

from __future__ import annotations

import json
import os

from test_app import SIZE, messages, settle
from textual.command import CommandPalette

from assistant.app import TunesmithApp
from assistant.conversation import Conversation
from assistant.store import SessionStore
from assistant.widgets import PlanPanel, QuitScreen, SessionPicker
from tuning_core.runs import write_json_atomic


def running_session(home) -> str:
    """A saved session whose run `run-1` is still going (this process stands in for it)."""
    conversation = Conversation.start(SessionStore(home))
    run_dir = conversation.session.runs_dir / "run-1"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": os.getpid()})
    (run_dir / "events.jsonl").write_text("")
    state = conversation.state
    state.stage, state.run_id, state.run_dir = "run", "run-1", str(run_dir)
    conversation.session.add_turn("user", "")
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()
    return conversation.session_id


async def test_tab_visits_the_panes_and_escape_comes_back(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.focused.id == "prompt"
        seen = []
        for _ in range(3):
            await pilot.press("tab")
            seen.append(app.focused.id)
        assert seen == ["chat", "side", "prompt"]
        await pilot.press("tab", "tab")
        assert isinstance(app.focused, PlanPanel)
        await pilot.press("escape")
        assert app.focused.id == "prompt"


async def test_ctrl_b_hides_and_shows_the_plan_pane(home):
    app = TunesmithApp(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        chat = app.query_one("#chat")
        narrow = chat.size.width
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.query_one(PlanPanel).display and chat.size.width > narrow + 20
        await pilot.press("tab")
        assert app.focused.id == "chat"  # a hidden pane takes no focus
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.query_one(PlanPanel).display and chat.size.width == narrow


async def test_f2_switches_light_and_dark_and_remembers(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.current_theme.dark
        await pilot.press("f2")
        assert not app.current_theme.dark
    assert json.loads((home / "settings.json").read_text())["theme"] == app.theme
    again = TunesmithApp(home, SessionStore(home).list()[-1]["id"])
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert not again.current_theme.dark  # the next start opens in the chosen theme
        await pilot.press("f2")
        assert again.current_theme.dark


async def test_an_unreadable_settings_file_gives_the_default_theme(home):
    (home / "settings.json").write_text("{not json")
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.current_theme.dark


async def test_q_types_in_the_prompt_and_quits_from_a_pane(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
        assert app.query_one("#prompt").value == "q" and app.is_running
        await pilot.press("tab")  # to the chat
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_q_in_a_dialog_does_not_quit(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, SessionPicker)
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, SessionPicker)


async def test_ctrl_c_asks_before_leaving_a_running_job(home):
    app = TunesmithApp(home, running_session(home))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")  # Stay
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, QuitScreen)
        await pilot.press("ctrl+c")
        await pilot.pause()
        await pilot.click("#quit-yes")
        await pilot.pause()
        assert not app.is_running


async def test_ctrl_c_without_a_run_quits_at_once(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert not app.is_running


async def test_ctrl_n_starts_a_new_session(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        first = app.conversation.session_id
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert app.conversation.session_id != first
        assert len(SessionStore(home).list()) == 2
        assert "Welcome back" not in messages(app)[-1].source


async def test_start_offers_the_last_session(home):
    """With saved sessions, the app opens on the picker with the last one highlighted: Enter
    reopens it; Escape starts a new one."""
    store = SessionStore(home)
    ids = []
    for _ in range(2):
        conversation = Conversation.start(store)
        ids.append(conversation.session_id)
        conversation.session.close()
    for session_id in reversed(ids):  # the first one created is the last one used
        session = store.open(session_id)
        session.add_turn("user", f"hello from {session_id}")
        session.close()
    last = ids[0]
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SessionPicker) and app.screen.offer == last
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.conversation.session_id == last
        assert f"hello from {last}" in messages(app)[0].source
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.conversation.session_id not in ids
        assert len(store.list()) == 3


async def test_every_action_is_in_the_command_palette(home):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in (
            "Sessions",
            "Data view",
            "Results view",
            "Run monitor",
            "New session",
            "Light or dark",
            "Plan pane",
            "Quit",
        ):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"light or dark")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert not app.current_theme.dark


async def test_the_key_bar_shows_each_key_and_a_click_presses_it(home):
    from assistant.widgets import KeyFooter

    app = TunesmithApp(home)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        bar = app.screen.query_one(KeyFooter)
        shown = str(bar.render())
        for pair in ("^d Data", "^t Run", "^r Results", "^o Open", "f2 Theme", "^b Plan"):
            assert pair in shown
        assert shown.rstrip().endswith("^p palette")
        start = shown.index("^b Plan")
        await pilot.click(KeyFooter, offset=(start + 1, 0))
        await pilot.pause()
        assert not app.query_one(PlanPanel).display  # the click pressed ctrl+b
        await pilot.click(KeyFooter, offset=(shown.index("^o Open"), 0))
        await pilot.pause(0.3)
        assert isinstance(app.screen, SessionPicker)
