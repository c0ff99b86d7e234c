"""The worker trains at a lower CPU priority than the app (tuning_core.worker.lower_priority),
so the app's event loop gets a core when it needs one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import os; from tuning_core.worker import lower_priority; "
    "before = os.nice(0); after = lower_priority(); print(before, after, os.nice(0))"
)


def niceness(**env: str) -> tuple[int, int, int]:
    child_env = {k: v for k, v in os.environ.items() if k != "TUNESMITH_WORKER_NICE"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**child_env, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before, after, now = (int(x) for x in out)
    return before, after, now


def test_the_worker_lowers_its_priority_by_ten_unless_told_otherwise():
    before, after, now = niceness()
    assert after == now == min(19, before + 10)
    before, after, now = niceness(TUNESMITH_WORKER_NICE="3")
    assert now == min(19, before + 3)
    before, after, now = niceness(TUNESMITH_WORKER_NICE="0")
    assert now == before
    before, after, now = niceness(TUNESMITH_WORKER_NICE="fast please")  # unreadable: default
    assert now == min(19, before + 10)
