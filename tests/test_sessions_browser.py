"""The sessions browser: titles and deletion in the store, and the picker's r / d keys."""

from __future__ import annotations

import contextlib
import io
import os

import pytest
from sqlite_utils import Database
from test_app import settle
from textual.widgets import Input, OptionList, Static

from assistant.app import TunesmithApp
from assistant.conversation import Conversation
from assistant.store import DB_NAME, MIGRATIONS, SessionStore
from assistant.widgets import ConfirmDeleteScreen, SessionPicker, TitleScreen
from tuning_core.errors import SessionError
from tuning_core.runs import write_json_atomic

SIZE = (100, 32)


def make_session(home, title: str | None = None) -> str:
    store = SessionStore(home)
    session = store.create()
    session.close()
    if title:
        store.rename(session.id, title)
    return session.id


# ---------------------------------------------------------------- store


def test_rename_round_trips_through_a_reopened_store(home):
    store = SessionStore(home)
    session_id = make_session(home)
    assert store.list()[0]["title"] == ""
    assert store.rename(session_id, "  Spam filter, v2 \t") == "Spam filter, v2"

    again = SessionStore(home)
    (summary,) = again.list()
    assert summary["id"] == session_id and summary["title"] == "Spam filter, v2"
    session = again.open(session_id)
    try:
        assert session.summary()["title"] == "Spam filter, v2"
        # the planner saving its state (a meta upsert) leaves the title alone
        session.save_state({"stage": "plan"}, {"stage": "plan", "task": "spam"})
        assert session.summary()["title"] == "Spam filter, v2"
    finally:
        session.close()
    assert again.rename(session_id, "x" * 60) == "x" * 60


@pytest.mark.parametrize("title", ["", "   ", "x" * 61, "two\nlines", "tab\there"])
def test_bad_titles_are_rejected_with_one_line(home, title):
    store = SessionStore(home)
    session_id = make_session(home, "Kept")
    with pytest.raises(ValueError) as caught:
        store.rename(session_id, title)
    message = str(caught.value)
    assert message and "\n" not in message
    assert store.list()[0]["title"] == "Kept"


def test_delete_removes_the_folder_and_the_listing(home):
    store = SessionStore(home)
    gone, kept = make_session(home, "Old"), make_session(home)
    (home / gone / "runs" / "run-1").mkdir(parents=True)
    (home / gone / "runs" / "run-1" / "status.json").write_text('{"state": "finished"}')
    store.delete(gone)
    assert not (home / gone).exists()
    assert [s["id"] for s in store.list()] == [kept]
    assert (home / kept / DB_NAME).exists()


def test_unknown_sessions_are_refused(home):
    store = SessionStore(home)
    kept = make_session(home)
    with pytest.raises(SessionError, match="No session 'nope'"):
        store.rename("nope", "A title")
    with pytest.raises(SessionError, match="No session 'nope'"):
        store.delete("nope")
    for sneaky in ("", ".", "..", f"../{home.name}/{kept}"):
        with pytest.raises(SessionError):
            store.delete(sneaky)
    assert (home / kept / DB_NAME).exists()
    store.delete(kept)
    with pytest.raises(SessionError, match="No session"):
        store.delete(kept)


def test_an_old_database_without_titles_still_opens(home):
    old = home / "20240101-000000-beef"
    old.mkdir()
    db = Database(old / DB_NAME)
    MIGRATIONS.apply(db, stop_before="m003_session_title")  # as the previous release left it
    db["meta"].insert({"id": old.name, "created": 1.0, "updated": 1.0, "stage": "plan"})
    assert "title" not in db["meta"].columns_dict
    db.close()

    store = SessionStore(home)
    (summary,) = store.list()
    assert summary["id"] == old.name and summary["stage"] == "plan" and summary["title"] == ""
    store.rename(old.name, "From last year")
    assert SessionStore(home).list()[0]["title"] == "From last year"
    db = Database(old / DB_NAME)
    applied = [m.name for m in MIGRATIONS.applied(db)]
    assert applied[-1] == "m003_session_title"
    db.close()


# ---------------------------------------------------------------- picker


def titles(home) -> dict[str, str]:
    return {s["id"]: s["title"] for s in SessionStore(home).list()}


def screen_text(app: TunesmithApp) -> str:
    """What the active screen shows, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def picker_ids(app: TunesmithApp) -> list[str]:
    option_list = app.screen.query_one(OptionList)
    return [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]


def picker_line(app: TunesmithApp, session_id: str) -> str:
    """The screen line that shows `session_id`'s entry."""
    lines = [line for line in screen_text(app).splitlines() if session_id in line]
    assert len(lines) == 1, screen_text(app)
    return lines[0]


async def start(app: TunesmithApp, pilot) -> None:
    """Start a new session (Escape on the picker offered at start), wait for its opening call,
    then open the picker."""
    await pilot.pause()
    assert isinstance(app.screen, SessionPicker) and app.screen.offer
    await pilot.press("escape")
    await settle(app, pilot)
    await pilot.press("ctrl+o")
    await pilot.pause()
    assert isinstance(app.screen, SessionPicker)


async def highlight(app: TunesmithApp, pilot, session_id: str) -> None:
    option_list = app.screen.query_one(OptionList)
    option_list.highlighted = option_list.get_option_index(session_id)
    await pilot.pause()


def spy_notes(app: TunesmithApp, monkeypatch) -> list[str]:
    """Notifications the app shows from now on (still shown)."""
    notes: list[str] = []
    real = app.notify

    def notify(message, **kw):
        notes.append(message)
        return real(message, **kw)

    monkeypatch.setattr(app, "notify", notify)
    return notes


async def test_r_renames_the_highlighted_session(home):
    other = make_session(home, "Old name")
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await start(app, pilot)
        assert "r renames" in screen_text(app) and "d deletes" in screen_text(app)
        assert "Old name" in picker_line(app, other)
        await highlight(app, pilot, other)

        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, TitleScreen)
        field = app.screen.query_one("#title", Input)
        assert field.has_focus and field.value == "Old name"
        field.value = ""
        await pilot.press(*"Spam filter")
        await pilot.press("enter")
        await pilot.pause()

        assert isinstance(app.screen, SessionPicker)
        line = picker_line(app, other)
        assert "Spam filter" in line and "Old name" not in line
        assert app.screen.query_one(OptionList).highlighted_option.id == other
        assert titles(home)[other] == "Spam filter"

        # an empty title is explained in the dialog; Escape then leaves the title as it was
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one("#title", Input).value = "   "
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TitleScreen)
        assert "cannot be empty" in str(app.screen.query_one("#title-hint", Static).content)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, SessionPicker)
        assert "Spam filter" in picker_line(app, other)
        assert titles(home)[other] == "Spam filter"


async def test_d_deletes_after_confirmation_and_escape_keeps(home):
    gone = make_session(home, "Scratch")
    kept = make_session(home)
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await start(app, pilot)
        await highlight(app, pilot, gone)

        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDeleteScreen)
        assert f"Delete session {gone} (Scratch)?" in screen_text(app)
        question = str(app.screen.query_one("#delete-text", Static).content)
        assert question == (
            f"Delete session {gone} (Scratch)? Its conversation, plans and runs are removed."
        )
        assert app.screen.focused is not None and app.screen.focused.id == "delete-no"
        await pilot.click("#delete-yes")
        await pilot.pause()

        assert isinstance(app.screen, SessionPicker)
        assert gone not in picker_ids(app) and gone not in screen_text(app)
        assert not (home / gone).exists()
        assert app.screen.query_one(OptionList).highlighted is not None

        # the delete key asks too; Escape keeps the session, and so does Enter on Keep
        await highlight(app, pilot, kept)
        for answer in ("escape", "enter"):
            await pilot.press("delete")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDeleteScreen)
            await pilot.press(answer)
            await pilot.pause()
            assert isinstance(app.screen, SessionPicker)
            assert kept in picker_ids(app) and (home / kept / DB_NAME).exists()


async def test_d_refuses_the_open_session_and_a_running_one(home, monkeypatch):
    running = make_session(home)
    run_dir = home / running / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": os.getpid()})
    session = SessionStore(home).open(running)
    session.add_run("run-1", run_dir)
    session.close()

    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await start(app, pilot)
        notes = spy_notes(app, monkeypatch)
        current = app.conversation.session_id
        for session_id, why in ((current, "is open"), (running, "run still going")):
            await highlight(app, pilot, session_id)
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, SessionPicker)
            assert why in notes[-1] and session_id in notes[-1] and "\n" not in notes[-1]
            assert session_id in picker_ids(app) and (home / session_id / DB_NAME).exists()


def test_the_sessions_command_shows_titles(home):
    from assistant.cli import main

    store = SessionStore(home)
    titled = Conversation.start(store)
    titled.session.close()
    plain = Conversation.start(store)
    plain.session.close()
    store.rename(titled.session_id, "irony, first try")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sessions", "--home", str(home)]) == 0
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()}
    assert '"irony, first try"' in lines[titled.session_id]
    assert '"' not in lines[plain.session_id]
