"""Benchmark: does anything hold the app's event loop (the UI thread) longer than 50 ms?
(issue 6, point 3)

The app is driven through Pilot (100x32) along the common path on the demo posts with the
embedded MiniLM: open, load the file (reading, profile, baseline), see the plan, change a value,
ask a why-question, open and close the data view, the sessions picker, switch the theme, Tab
around, hide and show the plan pane; then train one epoch, watch it in the run monitor, and open
the results view when it has finished. asyncio's debug mode reports every step of the loop that
runs longer than `slow_callback_duration` (here 50 ms); each report names the task (a widget's
message pump, Textual's screen update, a timer). Debug mode adds overhead of its own, so
the figures are an upper bound.

    .venv/bin/python bench/ui_stalls.py

Writes bench/results/ui_stalls.json and a dated row in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import tempfile
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
STALL = re.compile(r"Executing <Task[^>]*?name=(?P<name>'[^']*'|\"[^\"]*\").*took (?P<s>[\d.]+) s")


class Stalls(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, float]] = []
        self.phases: list[str] = []  # the phase of the walk each stall happened in
        self.phase = "open"

    def emit(self, record: logging.LogRecord) -> None:
        match = STALL.search(record.getMessage().replace("\n", " "))
        if match:
            name = match["name"].strip("'\"").split("(")[0]
            self.found.append((name, float(match["s"])))
            self.phases.append(self.phase)


async def walk(home: Path, steps: list[str], stalls: Stalls) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = LIMIT_S
    app = TunesmithApp(home)
    async with app.run_test(size=(100, 32)) as pilot:
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


def main() -> int:
    stalls = Stalls()
    logging.getLogger("asyncio").addHandler(stalls)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="tunesmith-stalls-"))
    steps: list[str] = []
    try:
        asyncio.run(walk(home, steps, stalls))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    longest = sorted(stalls.found, key=lambda s: -s[1])
    by_task = Counter(name for name, _ in stalls.found)
    summary = {
        **environment(("textual",)),
        "limit_s": LIMIT_S,
        "steps": steps,
        "stalls": len(stalls.found),
        "longest_s": longest[0][1] if longest else 0.0,
        "by_task": dict(by_task),
        "top": [{"task": n, "seconds": s} for n, s in longest[:10]],
        "by_phase": dict(Counter(stalls.phases)),
    }
    top = ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in longest[:5]) or "none"
    record(
        "ui_stalls",
        summary,
        [
            f"event-loop steps over {LIMIT_S * 1000:.0f} ms along open, load, plan, change, why, "
            "views and keys, a one-epoch run in the monitor, results and their view (asyncio "
            f"debug mode): {len(stalls.found)}; longest: {top}; by task: "
            + ", ".join(f"{k} {v}" for k, v in by_task.most_common())
            + "; by phase: "
            + ", ".join(f"{k} {v}" for k, v in Counter(stalls.phases).most_common())
            + f" (target: none over {LIMIT_S * 1000:.0f} ms)"
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
