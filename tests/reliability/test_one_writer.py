"""One writer (issue 8, point 4, the session part): a process that opens a session for writing
holds its lock; a second app or headless chat is told "Session X is open in another tunesmith
(pid N)" and offered read-only viewing, in which nothing is written. Listing, export and report
keep working; rename and delete refuse; a SIGKILLed holder leaves no stale lock."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app import settle
from textual.widgets import Input, OptionList

from assistant.app import TunesmithApp
from assistant.cli import main
from assistant.conversation import Conversation
from assistant.store import DB_NAME, SessionLocked, SessionStore
from assistant.widgets import ReadOnlyScreen, SessionPicker, TitleScreen
from tuning_core.errors import SessionError

ROOT = Path(__file__).resolve().parents[2]
SIZE = (120, 40)
HOLDER = """
import sys
from assistant.store import SessionStore
session = SessionStore(sys.argv[1]).open(sys.argv[2])
print("holding", flush=True)
sys.stdin.read()
"""


def saved_session(home: Path) -> str:
    conversation = Conversation.start(SessionStore(home))
    conversation.opening()
    conversation.say("/status")
    conversation.close()
    return conversation.session_id


@contextlib.contextmanager
def held(home: Path, session_id: str) -> Iterator[subprocess.Popen]:
    """Another process holding `session_id` open for writing until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home), session_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def state_of(home: Path, session_id: str) -> tuple[int, float]:
    """(turns, updated) of a session, read without its lock."""
    session = SessionStore(home).open(session_id, read_only=True)
    try:
        return session.turn_count(), session.meta()["updated"]
    finally:
        session.close()


def test_two_writers_in_one_process_conflict_too(home):
    """flock locks belong to the open file description: a second open here is refused."""
    store = SessionStore(home)
    first = store.create()
    with pytest.raises(SessionLocked) as caught:
        store.open(first.id)
    assert caught.value.pid == os.getpid()
    assert str(caught.value).startswith(f"Session {first.id} is open in another tunesmith (pid ")
    reader = store.open(first.id, read_only=True)  # reading needs no lock
    assert reader.turn_count() == 0
    reader.close()
    first.close()
    store.open(first.id).close()  # closed: the lock is free again


def test_the_lock_is_not_inherited_by_a_child_process(home):
    """A training worker started from the app outlives it; it must not keep the session."""
    store = SessionStore(home)
    session = store.create()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        session.close()
        store.open(session.id).close()
    finally:
        child.kill()
        child.wait()


def test_a_second_process_is_told_and_reads_only(home):
    session_id = saved_session(home)
    store = SessionStore(home)
    before = state_of(home, session_id)
    with held(home, session_id) as holder:
        with pytest.raises(SessionLocked) as caught:
            store.open(session_id)
        assert caught.value.pid == holder.pid
        assert f"Session {session_id} is open in another tunesmith (pid {holder.pid})" in str(
            caught.value
        )
        reader = store.open(session_id, read_only=True)
        try:
            assert reader.turn_count() == before[0]
            with pytest.raises(SessionError, match=r"^read-only"):
                reader.add_turn("user", "sneaky")
        finally:
            reader.close()

        # listing, report and export still work; rename and delete refuse
        (summary,) = store.list()
        assert summary["open_by"]["pid"] == holder.pid
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert main(["sessions", "--home", str(home)]) == 0
            assert main(["--home", str(home), "report", session_id]) == 1
        assert f"open in pid {holder.pid}" in out.getvalue()
        assert "no finished run" in err.getvalue() and "open in another" not in err.getvalue()
        with pytest.raises(SessionLocked):
            store.rename(session_id, "A title")
        with pytest.raises(SessionLocked):
            store.delete(session_id)
        assert (home / session_id / DB_NAME).exists()

        holder.kill()  # SIGKILL: the kernel drops its lock with it
        holder.wait()
        session = store.open(session_id)
        session.close()
    assert state_of(home, session_id) == before  # nothing was written while it was held
    assert "open_by" not in store.list()[0]


def test_a_second_headless_chat_gets_a_read_only_view(home):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TUNESMITH_HOME": str(home)}
    cli = [sys.executable, "-m", "assistant.cli", "chat", "--headless"]
    first = subprocess.Popen(
        cli, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        session_id = first.stdout.readline().strip("[]\n").split()[1]
        first.stdin.write("/status\n")
        first.stdin.flush()
        while not first.stdout.readline().startswith("**Stage:**"):
            pass  # the reply to /status is printed, so it is saved
        before = state_of(home, session_id)
        assert before[0] == 3  # the greeting, /status and its answer
        second = subprocess.run(
            [*cli, "--session", session_id],
            input="/status\nlearning rate 1e-3\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr
        notice = [line for line in second.stderr.splitlines() if "tunesmith:" in line]
        assert notice == [
            f"tunesmith: Session {session_id} is open in another tunesmith (pid {first.pid}): "
            "tunesmith chat --headless; opening it read-only."
        ]
        out = second.stdout
        assert out.splitlines()[0] == f"[session {session_id} read-only]"
        assert "Read-only view" in out and out.count("**Stage:** task") == 2
        answers = out.split("> learning rate 1e-3", 1)[1].strip().splitlines()
        assert answers[0].startswith("read-only: Session ") and len(answers) == 1
        assert state_of(home, session_id) == before
        # the first chat is still the writer and carries on
        first.stdin.write("/help\n")
        first.stdin.close()
        assert first.wait(timeout=120) == 0
        assert state_of(home, session_id)[0] == before[0] + 2
    finally:
        first.kill()
        first.wait()


async def test_the_app_offers_a_read_only_view(home):
    session_id = saved_session(home)
    before = state_of(home, session_id)
    with held(home, session_id) as holder:
        app = TunesmithApp(home, session_id)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ReadOnlyScreen)
            assert f"is open in another tunesmith (pid {holder.pid})" in app.screen.message
            await pilot.click("#readonly-view")
            await settle(app, pilot)
            assert app.conversation.read_only and "read-only" in app.sub_title
            chat = [m.source for m in app.query("ChatMessage")]
            assert len(chat) == before[0] + 2  # the saved turns, the notice, the status
            assert "Read-only view" in chat[-2]
            for text, expected in (("/status", "Stage"), ("5 epochs", "read-only: ")):
                app.query_one("#prompt", Input).value = text
                await pilot.press("enter")
                await settle(app, pilot)
                reply = [m.source for m in app.query("ChatMessage")][-1]
                assert expected in reply, reply
        assert state_of(home, session_id) == before

        # Cancel on a session named at start: tunesmith stops with the message
        app = TunesmithApp(home, session_id)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.click("#readonly-cancel")
            await pilot.pause()
        assert app.return_code == 1 and app.conversation is None


async def test_the_sessions_browser_refuses_to_rename_or_delete_a_session_open_elsewhere(
    home, monkeypatch
):
    other = saved_session(home)
    with held(home, other) as holder:
        app = TunesmithApp(home)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("escape")  # a new session, then the picker
            await settle(app, pilot)
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert isinstance(app.screen, SessionPicker)
            options = app.screen.query_one(OptionList)
            assert f"open in pid {holder.pid}" in str(options.get_option(other).prompt)
            current = app.conversation.session_id
            assert "(open)" in str(options.get_option(current).prompt)
            notes: list[str] = []
            monkeypatch.setattr(app.screen, "notify", lambda message, **kw: notes.append(message))
            options.highlighted = options.get_option_index(other)
            for key in ("d", "r"):
                await pilot.press(key)
                await pilot.pause()
                assert isinstance(app.screen, SessionPicker)
                assert not isinstance(app.screen, TitleScreen)
                assert (
                    f"Session {other} is open in another tunesmith (pid {holder.pid})"
                    in (notes[-1])
                )
            assert (home / other / DB_NAME).exists()
            # the app's own open session can still be renamed (through its own connection)
            SessionStore(home).rename(current, "Mine")
            assert app.conversation.session.meta()["title"] == "Mine"


async def test_a_read_only_view_follows_what_the_writer_says(home):
    """The app viewing a session that a headless chat (or an agent through `tunesmith mcp`)
    holds shows that writer's new turns, and its plan stage, as they are saved."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TUNESMITH_HOME": str(home)}
    session_id = saved_session(home)
    writer = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless", "--session", session_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        writer.stdout.readline()  # [session ...]: it holds the lock now
        app = TunesmithApp(home, session_id)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.click("#readonly-view")
            await settle(app, pilot)
            shown = len(app.query("ChatMessage"))
            writer.stdin.write("classify support tickets by urgency\n")
            writer.stdin.flush()
            for _ in range(100):  # the view catches up once a second
                await pilot.pause(0.1)
                chat = [m.source for m in app.query("ChatMessage")]
                if len(chat) >= shown + 2:
                    break
            assert "classify support tickets by urgency" in chat[shown:][0], chat[shown:]
            assert app.conversation.state.stage == "data"  # the writer's state, reloaded
            assert app.conversation.read_only
    finally:
        writer.kill()
        writer.wait()
