"""The app leaves when its terminal goes away (a closed window, a killed tmux): Textual's input
thread otherwise spins on the hung-up terminal and the app lived on at full CPU, holding the
session's lock."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_exits_when_its_terminal_closes(home):
    master, slave = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color", "COLUMNS": "100"}
    app = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "--home", str(home)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    try:
        shown, deadline = b"", time.monotonic() + 60
        while b"Type a message" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 65536)
        assert b"Type a message" in shown, shown[-500:]
        os.write(master, b"\r")  # one turn first: the case that was left spinning
        time.sleep(2)
        os.close(master)  # the window closes
        master = None
        app.wait(timeout=30)
    finally:
        if master is not None:
            os.close(master)
        if app.poll() is None:
            app.kill()
            app.wait()
            raise AssertionError("the app was still running after its terminal closed")
