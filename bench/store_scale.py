"""Benchmark: tunesmith under load (issue 8, point 7).

1. A big session: 10,000 turns (user lines and Markdown replies of realistic lengths) and a
   finished run whose events.jsonl holds 200,000 events as the worker writes them (`worker`,
   `start`, a `log` line every step, an `eval` line every 100 steps, a `checkpoint` every 500,
   `judging`, `finished`), with its status.json and report.json; nothing is trained. The app
   opens it through Textual's Pilot (`App.run_test`, 120x40) and we time:
   - interactive: from making the app to the chat showing its turns with the prompt focused
     (the run monitor is then one key away). Target: under 2 s.
   - monitor: from pressing ctrl+t to the run monitor on screen, and to its curves drawn
     (the file is read in a thread meanwhile).
   - settled: from making the app to the opening reply shown (a conversation call in a
     worker thread; the screen takes keys meanwhile).
2. Many sessions: 1,000 saved sessions (each with 20 turns, a plan, a finished run folder),
   listed by `SessionStore.list()` in this process, by `tunesmith sessions` as a command
   (Python start and imports included), and by the app's sessions browser (ctrl+o until the
   picker shows every session). Target: under 1 s.

Each figure is the median of `--repeats` tries (the first try of each is a cold start).

    .venv/bin/python bench/store_scale.py
    .venv/bin/python bench/store_scale.py --turns 2000 --events 20000 --sessions 100 --repeats 1

Writes bench/results/store_scale.json and a dated section in bench/RESULTS.md (skip that with
--no-record).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchlib import environment, record  # noqa: E402
from test_resultsview import REPORT  # noqa: E402

from assistant.app import TunesmithApp  # noqa: E402
from assistant.conversation import Conversation  # noqa: E402
from assistant.monitor import RunMonitorScreen  # noqa: E402
from assistant.store import DB_NAME, SessionStore  # noqa: E402
from assistant.widgets import ChatMessage, SessionPicker  # noqa: E402
from tuning_core.plan import Plan  # noqa: E402
from tuning_core.runs import write_json_atomic  # noqa: E402

SIZE = (120, 40)
TARGET_OPEN_S = 2.0
TARGET_LIST_S = 1.0
WORDS = [
    "the",
    "learning",
    "rate",
    "batch",
    "epochs",
    "validation",
    "loss",
    "macro",
    "F1",
    "baseline",
    "tokenizer",
    "labels",
    "data",
    "model",
    "freeze",
    "layers",
    "warmup",
    "schedule",
    "weight",
    "decay",
    "dropout",
    "gradient",
    "accumulation",
    "plateau",
    "overfitting",
    "checkpoint",
    "accuracy",
    "precision",
    "recall",
    "class",
    "imbalance",
    "augmentation",
]


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def reply(rng: random.Random) -> str:
    """A Markdown reply like the planner's: a bold lead, a paragraph or two, maybe a list."""
    parts = [f"**{words(rng, 3).capitalize()}.** {words(rng, rng.randint(10, 40))}."]
    if rng.random() < 0.5:
        parts.append("\n".join(f"- {words(rng, rng.randint(4, 12))}" for _ in range(4)))
    if rng.random() < 0.3:
        parts.append(f"{words(rng, rng.randint(20, 60))}.")
    return "\n\n".join(parts)


def write_events(run_dir: Path, count: int) -> int:
    """`count` events as `tuning_core.worker` writes them; the number of steps."""
    rng = random.Random(7)
    lines: list[str] = []
    now = 1_790_000_000.0

    def add(event: dict) -> None:
        nonlocal now
        now += 0.05
        lines.append(json.dumps({"time": round(now, 3), **event}, sort_keys=True))

    steps = 0  # the steps that make `count` events with the four around them
    while steps + 1 + (steps + 1) // 100 + (steps + 1) // 500 <= count - 4:
        steps += 1
    add({"type": "worker", "pid": 4242, "resumed": False})
    add({"type": "start", "step": 0, "max_steps": steps})
    loss = 1.2
    for step in range(1, steps + 1):
        loss = max(0.05, loss * 0.99995 + rng.uniform(-0.01, 0.01))
        add(
            {
                "type": "log",
                "step": step,
                "max_steps": steps,
                "epoch": round(3 * step / steps, 3),
                "loss": round(loss, 4),
                "learning_rate": 3e-5 * (1 - step / steps),
                "grad_norm": round(rng.uniform(0.5, 3.0), 4),
                "samples_per_s": round(rng.uniform(90, 110), 1),
                "eta_s": round((steps - step) * 0.05, 1),
                "memory_mb": round(900 + rng.uniform(0, 50), 1),
            }
        )
        if step % 100 == 0:
            metrics = {"eval_loss": round(loss * 1.1, 4), "eval_macro_f1": round(0.9 - loss / 3, 4)}
            metrics |= {"eval_accuracy": round(0.92 - loss / 3, 4), "eval_runtime": 1.5}
            add(
                {
                    "type": "eval",
                    "step": step,
                    "epoch": round(3 * step / steps, 3),
                    "metrics": metrics,
                }
            )
        if step % 500 == 0:
            add({"type": "checkpoint", "step": step})
    while len(lines) < count - 2:  # make up the count exactly
        add({"type": "checkpoint", "step": steps})
    add({"type": "judging"})
    add({"type": "finished", "headline": {"macro_f1": 0.8123, "accuracy": 0.8411}})
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    return steps


def finished_run(session_dir: Path, events: int) -> Path:
    run_dir = session_dir / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    if events:
        write_events(run_dir, events)
    headline = {"macro_f1": 0.8123, "accuracy": 0.8411}
    write_json_atomic(run_dir / "status.json", {"state": "finished", "headline": headline})
    write_json_atomic(run_dir / "report.json", REPORT)
    return run_dir


def saved_session(home: Path, turns: int, events: int) -> str:
    """A session at the results stage: `turns` turns, a finished run of `events` events."""
    rng = random.Random(turns)
    conversation = Conversation.start(SessionStore(home))
    session = conversation.session
    start = time.time() - turns * 30
    rows = [
        {
            "n": n,
            "role": "user" if n % 2 == 0 else "assistant",
            "text": words(rng, rng.randint(2, 12)) if n % 2 == 0 else reply(rng),
            "time": start + n * 30,
            "kind": "text",
        }
        for n in range(1, turns + 1)
    ]
    with session.db.atomic():
        session.db["turns"].insert_all(rows, batch_size=500)
    run_dir = finished_run(session.dir, events)
    state = conversation.state
    state.stage, state.task, state.run_id = "results", "sentiment", "run-1"
    state.run_dir = str(run_dir)
    state.plan = Plan(learning_rate=3e-5).to_dict() | {"metric": "macro_f1"}
    state.report = {k: REPORT[k] for k in ("validation", "test", "metric")} | {"epochs_run": 3}
    session.add_run("run-1", run_dir)
    session.update_run("run-1", "finished", {"macro_f1": 0.8123})
    session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.close()
    return conversation.session_id


def many_sessions(home: Path, count: int) -> None:
    """`count` sessions: one made through the store, the rest copies of its folder with their
    own ids (what the listing reads: folder, database, run status)."""
    template = saved_session(home, turns=20, events=0)
    source = home / template
    for i in range(count - 1):
        session_id = f"2026{i // 1000:04d}-{i % 1000:06d}-{i:04x}"
        target = home / session_id
        shutil.copytree(source, target)
        (target / "session.lock").unlink(missing_ok=True)
        conn = sqlite3.connect(target / DB_NAME)
        with conn:
            conn.execute("update meta set id = ?, updated = ?", [session_id, 1.7e9 + i])
            conn.execute("update runs set dir = ?", [str(target / "runs" / "run-1")])
        conn.close()


async def wait_until(pilot, condition, limit_s: float = 120.0) -> float:
    """Seconds until `condition()` held (checked every 5 ms)."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit_s:
            raise TimeoutError("the condition never held")
        await pilot.pause(0.005)
    return time.perf_counter() - start


async def open_big(home: Path, session_id: str) -> dict[str, float]:
    start = time.perf_counter()
    app = TunesmithApp(home, session_id)
    async with app.run_test(size=SIZE) as pilot:

        def interactive() -> bool:
            prompt = app.query_one("#prompt")
            return bool(app.query(ChatMessage)) and prompt.has_focus and app.screen.is_mounted

        await wait_until(pilot, interactive)
        shown_s = time.perf_counter() - start
        chat_messages = len(app.query(ChatMessage))
        pressed = time.perf_counter()
        # the key is posted, not pressed through the pilot: Pilot.press returns only once
        # the app is idle again, which includes the monitor's reading of the file
        app.simulate_key("ctrl+t")
        await wait_until(
            pilot, lambda: isinstance(app.screen, RunMonitorScreen) and app.screen.is_mounted
        )
        monitor_s = time.perf_counter() - pressed

        def drawn() -> bool:
            screen = app.screen
            return not getattr(screen, "loading", False) and bool(
                screen.plotted.get("training loss", ([], []))[0]
            )

        await wait_until(pilot, drawn)
        curves_s = time.perf_counter() - pressed
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.busy and app.conversation is not None)
        settled_s = time.perf_counter() - start
    return {
        "interactive_s": shown_s,
        "monitor_s": monitor_s,
        "curves_s": curves_s,
        "settled_s": settled_s,
        "chat_messages": chat_messages,
    }


async def browse(home: Path, count: int) -> dict[str, float]:
    start = time.perf_counter()
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:

        def listed(options: int) -> bool:
            screen = app.screen
            if not isinstance(screen, SessionPicker) or not screen.is_mounted:
                return False
            option_list = screen.query_one("OptionList")
            return option_list.option_count == options and option_list.has_focus

        await wait_until(pilot, lambda: listed(count + 1))  # "New session" and each saved one
        at_start_s = time.perf_counter() - start
        await pilot.press("escape")  # a new session
        await wait_until(pilot, lambda: not app.busy and app.conversation is not None)
        pressed = time.perf_counter()
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: listed(count + 2))  # with the one just made
        picker_s = time.perf_counter() - pressed
    return {"browser_at_start_s": at_start_s, "browser_s": picker_s}


def cli_sessions(home: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "sessions", "--home", str(home)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    wall = time.perf_counter() - start
    assert "!" not in out.stdout, out.stdout[:500]
    return wall


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print, write no results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tunesmith-scale-"))
    try:
        big_home, many_home = work / "big", work / "many"
        built = time.perf_counter()
        big = saved_session(big_home, args.turns, args.events)
        many_sessions(many_home, args.sessions)
        build_s = time.perf_counter() - built
        db_mb = (big_home / big / DB_NAME).stat().st_size / 1e6
        events_mb = (big_home / big / "runs" / "run-1" / "events.jsonl").stat().st_size / 1e6

        opens = [asyncio.run(open_big(big_home, big)) for _ in range(args.repeats)]
        lists, clis, browsers = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            listed = SessionStore(many_home).list()
            lists.append(time.perf_counter() - start)
            assert len(listed) == args.sessions and not any("error" in s for s in listed)
            clis.append(cli_sessions(many_home))
            browse_home = work / "browse"
            shutil.rmtree(browse_home, ignore_errors=True)
            shutil.copytree(many_home, browse_home)  # the browser's own new session stays out
            browsers.append(asyncio.run(browse(browse_home, args.sessions)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    figures = {
        key: median([o[key] for o in opens])
        for key in ("interactive_s", "monitor_s", "curves_s", "settled_s")
    }
    figures |= {
        "list_s": median(lists),
        "cli_sessions_s": median(clis),
        "browser_at_start_s": median([b["browser_at_start_s"] for b in browsers]),
        "browser_s": median([b["browser_s"] for b in browsers]),
    }
    summary = {
        **environment(("textual", "sqlite-utils")),
        "turns": args.turns,
        "events": args.events,
        "sessions": args.sessions,
        "repeats": args.repeats,
        "build_s": round(build_s, 1),
        "session_db_mb": round(db_mb, 1),
        "events_mb": round(events_mb, 1),
        "chat_messages_shown": opens[0]["chat_messages"],
        **figures,
        "tries": {"open": opens, "list_s": lists, "cli_s": clis, "browser": browsers},
    }
    if args.no_record:
        print(json.dumps(summary, indent=2))
        return 0
    f = figures
    record(
        "store_scale",
        summary,
        [
            f"a session of {args.turns:,} turns ({db_mb:.1f} MB) with a finished run of "
            f"{args.events:,} events ({events_mb:.0f} MB), opened in the app (Pilot, 120x40), "
            f"median of {args.repeats}: interactive (chat with its newest "
            f"{opens[0]['chat_messages']} messages, prompt focused) {f['interactive_s']:.2f} s "
            f"(target < {TARGET_OPEN_S:.0f} s); ctrl+t to the run monitor {f['monitor_s']:.2f} s, "
            f"to its curves drawn {f['curves_s']:.2f} s; opening reply shown "
            f"{f['settled_s']:.2f} s after start",
            f"{args.sessions:,} sessions listed, median of {args.repeats}: SessionStore.list() "
            f"{f['list_s']:.2f} s, `tunesmith sessions` as a command (Python start and imports "
            f"included) {f['cli_sessions_s']:.2f} s, sessions browser ctrl+o to all entries "
            f"shown {f['browser_s']:.2f} s (at app start: {f['browser_at_start_s']:.2f} s "
            f"including the app's own start) (target < {TARGET_LIST_S:.0f} s)",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
