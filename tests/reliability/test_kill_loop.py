"""Kill anything, lose nothing (issue 8, point 1): a worker killed with SIGKILL at random moments
of a training run and of a search, and started again each time, ends with exactly the metrics of
an uninterrupted run with the same seed (11 kill points here; bench/kill_loop.py runs more).
Also: a checkpoint cut short is never resumed from, a full disk while checkpointing keeps the
last complete checkpoint and says so, and two workers never train in one run folder."""

from __future__ import annotations

import errno
import json
import random
import shutil
import time
from pathlib import Path

import pytest
from conftest import TINY_PLAN
from killing import comparable, kill_loop, run_to_end

from tuning_core import recipe, runs
from tuning_core.data import inspect_data
from tuning_core.errors import RunError
from tuning_core.plan import Plan
from tuning_core.worker import STEP_DELAY_ENV

SPACE = {
    "learning_rate": {"low": 1e-3, "high": 6e-3, "log": True},
    "epochs": {"low": 2, "high": 3, "step": 1},
    "dropout": {"low": 0.0, "high": 0.2},
}


def inputs(tiny_model, sentiment_csv, **extra):
    plan = Plan(base_model=str(tiny_model), max_length=32, **{**TINY_PLAN, **extra})
    return plan.validate().to_dict(), inspect_data(sentiment_csv).to_dict()


def reference(run_dir, plan, data, env):
    """An uninterrupted run: its report and its events."""
    runs.prepare_run(run_dir, plan, data)
    status = run_to_end(run_dir, env)
    assert status["state"] == "finished", (run_dir / "worker.log").read_text()[-3000:]
    events, _ = runs.read_events(run_dir)
    return runs.read_report(run_dir), events


def killed_run(run_dir, plan, data, env, kills, reference_events, seed):
    runs.prepare_run(run_dir, plan, data)
    hits = kill_loop(run_dir, kills, reference_events, random.Random(seed), env)
    status = run_to_end(run_dir, env)
    assert status["state"] == "finished", (run_dir / "worker.log").read_text()[-3000:]
    return runs.read_report(run_dir), hits


@pytest.mark.parametrize(
    "kind, kills, extra",
    [("training", 6, {}), ("search", 5, {"trials": 3, "search_space": SPACE})],
)
def test_sigkill_at_random_moments_then_restart_gives_the_uninterrupted_metrics(
    kind, kills, extra, tiny_model, sentiment_csv, tmp_path
):
    plan, data = inputs(tiny_model, sentiment_csv, **extra)
    env = {STEP_DELAY_ENV: "0.05"}  # long enough steps for kills to land mid-epoch
    expected, events = reference(tmp_path / "reference", plan, data, env)
    got, hits = killed_run(tmp_path / "killed", plan, data, env, kills, events, seed=len(kind))
    landed = [h for h in hits if h["killed"]]
    assert len(landed) >= kills - 1, hits  # the last draw may come after the run has ended
    assert len({h["events"] for h in landed}) >= kills - 2, hits  # at different places
    assert comparable(got) == comparable(expected), hits
    if kind == "search":
        retried = got["search"]["retried"]
        assert all(t["state"] != "running" for t in got["search"]["trials"]), retried


def test_a_checkpoint_cut_short_is_deleted_and_never_resumed_from(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in (12, 24, 36):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    for step in (12, 24):
        (folder / f"checkpoint-{step}" / recipe.CHECKPOINT_DONE).write_text("{}")
    # 36 has its state but no mark: the kill came before the mark was written
    assert recipe.last_complete_checkpoint(folder) == str(folder / "checkpoint-24")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-12", "checkpoint-24"]
    # folders from before the marks existed count when their trainer state reads back
    legacy = tmp_path / "legacy"
    (legacy / "checkpoint-5").mkdir(parents=True)
    (legacy / "checkpoint-5" / "trainer_state.json").write_text('{"global_step": 5}')
    (legacy / "checkpoint-10").mkdir()
    (legacy / "checkpoint-10" / "trainer_state.json").write_text('{"global_st')  # cut short
    assert recipe.last_complete_checkpoint(legacy) == str(legacy / "checkpoint-5")
    assert recipe.last_complete_checkpoint(tmp_path / "none") is None


def test_old_checkpoints_go_only_after_the_newest_is_complete_and_never_the_best(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in (12, 24, 36, 48, 60):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if step < 60:  # 60 is being written: no mark yet
            (folder / f"checkpoint-{step}" / recipe.CHECKPOINT_DONE).write_text("{}")
    recipe.drop_old_checkpoints(folder, 2, "checkpoint-12")
    kept = sorted((p.name for p in folder.iterdir()), key=lambda n: int(n.split("-")[1]))
    # the newest two complete ones, the best, and the one still being written
    assert kept == ["checkpoint-12", "checkpoint-36", "checkpoint-48", "checkpoint-60"]


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint_and_the_run_resumes(
    tiny_model, sentiment_csv, tmp_path, monkeypatch
):
    """The disk fills while epoch 3's checkpoint is written: the run fails with a message that
    says so and names the checkpoint kept; started again with room, it resumes from there and
    ends with the metrics of an uninterrupted run."""
    from transformers import Trainer

    from tuning_core import worker

    plan, data = inputs(tiny_model, sentiment_csv, epochs=4.0)
    expected, _ = reference(tmp_path / "reference", plan, data, None)

    run_dir = tmp_path / "full"
    runs.prepare_run(run_dir, plan, data)
    real_save = Trainer._save_optimizer_and_scheduler

    def disk_fills_at_epoch_3(self, output_dir):
        if self.state.global_step >= 36:
            (Path(output_dir) / "optimizer.pt").write_bytes(b"\0" * 100)  # half written
            raise OSError(errno.ENOSPC, "No space left on device", str(output_dir))
        return real_save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_fills_at_epoch_3)
    assert worker.run(run_dir) == 1
    status = runs.read_status(run_dir)
    assert status["state"] == "failed"
    assert "disk is full" in status["error"] and "checkpoint-24 is kept" in status["error"]
    assert "Traceback" not in status["error"] and "\n" not in status["error"]
    assert not (run_dir / "checkpoints" / "checkpoint-36").exists()
    assert recipe.last_complete_checkpoint(run_dir / "checkpoints").endswith("checkpoint-24")

    # the conversation calls it a pause, and `/run` resumes it once there is room
    from assistant.planner import Planner, PlannerState

    state = PlannerState(stage="run", plan=plan, spec=data, run_id="run-1", run_dir=str(run_dir))
    planner = Planner(tmp_path / "runs", state)
    said = planner.run_finished(status)[0].text
    assert "paused" in said and "`/run` to resume" in said and "checkpoint-24" in said
    assert planner.state.stage == "plan" and planner.state.plan == plan
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", real_save)
    assert "Resuming run `run-1`" in planner.handle("/run")[0].text
    status = runs.follow_run(run_dir, lambda e: None, poll_s=0.1)
    assert status["state"] == "finished" and status["resumed"] is True
    assert comparable(runs.read_report(run_dir)) == comparable(expected)


def test_a_run_folder_named_by_a_relative_path_trains(
    tiny_model, sentiment_csv, tmp_path, monkeypatch
):
    """The app's default home is ./sessions, so run folders are named relative to where it was
    started; the worker, which starts inside its folder, must still find it."""
    plan, data = inputs(tiny_model, sentiment_csv)
    monkeypatch.chdir(tmp_path)
    run_dir = Path("sessions") / "s1" / "runs" / "run-1"
    runs.prepare_run(run_dir, plan, data)
    status = run_to_end(run_dir)
    assert status["state"] == "finished", (run_dir / "worker.log").read_text()[-2000:]
    assert runs.read_report(run_dir)["test"]["accuracy"] > 0


def test_two_workers_never_train_in_one_run_folder(tiny_model, sentiment_csv, tmp_path):
    import subprocess
    import sys

    plan, data = inputs(tiny_model, sentiment_csv)
    run_dir = tmp_path / "run"
    runs.prepare_run(run_dir, plan, data)
    pid = runs.start_worker(run_dir, env={STEP_DELAY_ENV: "0.05"})
    with pytest.raises(RunError, match=f"being trained by process {pid}"):
        runs.start_worker(run_dir)
    # a second worker started behind tunesmith's back sees the folder's lock and leaves
    deadline = time.monotonic() + 120
    while not (run_dir / "worker.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    while runs.read_status(run_dir).get("state") != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "tuning_core.worker", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 3 and f"another worker (pid {pid})" in second.stderr
    status = runs.follow_run(run_dir, lambda e: None, poll_s=0.1)
    assert status["state"] == "finished" and status["pid"] == pid
    events, _ = runs.read_events(run_dir)
    assert [e["pid"] for e in events if e["type"] == "worker"] == [pid]


def test_a_half_written_event_line_is_ended_before_the_next_worker_writes(tmp_path):
    from tuning_core.worker import EventLog

    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "log", "step": 1}) + "\n" + '{"type": "log", "st')
    EventLog(path).append({"type": "worker", "pid": 1})
    events, _ = runs.read_events(tmp_path)
    assert [e["type"] for e in events] == ["log", "worker"]


def test_run_folders_are_private(tmp_path):
    run_dir = runs.prepare_run(tmp_path / "run", {"seed": 1}, {"labels": []})
    assert run_dir.stat().st_mode & 0o777 == 0o700
    shutil.rmtree(run_dir)


def test_the_newest_events_are_read_from_the_end_of_a_long_file(tmp_path):
    lines = [json.dumps({"type": "log", "step": n}) for n in range(20_000)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n" + '{"type": "lo')
    tail = runs.read_last_events(tmp_path, tail_bytes=4096)
    steps = [e["step"] for e in tail]
    assert steps[-1] == 19_999 and steps == list(range(steps[0], 20_000))
    assert 100 < len(steps) < 300  # a few KB of lines, not the whole file
    assert runs.read_last_events(tmp_path / "missing") == []
