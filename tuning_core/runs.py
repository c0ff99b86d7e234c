"""Runs on disk: prepare a run folder, start its worker process, follow and stop it.

A run folder holds `plan.json` and `data.json` (the inputs), `status.json` (state, pid, final
numbers), `events.jsonl` (what the worker reports, one JSON object a line), `checkpoints/`,
`model/` and `report.json`. This module only reads and writes those files and starts or
signals the process; the training itself is `tuning_core.worker` over `tuning_core.recipe`.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning_core.errors import RunError

TERMINAL_STATES = ("finished", "failed", "stopped", "dead")


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary name and rename it, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(tmp, path)


def prepare_run(run_dir: Path, plan: dict, data: dict) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "status.json").exists():
        raise RunError(f"{run_dir} already holds a run; resume it or pick a new folder")
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir.chmod(0o700)  # private to the person whatever the umask: it holds their data's path
    write_json_atomic(run_dir / "plan.json", plan)
    write_json_atomic(run_dir / "data.json", data)
    write_json_atomic(run_dir / "status.json", {"state": "created"})
    return run_dir


def start_worker(run_dir: Path, env: dict[str, str] | None = None) -> int:
    """Start `python -m tuning_core.worker RUN_DIR` detached from this terminal; its pid.

    RunError when a live worker already trains in the folder (two callers at once are put in
    line by a lock file, and the worker itself holds the folder's lock while it runs)."""
    run_dir = Path(run_dir)
    fd = os.open(run_dir / ".start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        status = read_status(run_dir)
        if status.get("state") in ("starting", "running"):
            raise RunError(
                f"{run_dir} is being trained by process {status.get('pid')}; "
                "stop that run first or wait for it"
            )
        return _spawn_worker(run_dir, env)
    finally:
        os.close(fd)  # releases the lock


def _spawn_worker(run_dir: Path, env: dict[str, str] | None) -> int:
    # absolute: the child starts inside the folder, where a relative path (the default home
    # is ./sessions) would name a folder below it
    run_dir = Path(run_dir).resolve()
    log = open(run_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    child_env = {**os.environ, **(env or {})}
    # the child must import this very tuning_core, installed or not
    root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuning_core.worker", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # survives the terminal closing (no SIGHUP from it)
        env=child_env,
        cwd=str(run_dir),
    )
    log.close()
    status = read_status(run_dir)
    write_json_atomic(run_dir / "status.json", {**status, "state": "starting", "pid": proc.pid})
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; a running state whose process has gone reads as `dead`."""
    path = Path(run_dir) / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"state": "missing"}
    if status.get("state") in ("starting", "running") and not pid_alive(status.get("pid")):
        # re-read: the worker may have finished between the two reads
        try:
            status = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass
        if status.get("state") in ("starting", "running"):
            status = {**status, "state": "dead"}
    return status


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete event lines written after byte `offset`, and the offset to read from next."""
    path = Path(run_dir) / "events.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    events = []
    for line in chunk[:end].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + end


def read_last_events(run_dir: Path, tail_bytes: int = 65536) -> list[dict[str, Any]]:
    """The complete events in the last `tail_bytes` of the run's event file (the newest ones),
    without reading a long run's whole file."""
    path = Path(run_dir) / "events.jsonl"
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - tail_bytes))
            chunk = fh.read()
    except FileNotFoundError:
        return []
    if size > tail_bytes:
        chunk = chunk[chunk.find(b"\n") + 1 :]  # the first line is cut: skip it
    events = []
    for line in chunk[: chunk.rfind(b"\n") + 1].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def read_report(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / "report.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stop_run(run_dir: Path) -> bool:
    """Ask the worker to checkpoint and exit (SIGTERM). False when nothing was running."""
    status = read_status(run_dir)
    pid = status.get("pid")
    if status.get("state") not in ("starting", "running") or not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def follow_run(
    run_dir: Path,
    on_event: Callable[[dict[str, Any]], None],
    poll_s: float = 0.5,
    offset: int = 0,
) -> dict[str, Any]:
    """Call `on_event` for each event until the run reaches a terminal state; its status."""
    while True:
        events, offset = read_events(run_dir, offset)
        for event in events:
            on_event(event)
        status = read_status(run_dir)
        if status.get("state") in TERMINAL_STATES:
            events, offset = read_events(run_dir, offset)
            for event in events:
                on_event(event)
            return status
        time.sleep(poll_s)
