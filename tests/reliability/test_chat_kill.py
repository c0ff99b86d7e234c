"""No shown turn lost (issue 8, point 1, second sentence): every turn the headless chat or the
app shows is already committed to session.db, so a SIGKILL at any moment loses nothing that
was shown, and the session reopens and goes on."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_app import settle
from textual.widgets import Input

from assistant.app import TunesmithApp
from assistant.store import SessionStore

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    "/help",
    "/status",
    "/nonsense",
    "I want to classify support tickets by urgency",
    "/status",
    "/help",
    "/status",
    "/back",
    "/status",
]


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TUNESMITH_HOME": str(home)}


def transcript(home: Path, session_id: str) -> str:
    """What the headless chat prints for the session's saved turns, in the same layout."""
    session = SessionStore(home).open(session_id, read_only=True)
    try:
        turns = session.turns()
    finally:
        session.close()
    out = f"[session {session_id}]\n"
    for turn in turns:
        out += f"> {turn['text']}\n" if turn["role"] == "user" else f"{turn['text']}\n\n"
    return out


def chat_killed(home: Path, echoes: int | None = None, after_s: float | None = None) -> str:
    """Start a headless chat, give it every line of LINES at once, and SIGKILL it once it has
    echoed `echoes` lines (or `after_s` seconds after it started); everything it printed."""
    chat = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env_for(home),
        cwd=ROOT,
    )
    chat.stdin.write(("\n".join(LINES) + "\n").encode())
    chat.stdin.flush()  # stdin stays open: the chat waits for more instead of ending
    printed = b""
    try:
        if after_s is not None:
            time.sleep(after_s)
        else:
            seen = 0
            while seen < echoes:
                line = chat.stdout.readline()
                assert line, "the chat ended before the kill"
                printed += line
                seen += line.startswith(b"> ")
        chat.send_signal(signal.SIGKILL)
        printed += chat.stdout.read()  # what it wrote before it died
    finally:
        chat.kill()
        chat.wait()
    return printed.decode()


def check_nothing_shown_was_lost(home: Path, printed: str) -> str | None:
    """Every byte printed is the start of the saved transcript; the session id (None when
    it was killed before saying it)."""
    if not printed.startswith("[session "):
        return None
    session_id = printed.split("]", 1)[0].split()[1]
    saved = transcript(home, session_id)
    assert saved.startswith(printed), (printed[-500:], saved[-500:])
    return session_id


@pytest.mark.parametrize("echoes", [1, 4, 7])
def test_a_killed_headless_chat_lost_no_turn_it_showed(home, echoes):
    printed = chat_killed(home, echoes=echoes)
    session_id = check_nothing_shown_was_lost(home, printed)
    assert session_id is not None and printed.count("\n> ") >= echoes

    # the session reopens and carries on where it was
    before = transcript(home, session_id)
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless", "--session", session_id],
        input="/status\n",
        capture_output=True,
        text=True,
        env=env_for(home),
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Welcome back" in out.stdout and "> /status" in out.stdout
    after = transcript(home, session_id)
    assert (
        after.startswith(before)
        and after.count("\n> /status\n") == before.count("\n> /status\n") + 1
    )


def test_a_headless_chat_killed_at_random_moments_lost_nothing_it_showed(home):
    rng = random.Random(8)
    for _ in range(3):
        printed = chat_killed(home, after_s=rng.uniform(0.2, 3.0))
        check_nothing_shown_was_lost(home, printed)
    for summary in SessionStore(home).list():  # every session left behind still reads
        assert "error" not in summary


async def test_the_app_shows_a_turn_only_once_it_is_saved(home):
    """Each message the chat shows is in the store at the moment it is shown."""
    app = TunesmithApp(home)
    shown_unsaved: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        real_show = app._show

        async def show(messages):
            conversation = app.conversation
            if conversation is not None:
                reader = SessionStore(home).open(conversation.session_id, read_only=True)
                try:
                    saved = [t["text"] for t in reader.turns()]
                finally:
                    reader.close()
                shown_unsaved.extend(m.source for m in messages if m.source not in saved)
            await real_show(messages)

        app._show = show
        for text in ("/status", "/nonsense", "I want to classify tickets by urgency"):
            await settle(app, pilot)
            app.query_one("#prompt", Input).value = text
            await pilot.press("enter")
        await settle(app, pilot)
        shown = [m.source for m in app.query("ChatMessage")]
        assert "/status" in shown and "/nonsense" in shown
    assert shown_unsaved == []
