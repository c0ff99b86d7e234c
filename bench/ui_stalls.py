"""Benchmark: does anything hold the app's event loop (the UI thread) longer than 50 ms?
(issue 6, point 3)

The app is driven through Pilot (100x32, or --size WxH) along the common path on the demo posts with the
embedded MiniLM: open, load the file (reading, profile, baseline), see the plan, change a value,
ask a why-question, open and close the data view, the sessions picker, switch the theme, Tab
around, hide and show the plan pane; then train one epoch, watch it in the run monitor, and open
the results view when it has finished. Every step of the event loop (asyncio's `Handle._run`:
one callback, or one stretch of a task between two awaits that suspend) is timed with
`perf_counter`; the steps longer than 50 ms are counted and named by their task (a widget's
message pump, Textual's screen update, a timer). Earlier rows used asyncio's debug mode, which
reports the same steps but tracks where every coroutine was created, which made them about
twice as long: on 3c6b60f the longest steps were 86-107 ms in debug mode (idle machine) and
54-58 ms timed directly (with two benchmarks at nice 19 on both cores). Those rows are upper
bounds.

    .venv/bin/python bench/ui_stalls.py [--size 160x48]

Writes bench/results/ui_stalls.json and a dated row in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from benchlib import environment, record  # noqa: E402
from test_app import messages, say, settle  # noqa: E402

from assistant.app import TunesmithApp  # noqa: E402

LIMIT_S = 0.05
DEMO = ROOT / "assistant" / "demo" / "posts.csv"


class Stalls:
    """Times every step of the event loop while installed; keeps those over `LIMIT_S`."""

    def __init__(self) -> None:
        self.found: list[tuple[str, float]] = []
        self.phases: list[str] = []  # the phase of the walk each stall happened in
        self.phase = "open"
        self.steps = 0
        self.longest: list[tuple[float, str, str]] = []  # the ten longest steps, stalls or not

    def install(self) -> None:
        original = asyncio.events.Handle._run
        stalls = self

        def timed_run(handle):
            started = time.perf_counter()
            try:
                return original(handle)
            finally:
                seconds = time.perf_counter() - started
                stalls.steps += 1
                if len(stalls.longest) < 10 or seconds > stalls.longest[0][0]:
                    entry = (round(seconds, 3), step_name(handle), stalls.phase)
                    heapq.heappush(stalls.longest, entry)
                    if len(stalls.longest) > 10:
                        heapq.heappop(stalls.longest)
                if seconds > LIMIT_S:
                    stalls.found.append((step_name(handle), round(seconds, 3)))
                    stalls.phases.append(stalls.phase)

        asyncio.events.Handle._run = timed_run
        self._original = original

    def uninstall(self) -> None:
        asyncio.events.Handle._run = self._original


def step_name(handle) -> str:
    """The task a step belongs to (a task's step or wake-up is a method of the task), else the
    callback's name."""
    callback = handle._callback
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        return task.get_name().split("(")[0]
    return getattr(callback, "__qualname__", repr(callback))[:60]


async def walk(
    home: Path, steps: list[str], stalls: Stalls, size: tuple[int, int] = (100, 32)
) -> None:
    app = TunesmithApp(home)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        steps.append("opened")
        stalls.phase = "load"
        await say(app, pilot, f"classify these posts by sentiment: {DEMO}")
        steps.append("loaded the data")
        stalls.phase = "plan"
        await say(app, pilot, "")
        steps.append("plan shown")
        stalls.phase = "change, why, views and keys"
        await say(app, pilot, "learning rate 3e-5")
        await say(app, pilot, "why learning rate")
        for key in ("ctrl+d", "escape", "ctrl+o", "escape", "f2", "tab", "tab", "escape"):
            await pilot.press(key)
            await pilot.pause(0.1)
        await pilot.press("ctrl+b", "ctrl+b")
        await pilot.pause(0.2)
        steps.append("views and keys")
        stalls.phase = "run and monitor"
        # a short run (one epoch of the demo posts) followed live in the monitor, then the
        # results and their view
        await say(app, pilot, "1 epoch")
        await say(app, pilot, "")
        for _ in range(120):
            await pilot.pause(0.5)
            if app._run_events.get(str(app.conversation.run_dir)):
                break
        await pilot.press("ctrl+t")
        await pilot.pause(3.0)
        await pilot.press("escape")
        steps.append("run monitor during the run")
        stalls.phase = "results and view"
        for _ in range(600):
            await pilot.pause(0.5)
            if any("**Results**" in m.source for m in messages(app)):
                break
        else:
            raise RuntimeError("the run gave no results in 300 s")
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause(1.0)
        await pilot.press("escape")
        await pilot.pause(0.3)
        steps.append("results and their view")
        stalls.phase = "close"


def code_version() -> str:
    """The commit the app ran from, marked when the working tree differs from it."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + (" (modified)" if git("status", "--porcelain", "--", "assistant") else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100x32", help="terminal size, WIDTHxHEIGHT")
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.lower().split("x"))
    load = os.getloadavg()[0]  # other work on the machine lengthens the steps
    stalls = Stalls()
    stalls.install()
    home = Path(tempfile.mkdtemp(prefix="tunesmith-stalls-"))
    steps: list[str] = []
    try:
        asyncio.run(walk(home, steps, stalls, size))
    finally:
        stalls.uninstall()
        shutil.rmtree(home, ignore_errors=True)
    longest = sorted(stalls.longest, reverse=True)
    by_task = Counter(name for name, _ in stalls.found)
    summary = {
        **environment(("textual",)),
        "limit_s": LIMIT_S,
        "size": args.size,
        "load_average_1m_at_start": round(load, 2),
        "code": code_version(),
        "steps": steps,
        "loop_steps_timed": stalls.steps,
        "stalls": len(stalls.found),
        "longest_s": longest[0][0] if longest else 0.0,
        "by_task": dict(by_task),
        "top": [{"task": n, "seconds": s, "phase": p} for s, n, p in longest],
        "by_phase": dict(Counter(stalls.phases)),
    }
    top = ", ".join(f"{n} {s * 1000:.0f} ms ({p})" for s, n, p in longest[:5])
    record(
        "ui_stalls",
        summary,
        [
            f"{args.size}: event-loop steps over {LIMIT_S * 1000:.0f} ms along open, load, plan, change, why, "
            "views and keys, a one-epoch run in the monitor, results and their view (each step "
            f"timed, of {stalls.steps}): {len(stalls.found)}"
            + (
                "; by task: "
                + ", ".join(f"{k} {v}" for k, v in by_task.most_common())
                + "; by phase: "
                + ", ".join(f"{k} {v}" for k, v in Counter(stalls.phases).most_common())
                if stalls.found
                else ""
            )
            + f" (target: none over {LIMIT_S * 1000:.0f} ms); the longest steps: {top}; "
            f"load average at start {load:.2f}; code {summary['code']}"
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
