"""Benchmark: how fast the app starts, and how fast a keypress shows while a run trains.

Everything goes through a real pseudo-terminal (`os.openpty`, 120x40 set with TIOCSWINSZ,
TERM=xterm-256color, the pty as the app's controlling terminal), with `.venv/bin/tunesmith`
started the way a person starts it, in a fresh temporary TUNESMITH_HOME.

1. Start time: from spawning `tunesmith` to the first output in which the ready screen has
   drawn both the prompt's placeholder (`assistant.app.PLACEHOLDER`, less its first letter,
   which the cursor styles apart) and the footer's `^q Quit`. Each start gets its own empty
   home (a new session), and the app is closed with ctrl+q (a confirmation, if one shows, is
   answered with a second ctrl+q; the process group is killed only as a fallback). Target:
   median under 1.0 s.
2. Keypress latency while a run trains: a real worker (`tuning_core.runs.start_worker`) trains
   the embedded MiniLM on the demo CSV (assistant/demo/posts.csv), and a saved session whose
   stage is "run" points at it, so `tunesmith --session ID` follows the run (run panel, events
   read every 0.5 s) while the worker keeps the CPU busy. Once the panel shows `step N/M`, a
   `§` is typed into the empty prompt; the latency is from the write to the pty to the first
   output holding a `§` (its UTF-8 bytes; nothing else on screen has one). A backspace then
   empties the prompt again, and the next press waits for the placeholder to come back, so
   every press is the same one-character edit and no older `§` can be taken for a new one.
   Target: every press within 100 ms (median, p90 and max are reported). Afterwards the app
   is closed, the worker stopped (`runs.stop_run`, SIGTERM) and waited for.

    .venv/bin/python bench/tui_latency.py                     # 5 starts, 30 presses
    .venv/bin/python bench/tui_latency.py --repeats 2 --presses 5 --epochs 3

Writes bench/results/tui_latency.json and a dated section in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import bisect
import errno
import fcntl
import math
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the worker inherits it

from benchlib import environment, record  # noqa: E402

from assistant.app import PLACEHOLDER  # noqa: E402

TUNESMITH = ROOT / ".venv" / "bin" / "tunesmith"
DEMO_CSV = ROOT / "assistant" / "demo" / "posts.csv"
COLS, ROWS = 120, 40
CTRL_Q, BACKSPACE = b"\x11", b"\x7f"
KEY = "§"
KEY_BYTES = KEY.encode()
# any run of escape sequences (colours, cursor moves) between two pieces of text
ESC = rb"(?:\x1b\[[0-9;?]*[A-Za-z])*"
# the ready screen: the prompt's placeholder (its first letter sits under the cursor, styled
# apart) and the footer's quit key; the idle prompt shows the same placeholder again
PLACEHOLDER_RE = re.compile(re.escape(PLACEHOLDER[1:40].encode()))
FOOTER_RE = re.compile(rb"\^q" + ESC + rb" ?" + ESC + rb"Quit")  # the compact footer too
RUN_LINE_RE = re.compile(rb"step \d+/\d+")
CONFIRM_RE = re.compile(rb"keeps running in its own process")


# ------------------------------------------------------------------ a program on a pty


def _take_terminal() -> None:  # runs in the child after setsid: the pty becomes its tty
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A program on a pseudo-terminal of a fixed size: keys in, output kept with the time each
    chunk was read (`time.perf_counter`), so a match can be dated to the read that completed it.
    The program leads its own session and process group."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, size=(COLS, ROWS)):
        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.master = master
        self.output = bytearray()
        self._ends: list[int] = []  # output length after each read ...
        self._times: list[float] = []  # ... and when that read returned
        self.eof = False
        self.spawned = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=str(cwd),
                start_new_session=True,
                preexec_fn=_take_terminal,
                close_fds=True,
            )
        finally:
            os.close(slave)

    def pump(self, timeout: float) -> None:
        """Read what the program wrote, waiting at most `timeout` s for the first byte."""
        deadline = time.perf_counter() + timeout
        while not self.eof:
            left = deadline - time.perf_counter()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not ready:
                return
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError as exc:  # EIO: every slave end is closed, the program is gone
                if exc.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                self.eof = True
                return
            self.output += chunk
            self._ends.append(len(self.output))
            self._times.append(time.perf_counter())
            deadline = time.perf_counter()  # keep reading only what is already there

    def time_at(self, offset: int) -> float:
        """When the byte at `offset` was read."""
        return self._times[bisect.bisect_right(self._ends, offset)]

    def wait_for(self, pattern: re.Pattern[bytes], since: int, timeout: float) -> re.Match:
        """The first match of `pattern` that ends after byte `since` (its time: `time_at`)."""
        deadline = time.perf_counter() + timeout
        lookback = 256  # a match may straddle `since` only by this much
        while True:
            start = max(0, since - lookback)
            for match in pattern.finditer(self.output, start):
                if match.end() > since:
                    return match
            left = deadline - time.perf_counter()
            if left <= 0 or self.eof:
                state = "exited" if self.eof else "timed out"
                raise TimeoutError(f"{state} waiting for {pattern.pattern!r}")
            self.pump(min(left, 0.05))

    def write(self, data: bytes) -> tuple[int, float]:
        """Send keys; the output length at that moment and the time just after the write."""
        self.pump(0)  # everything already written by the program counts as before the keys
        offset = len(self.output)
        os.write(self.master, data)
        return offset, time.perf_counter()

    def running(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 10.0) -> str:
        """Quit with ctrl+q (twice if the app asks for confirmation); kill the process group
        if it will not go. How it ended: "quit", "confirmed" or "killed"."""
        how = "quit"
        if self.running():
            since, _ = self.write(CTRL_Q)
            deadline = time.perf_counter() + timeout
            while self.running() and time.perf_counter() < deadline:
                self.pump(0.05)
                if how == "quit" and CONFIRM_RE.search(self.output, max(0, since - 64)):
                    self.write(CTRL_Q)
                    how = "confirmed"
        if self.running():
            how = "killed"
            self._kill_group(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
        self.proc.wait(10)
        if group_alive(self.proc.pid):  # nothing of the app may outlive it
            how += "+group killed"
            self._kill_group(signal.SIGKILL)
        self.pump(0)
        os.close(self.master)
        return how

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def app_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", TUNESMITH_HOME=str(home))
    return env


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# ------------------------------------------------------------------ 1. start time


def start_times(repeats: int, tmp: Path) -> tuple[list[float], list[str]]:
    seconds, closes = [], []
    for r in range(repeats):
        home = tmp / f"start-{r}"
        term = Terminal([str(TUNESMITH)], app_env(home), cwd=tmp)
        try:
            placeholder = term.wait_for(PLACEHOLDER_RE, 0, timeout=60)
            footer = term.wait_for(FOOTER_RE, 0, timeout=60)
            ready = max(term.time_at(placeholder.end() - 1), term.time_at(footer.end() - 1))
            seconds.append(ready - term.spawned)
        finally:
            closes.append(term.close())
        print(f"start {r + 1}/{repeats}: {seconds[-1]:.3f} s, closed: {closes[-1]}", flush=True)
    return seconds, closes


# ------------------------------------------------------------------ 2. keypress latency


def running_session(home: Path, epochs: float) -> tuple[str, Path, int]:
    """A session whose stage is "run", following a real worker that trains MiniLM on the
    demo CSV: the session id, the run folder and the worker's pid."""
    from assistant.conversation import Conversation
    from assistant.planner import TASK
    from assistant.store import SessionStore
    from tuning_core import runs
    from tuning_core.data import inspect_data
    from tuning_core.plan import EMBEDDED_MODEL_ID, Plan

    conversation = Conversation.start(SessionStore(home))
    run_id = "run-1"
    run_dir = conversation.session.runs_dir / run_id
    plan = Plan(base_model=EMBEDDED_MODEL_ID, epochs=epochs, early_stopping_patience=0)
    plan = plan.validate().to_dict()
    spec = inspect_data(DEMO_CSV).to_dict()
    runs.prepare_run(run_dir, plan, spec)
    pid = runs.start_worker(run_dir)
    state = conversation.state
    state.stage, state.run_id, state.run_dir, state.run_count = "run", run_id, str(run_dir), 1
    state.task, state.spec, state.plan, state.source = TASK, spec, plan, str(DEMO_CSV)
    conversation.session.add_turn("user", f"classify these posts by sentiment: {DEMO_CSV}")
    conversation.session.add_turn("assistant", f"Training `{run_id}` started.")
    conversation.session.add_run(run_id, run_dir)
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()
    return conversation.session_id, run_dir, pid


def stop_worker(run_dir: Path, pid: int, timeout: float = 120.0) -> str:
    """SIGTERM (the worker checkpoints and exits); SIGKILL to its group if it will not."""
    from tuning_core import runs

    asked = runs.stop_run(run_dir)
    deadline = time.monotonic() + timeout
    while runs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    how = "stopped" if asked else "already ended"
    if runs.pid_alive(pid) or group_alive(pid):  # start_worker made it a group leader
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        how += "+killed"
    try:
        os.waitpid(pid, 0)  # our child: reap it
    except ChildProcessError:
        pass
    return f"{how} ({runs.read_status(run_dir).get('state')})"


def keypress_latencies(args, tmp: Path) -> dict:
    from tuning_core import runs

    home = tmp / "run-home"
    session_id, run_dir, pid = running_session(home, args.epochs)
    term = None
    try:
        term = Terminal([str(TUNESMITH), "--session", session_id], app_env(home), cwd=tmp)
        term.wait_for(PLACEHOLDER_RE, 0, timeout=60)
        panel = term.wait_for(RUN_LINE_RE, 0, timeout=args.worker_timeout)
        print(f"run panel shows {panel.group().decode()}; typing", flush=True)
        term.pump(0.5)
        if KEY_BYTES in term.output:
            raise RuntimeError(f"{KEY!r} is on screen before any press: pick another key")
        press_ms, erase_ms = [], []
        first_press = time.time()
        next_at = time.perf_counter()
        for _ in range(args.presses):
            while time.perf_counter() < next_at:
                term.pump(next_at - time.perf_counter())
            since, sent = term.write(KEY_BYTES)
            next_at = sent + args.interval
            shown = term.wait_for(re.compile(re.escape(KEY_BYTES)), since, timeout=5)
            press_ms.append((term.time_at(shown.end() - 1) - sent) * 1000)
            while time.perf_counter() < sent + args.interval / 2:
                term.pump(sent + args.interval / 2 - time.perf_counter())
            since, erased = term.write(BACKSPACE)
            back = term.wait_for(PLACEHOLDER_RE, since, timeout=5)
            erase_ms.append((term.time_at(back.end() - 1) - erased) * 1000)
        last_press = time.time()
        status = runs.read_status(run_dir)
        events, _ = runs.read_events(run_dir)
        during = [e for e in events if first_press <= e.get("time", 0) <= last_press]
        live = {
            "state_after": status.get("state"),
            "events_during_presses": len(during),
            "logs_during_presses": sum(e.get("type") == "log" for e in during),
            "presses_s": round(last_press - first_press, 2),
        }
        print(f"run while typing: {live}", flush=True)
    finally:
        closed = term.close() if term is not None else "not started"
        worker = stop_worker(run_dir, pid)
        print(f"app closed: {closed}; worker {worker}", flush=True)
    return {"press_ms": press_ms, "erase_ms": erase_ms, "run": live, "closed": closed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="app starts to time")
    parser.add_argument("--presses", type=int, default=30, help="keypresses to time")
    parser.add_argument("--interval", type=float, default=0.15, help="s between presses")
    parser.add_argument("--epochs", type=float, default=10.0, help="the worker's run length")
    parser.add_argument(
        "--worker-timeout", type=float, default=300.0, help="s to wait for the first step"
    )
    args = parser.parse_args()
    if not TUNESMITH.exists():
        raise SystemExit(f"{TUNESMITH} is missing: install the project into .venv first")

    with tempfile.TemporaryDirectory(prefix="tui-latency-") as name:
        tmp = Path(name)
        starts, closes = start_times(args.repeats, tmp)
        keys = keypress_latencies(args, tmp)

    press = keys["press_ms"]
    summary_start = {
        "median_s": round(statistics.median(starts), 3),
        "max_s": round(max(starts), 3),
    }
    summary_press = {
        "median_ms": round(statistics.median(press), 1),
        "p90_ms": round(percentile(press, 0.9), 1),
        "max_ms": round(max(press), 1),
    }
    result = {
        **environment(("textual", "torch", "transformers")),
        "terminal": f"{COLS}x{ROWS} pty, TERM=xterm-256color",
        "start": {
            **summary_start,
            "seconds": [round(s, 3) for s in starts],
            "closed": closes,
            "target": "< 1.0 s",
        },
        "keypress": {
            **summary_press,
            "presses": len(press),
            "interval_s": args.interval,
            "press_ms": [round(x, 1) for x in press],
            "erase_median_ms": round(statistics.median(keys["erase_ms"]), 1),
            "run": keys["run"],
            "closed": keys["closed"],
            "target": "<= 100 ms",
        },
        "start_median_s": summary_start["median_s"],
        "start_max_s": summary_start["max_s"],
        "keypress_median_ms": summary_press["median_ms"],
        "keypress_p90_ms": summary_press["p90_ms"],
        "keypress_max_ms": summary_press["max_ms"],
    }
    run = keys["run"]
    lines = [
        f"start to ready screen (placeholder + footer), {COLS}x{ROWS} pty, {args.repeats} starts:"
        f" median {summary_start['median_s']} s, max {summary_start['max_s']} s (target < 1.0 s)",
        f"keypress to echo while following a live MiniLM run ({len(press)} presses "
        f"{args.interval * 1000:.0f} ms apart, worker {run['state_after']}, "
        f"{run['logs_during_presses']} step logs meanwhile): median {summary_press['median_ms']}"
        f" ms, p90 {summary_press['p90_ms']} ms, max {summary_press['max_ms']} ms "
        "(target <= 100 ms)",
    ]
    record("tui_latency", result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
