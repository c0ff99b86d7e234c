"""Damaged sessions (issue 8, point 3): a session.db overwritten or cut short, a session written
by a newer tunesmith and a session whose run folder has gone each give one message naming the
session, in `tunesmith sessions`, the app's sessions browser and when opened, never a
traceback; every other session still lists and opens. A newer schema is neither migrated nor
written. And the schema migrates from each older version with its rows intact."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database
from test_app import settle
from textual.widgets import OptionList

from assistant.app import TunesmithApp
from assistant.cli import main
from assistant.conversation import Conversation
from assistant.monitor import RunMonitorScreen
from assistant.store import DB_NAME, MIGRATION_NAMES, MIGRATIONS, Session, SessionStore
from assistant.widgets import SessionPicker
from tuning_core.errors import SessionError
from tuning_core.plan import Plan

SIZE = (120, 40)
FUTURE = "m999_from_a_newer_tunesmith"


def saved_session(home: Path, turns: int = 3, stage: str | None = None, run: bool = False) -> str:
    """A closed session with a greeting and `turns` more turns; with `run`, a run (stage
    `stage`) whose folder `runs/run-1` is never made (as if deleted)."""
    conversation = Conversation.start(SessionStore(home))
    conversation.opening()
    for i in range(turns):
        conversation.session.add_turn("user" if i % 2 else "assistant", f"turn {i} " + "x" * 900)
    if run:
        state = conversation.state
        run_dir = conversation.session.runs_dir / "run-1"
        state.stage, state.run_id, state.run_dir = stage or "run", "run-1", str(run_dir)
        state.plan = Plan().to_dict() | {"metric": "macro_f1"}
        conversation.session.add_run("run-1", run_dir)
        conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.close()
    return conversation.session_id


def overwrite_header(home: Path, session_id: str) -> None:
    with open(home / session_id / DB_NAME, "r+b") as fh:
        fh.write((b"not a db! " * 10)[:100])


def cut_in_half(home: Path, session_id: str) -> None:
    path = home / session_id / DB_NAME
    os.truncate(path, path.stat().st_size // 2)


def from_the_future(home: Path, session_id: str) -> None:
    db = Database(home / session_id / DB_NAME)
    db["_sqlite_migrations"].insert(
        {"migration_set": MIGRATIONS.name, "name": FUTURE, "applied_at": "2031-01-01"}
    )
    db["meta"].add_column("colour", str)  # what that newer release changed
    db.close()


def fingerprint(home: Path, session_id: str) -> str:
    return hashlib.sha256((home / session_id / DB_NAME).read_bytes()).hexdigest()


@pytest.fixture
def sessions(home) -> dict[str, str]:
    """Names to ids: a good session, three damaged ones and one whose run folder is missing."""
    ids = {
        "good": saved_session(home),
        "garbage": saved_session(home, turns=300),
        "half": saved_session(home, turns=300),
        "newer": saved_session(home),
        "no_run_folder": saved_session(home, run=True),
    }
    overwrite_header(home, ids["garbage"])
    cut_in_half(home, ids["half"])
    from_the_future(home, ids["newer"])
    return ids


DAMAGE = {
    "garbage": "not an SQLite database",
    "half": "cut short",
    "newer": "written by a newer tunesmith",
}


def test_the_store_names_each_damaged_session_and_lists_and_opens_the_others(home, sessions):
    store = SessionStore(home)
    listed = {s["id"]: s for s in store.list()}
    assert set(listed) == set(sessions.values())
    for name, phrase in DAMAGE.items():
        error = listed[sessions[name]]["error"]
        assert sessions[name] in error and phrase in error and "\n" not in error
        with pytest.raises(SessionError) as caught:
            store.open(sessions[name])
        assert sessions[name] in caught.value.message and phrase in caught.value.message
        with pytest.raises(SessionError, match=phrase):
            store.open(sessions[name], read_only=True)
    assert listed[sessions["good"]]["stage"] == "task"
    run = listed[sessions["no_run_folder"]]["last_run"]
    assert run["status"] == "missing" and "run-1" in run["message"]
    for name in ("good", "no_run_folder"):
        session = store.open(sessions[name])
        assert session.turn_count() == 4
        session.close()


def test_damage_anywhere_in_the_file_is_named_when_opened(home):
    """The listing reads only the header and a few rows; opening checks every page."""
    store = SessionStore(home)
    session_id = saved_session(home, turns=300)
    path = home / session_id / DB_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = b"\x07" * page  # a page of turns, trampled
    path.write_bytes(bytes(data))
    with pytest.raises(SessionError, match=f"Session {session_id} cannot be opened"):
        store.open(session_id)


def test_a_newer_schema_is_neither_migrated_nor_written(home, sessions, monkeypatch):
    newer = sessions["newer"]
    before = fingerprint(home, newer)
    store = SessionStore(home)
    store.list()
    for read_only in (False, True):
        with pytest.raises(SessionError, match="update tunesmith"):
            store.open(newer, read_only=read_only)
    with pytest.raises(SessionError):
        store.rename(newer, "A title")
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["--home", str(home), "chat", "--headless", "--session", newer]) == 1
    assert fingerprint(home, newer) == before
    db = Database(home / newer / DB_NAME)
    applied = [m.name for m in MIGRATIONS.applied(db)]
    db.close()
    assert applied == [*MIGRATION_NAMES, FUTURE]


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_the_cli_names_each_damaged_session_without_a_traceback(home, sessions, monkeypatch):
    code, out, err = run_cli("sessions", "--home", str(home))
    assert code == 0 and "Traceback" not in out + err
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name, phrase in DAMAGE.items():
        assert phrase in lines[sessions[name]]
    assert "missing" in lines[sessions["no_run_folder"]]
    assert "stage task" in lines[sessions["good"]]
    code, out, _ = run_cli("sessions", "--json", "--home", str(home))
    assert len(json.loads(out)) == len(sessions)

    monkeypatch.setattr(sys, "stdin", io.StringIO("/status\n"))
    for name, phrase in DAMAGE.items():
        for verb in (
            ["chat", "--headless", "--session", sessions[name]],
            ["report", sessions[name]],
        ):
            code, out, err = run_cli("--home", str(home), *verb)
            assert code == 1 and "Traceback" not in out + err
            assert err.startswith(f"tunesmith: Session {sessions[name]}") and phrase in err
            assert err.count("\n") == 1
    code, _, err = run_cli("--home", str(home), "report", sessions["no_run_folder"])
    assert code == 1 and "folder of its run is missing" in err


def test_a_missing_run_folder_is_said_once_and_the_session_goes_on(home, sessions):
    """Headless, in a real process (following a run whose folder has gone must not hang)."""
    session_id = sessions["no_run_folder"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TUNESMITH_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless", "--session", session_id],
        input="/status\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "The folder of run `run-1` is missing" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    conversation = Conversation.start(SessionStore(home), session_id)
    try:
        assert conversation.state.stage == "plan" and not conversation.running
        assert conversation.session.runs()[0]["status"] == "missing"
    finally:
        conversation.close()


async def test_the_app_names_a_damaged_session_it_is_asked_to_open(home, sessions):
    for name, phrase in DAMAGE.items():
        app = TunesmithApp(home, sessions[name])
        said = []

        def exit(return_code=0, message=None, said=said, real_exit=app.exit):
            said.append(message)
            real_exit(return_code=return_code, message=message)

        app.exit = exit
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
        assert app.return_code == 1
        (message,) = said
        assert message.startswith(f"tunesmith: Session {sessions[name]}") and phrase in message


async def test_the_sessions_browser_shows_damaged_sessions_with_their_message(home, sessions):
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SessionPicker)
        options = app.screen.query_one(OptionList)
        for name, phrase in DAMAGE.items():
            option = options.get_option(sessions[name])
            assert option.disabled and phrase in str(option.prompt)
            assert sessions[name] in str(option.prompt)
        for name in ("good", "no_run_folder"):
            assert not options.get_option(sessions[name]).disabled
        # the session whose run folder is missing opens; its monitor says what is missing
        options.highlighted = options.get_option_index(sessions["no_run_folder"])
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.conversation.session_id == sessions["no_run_folder"]
        assert "The folder of run `run-1` is missing" in app.conversation.history()[-1]["text"]
        notes = []
        app.notify = lambda message, **kw: notes.append(message)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not isinstance(app.screen, RunMonitorScreen)
        assert notes and "missing" in notes[-1] and "\n" not in notes[-1]


# ---------------------------------------------------------------- migrations


@pytest.mark.parametrize("stop_before", MIGRATION_NAMES[1:])
def test_an_older_schema_migrates_with_its_rows(home, stop_before):
    """A database as each older release left it (only m001; m001 and m002; ...) opens with the
    current code: every row is still there and the newer tables and columns exist."""
    folder = home / "20200101-000000-0001"
    folder.mkdir()
    db = Database(folder / DB_NAME)
    db.enable_wal()
    MIGRATIONS.apply(db, stop_before=stop_before)
    db["meta"].insert(
        {"id": folder.name, "created": 1.0, "updated": 2.0, "stage": "plan", "task": "spam"}
    )
    db["turns"].insert_all(
        {"n": n, "role": "user", "text": f"turn {n}", "time": float(n), "kind": "text"}
        for n in range(1, 6)
    )
    db["plans"].insert({"version": 1, "plan": '{"epochs": 3}', "reasons": "{}", "source": "x"})
    db["runs"].insert({"id": "run-1", "dir": str(folder / "runs" / "run-1"), "status": "done"})
    had_datasets = db["datasets"].exists()
    if had_datasets:
        db["datasets"].insert({"version": 1, "fix": "dedupe", "what": "w", "dir": "d"})
    db.close()

    session = SessionStore(home).open(folder.name)
    try:
        assert [t["text"] for t in session.turns()] == [f"turn {n}" for n in range(1, 6)]
        assert session.meta()["task"] == "spam" and session.meta()["title"] is None
        assert session.plans()[0]["plan"] == '{"epochs": 3}'
        assert session.runs()[0]["id"] == "run-1"
        assert len(session.data_versions()) == (1 if had_datasets else 0)
        assert "title" in session.db["meta"].columns_dict and session.db["datasets"].exists()
        assert [m.name for m in MIGRATIONS.applied(session.db)] == MIGRATION_NAMES
        session.set_title("Migrated")
        session.save_data_version({"version": 2, "fix": "f", "what": "w", "dir": "d"})
    finally:
        session.close()
    (summary,) = SessionStore(home).list()
    assert summary["title"] == "Migrated" and summary["stage"] == "plan"


def test_a_read_only_view_of_an_older_schema_reads_it_as_it_is(home):
    """Read-only never migrates: an old database reads with the columns it has."""
    folder = home / "20200101-000000-0002"
    folder.mkdir()
    db = Database(folder / DB_NAME)
    MIGRATIONS.apply(db, stop_before=MIGRATION_NAMES[1])
    db["meta"].insert({"id": folder.name, "stage": "data"})
    db.close()
    session = Session(folder, read_only=True)
    try:
        assert session.summary()["stage"] == "data" and session.data_versions() == []
        assert [m.name for m in MIGRATIONS.applied(session.db)] == MIGRATION_NAMES[:1]
    finally:
        session.close()


async def test_the_follow_timer_firing_while_a_session_opens_waits_for_the_opening(
    home, sessions, monkeypatch
):
    """The run-follow timer can fire while `_open` awaits (showing the turns): it must not
    finish the missing run before the opening has said so, or the opening says only
    "Welcome back" (a CI run failed this way under load)."""
    shown = TunesmithApp._show

    async def show_then_tick(self, messages):
        self._follow_run()  # the 0.5 s timer, fired in the middle of opening
        await shown(self, messages)

    monkeypatch.setattr(TunesmithApp, "_show", show_then_tick)
    app = TunesmithApp(home, session_id=sessions["no_run_folder"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        texts = [turn["text"] for turn in app.conversation.history()]
        assert "The folder of run `run-1` is missing" in texts[-1]
        assert not any(t.startswith("Welcome back") for t in texts[-2:])
