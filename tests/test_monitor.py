"""The run monitor (ctrl+t) driven through Pilot over hand-written events (nothing is trained):
the progress line, the plotted curves, events arriving while it is open, a search's trials, a
finished run read from its folder, no run at all; and the pure parts (`RunHistory` and co)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from test_app import SIZE, settle
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from assistant.app import TunesmithApp
from assistant.conversation import Conversation
from assistant.monitor import (
    RunHistory,
    RunMonitorScreen,
    duration,
    progress_line,
    step_ticks,
    thin,
)
from assistant.store import SessionStore
from tuning_core.plan import Plan
from tuning_core.runs import write_json_atomic


def log(step: int, loss: float, **extra) -> dict:
    event = {"type": "log", "step": step, "max_steps": 20, "epoch": step / 20, "loss": loss}
    event |= {"learning_rate": 1e-4, "grad_norm": 0.5, "samples_per_s": 10.0, "eta_s": 60}
    return event | {"memory_mb": 300} | extra


def evaluation(step: int, loss: float, f1: float, **metrics) -> dict:
    scores = {"eval_loss": loss, "eval_macro_f1": f1, "eval_accuracy": 0.6} | metrics
    return {"type": "eval", "step": step, "epoch": step / 10, "metrics": scores}


HISTORY = [
    {"type": "worker", "pid": 1, "resumed": False},
    {"type": "start", "step": 0, "max_steps": 20},
    log(2, 1.1, memory_mb=333),  # the peak memory is the largest seen, not the last
    log(4, 0.9),
    evaluation(4, 0.85, 0.5),
    log(6, 0.7654, epoch=0.3, eta_s=42, samples_per_s=12.5, grad_norm=0.5432, learning_rate=8e-5),
]


def make_session(home: Path, events: list[dict], stage: str = "run", state: str = "running"):
    """A saved session whose run folder `run-1` holds `events`; (session id, run folder)."""
    conversation = Conversation.start(SessionStore(home))
    run_dir = conversation.session.runs_dir / "run-1"
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "status.json", {"state": state, "pid": os.getpid()})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    st = conversation.state
    st.stage, st.run_id, st.run_dir = stage, "run-1", str(run_dir)
    st.plan = Plan().to_dict() | {"metric": "macro_f1"}
    if stage == "run":
        conversation.session.add_turn("user", "")
    conversation.session.save_state(st.to_dict(), conversation.planner.summary())
    conversation.session.close()
    return conversation.session_id, run_dir


def append(run_dir: Path, *events: dict) -> None:
    with (run_dir / "events.jsonl").open("a") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)


def line_of(screen: RunMonitorScreen) -> str:
    return str(screen.query_one("#monitor-line", Static).content)


async def wait_for(pilot, condition, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError("the condition never held")


async def test_monitor_shows_the_whole_history_and_follows_new_events(home):
    session_id, run_dir = make_session(home, HISTORY)
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.pause(0.6)  # one tick of the follow timer: the history is read
        await pilot.press("ctrl+t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunMonitorScreen)
        line = line_of(screen)
        for part in (
            "step 6/20",
            "epoch 0.30",
            "ETA 42 s",
            "loss 0.7654",
            "12.5 samples/s",
            "peak mem 333 MB",
            "lr 8.00e-05",
            "grad norm 0.5432",
            "val loss 0.8500",
            "val macro-F1 0.5000",
        ):
            assert part in line, line
        assert screen.plotted == {
            "training loss": ([2, 4, 6], [1.1, 0.9, 0.7654]),
            "validation loss": ([4], [0.85]),
            "metric": ([4], [0.5]),
        }
        loss_plot = screen.query_one("#loss-plot", PlotextPlot).render().plain
        assert "training loss" in loss_plot and "validation loss" in loss_plot
        metric_plot = screen.query_one("#metric-plot", PlotextPlot).render().plain
        assert "validation macro-F1" in metric_plot
        assert not screen.query_one("#monitor-trials", DataTable).display

        # written after it opened: shown after a tick of the follow timer
        append(run_dir, log(8, 0.6, eta_s=30), evaluation(8, 0.7, 0.625))
        await wait_for(pilot, lambda: screen.plotted["training loss"][0] == [2, 4, 6, 8])
        assert screen.plotted["validation loss"] == ([4, 8], [0.85, 0.7])
        assert screen.plotted["metric"] == ([4, 8], [0.5, 0.625])
        assert "step 8/20" in line_of(screen) and "ETA 30 s" in line_of(screen)
        assert len(screen.events) == len(HISTORY) + 2

        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RunMonitorScreen)

        # opened again mid-run: the whole history again, from the app's copy
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, RunMonitorScreen) and app.screen is not screen
        assert app.screen.plotted["training loss"][0] == [2, 4, 6, 8]
        await pilot.press("ctrl+t")  # ctrl+t closes it too
        await pilot.pause()
        assert not isinstance(app.screen, RunMonitorScreen)


async def test_monitor_redraws_the_plots_at_most_every_few_tenths_of_a_second(home):
    session_id, run_dir = make_session(home, HISTORY)
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunMonitorScreen)
        # the history is drawn first (later on a busy machine): count redraws from there
        await wait_for(pilot, lambda: screen.redraws > 0 and screen.plotted["training loss"][0])
        before = screen.redraws
        for step in (8, 10, 12, 14):
            screen.add_events([log(step, 0.5)])  # four batches at once: one redraw, later
        assert screen.redraws <= before + 1
        await wait_for(pilot, lambda: screen.plotted["training loss"][0][-1:] == [14])
        assert screen.redraws <= before + 2
        assert "step 14/20" in line_of(screen)  # the text is updated at once


async def test_monitor_shows_the_trials_of_a_search(home):
    trial = {"type": "trial", "epochs_reported": 3, "seconds": 9.5, "note": ""}
    first = trial | {"number": 0, "state": "complete", "value": 0.61, "params": {"lr": 2e-5}}
    second = trial | {"number": 1, "state": "pruned", "value": None, "params": {"lr": 1e-6}}
    session_id, run_dir = make_session(home, [*HISTORY, first, second])
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+t")  # a running run: opens whether or not events were read yet
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunMonitorScreen)
        table = screen.query_one("#monitor-trials", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert table.display
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(2)]
        assert rows[0][:4] == ["0 ★", "complete", "0.6100", "3"] and "lr 2e-05" in rows[0][4]
        assert rows[1][:4] == ["1", "pruned", "-", "3"]

        # the next trial starts at step 0: the curves show it alone; it beats the first
        third = trial | {"number": 2, "state": "complete", "value": 0.7, "params": {"lr": 5e-5}}
        append(run_dir, {"type": "start", "step": 0, "max_steps": 20}, log(2, 0.8), third)
        await wait_for(pilot, lambda: table.row_count == 3)
        assert str(table.get_row_at(2)[0]) == "2 ★" and str(table.get_row_at(0)[0]) == "0"
        await wait_for(pilot, lambda: screen.plotted["training loss"] == ([2], [0.8]))
        assert screen.plotted["validation loss"] == ([], [])


async def test_monitor_shows_a_finished_run_from_its_folder(home):
    events = [*HISTORY, evaluation(20, 0.6, 0.7, eval_f1=0.75), {"type": "finished"}]
    session_id, _ = make_session(home, events, stage="results", state="finished")
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunMonitorScreen)
        assert screen.plotted["training loss"] == ([2, 4, 6], [1.1, 0.9, 0.7654])
        assert screen.plotted["metric"] == ([4, 20], [0.5, 0.7])  # the plan's metric
        title = str(screen.query_one("#monitor-title", Static).content)
        assert "run-1" in title and "finished" in title


async def test_monitor_without_a_run_notifies(home):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        notes = []
        app.notify = lambda message, **kw: notes.append(message)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not isinstance(app.screen, RunMonitorScreen)
        assert notes == ["No run yet: start one with Enter after the plan."]
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Run monitor" in titles


# ---------------------------------------------------------------- the pure parts


def test_history_folds_events_into_curves_and_numbers():
    history = RunHistory("macro_f1")
    history.feed(HISTORY)
    assert history.curves() == {
        "training loss": ([2, 4, 6], [1.1, 0.9, 0.7654]),
        "validation loss": ([4], [0.85]),
        "metric": ([4], [0.5]),
    }
    assert (history.step, history.max_steps, history.peak_memory_mb) == (6, 20, 333)
    assert history.state == "training"
    line = progress_line(history)
    assert line.startswith("step 6/20 · epoch 0.30 · ETA 42 s · loss 0.7654"), line
    assert "lr 8.00e-05 · grad norm 0.5432" in line
    ended = RunHistory("macro_f1")
    ended.feed([*HISTORY, {"type": "finished", "headline": {}}])
    assert "ETA" not in progress_line(ended) and "loss 0.7654" in progress_line(ended)

    # out of memory at step 7, resumed from the checkpoint at step 4: the curves go back to 4
    history.feed([{"type": "oom", "step": 4, "batch_size": 4, "grad_accum": 2}])
    assert history.state.startswith("out of memory: continuing with micro-batch 4 x 2")
    history.feed([{"type": "start", "step": 4, "max_steps": 40}])
    assert progress_line(history).startswith("step 4/40 · peak mem 333 MB · val loss 0.8500")
    history.feed([log(6, 0.75, max_steps=40)])
    assert history.curves()["training loss"] == ([2, 4, 6], [1.1, 0.9, 0.75])
    assert history.curves()["validation loss"] == ([4], [0.85])
    assert history.max_steps == 40
    history.feed([{"type": "stopped", "step": 6}])
    assert history.state == "stopped at step 6"


def test_history_picks_the_metric_to_plot():
    with_f1 = [evaluation(5, 0.7, 0.6, eval_f1=0.8), evaluation(10, 0.6, 0.65, eval_f1=0.85)]
    plain = RunHistory()
    plain.feed(HISTORY)
    assert (plain.metric_key, plain.metric_label) == ("eval_macro_f1", "macro-F1")
    f1 = RunHistory()
    f1.feed(with_f1)
    assert f1.metric_key == "eval_f1" and f1.curves()["metric"] == ([5, 10], [0.8, 0.85])
    accuracy = RunHistory("accuracy")
    accuracy.feed(with_f1)
    assert accuracy.metric_key == "eval_accuracy" and accuracy.metric_label == "accuracy"
    # a metric the evals lack falls back; an eval without the key leaves no point
    odd = RunHistory("f1")
    odd.feed([evaluation(5, 0.7, 0.6), {"type": "eval", "step": 10, "metrics": {}}])
    assert odd.metric_key == "eval_macro_f1" and odd.curves()["metric"] == ([5], [0.6])


def test_history_without_logs_and_with_odd_events():
    history = RunHistory()
    assert progress_line(history) == "waiting for the worker to start…"
    history.feed([{"type": "start", "step": 0, "max_steps": 50}, {"type": "log", "step": 1}])
    assert progress_line(history) == "step 1/50"
    assert history.curves()["training loss"] == ([], [])
    history.feed([{"type": "error", "message": "boom"}, {"type": "something new"}])
    assert history.state == "error: boom"


def test_thin_ticks_and_durations():
    xs = list(range(1000))
    tx, ty = thin(xs, [x * 2 for x in xs], limit=100)
    assert len(tx) == 100 and tx[0] == 0 and tx[-1] == 999 and ty == [x * 2 for x in tx]
    assert thin([1, 2], [3, 4]) == ([1, 2], [3, 4])
    assert step_ticks(20) == [0, 5, 10, 15, 20]
    assert step_ticks(3) == [0, 1, 2, 3]
    assert step_ticks(1234) == [0, 500, 1000]
    assert step_ticks(0) == [0]
    assert [duration(s) for s in (42, 200, 3900)] == ["42 s", "3 min 20 s", "1 h 05 min"]


def test_a_long_run_is_read_with_its_log_lines_sampled(tmp_path):
    """200,000 events would take seconds to parse: every other event is kept, the per-step
    log lines are sampled (the last kept), the peak memory is taken over all of them."""
    from assistant.monitor import read_run_events

    events = [{"type": "start", "step": 0, "max_steps": 6000}]
    for step in range(1, 6001):
        events.append(log(step, 1.0 / step, max_steps=6000, memory_mb=300 + (step == 4321)))
        if step % 100 == 0:
            events.append(evaluation(step, 0.5, step / 6000))
        if step == 3000:
            events.append({"type": "start", "step": 2500, "max_steps": 6000})  # a resume
    events.append({"type": "finished"})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))

    sampled, peak = read_run_events(tmp_path, max_logs=300)
    others = [e for e in events if e["type"] != "log"]
    assert [e for e in sampled if e["type"] != "log"] == others
    logs = [e for e in sampled if e["type"] == "log"]
    assert 300 <= len(logs) <= 300 + len(others) + 1
    assert logs[-1]["step"] == 6000 and peak == 301
    full, part = RunHistory("macro_f1"), RunHistory("macro_f1")
    full.feed(events)
    part.feed(sampled)
    assert part.curves()["metric"] == full.curves()["metric"]
    assert part.train_loss.xs[-1] == 6000 and part.step == full.step == 6000
    assert set(part.train_loss.xs) <= set(full.train_loss.xs)
    assert progress_line(part).split(" · ")[:2] == progress_line(full).split(" · ")[:2]


async def test_a_big_finished_run_opens_the_monitor_at_once_and_reads_in_a_thread(
    home, monkeypatch
):
    from assistant import monitor

    monkeypatch.setattr(monitor, "LOAD_INLINE_BYTES", 100)  # this small file counts as big
    events = [*HISTORY, evaluation(20, 0.6, 0.7), {"type": "finished"}]
    session_id, _ = make_session(home, events, stage="results", state="finished")
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+t")
        screen = app.screen
        assert isinstance(screen, RunMonitorScreen)
        await wait_for(pilot, lambda: not screen.loading)
        await wait_for(pilot, lambda: screen.plotted.get("metric") == ([4, 20], [0.5, 0.7]))
        assert "peak mem 333 MB" in line_of(screen)


async def test_a_running_run_with_a_long_backlog_is_followed_from_a_sample(home, monkeypatch):
    import assistant.app

    monkeypatch.setattr(assistant.app, "BIG_BACKLOG_BYTES", 100)  # this file counts as long
    session_id, run_dir = make_session(home, HISTORY)
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await wait_for(pilot, lambda: len(app._run_events.get(str(run_dir), [])) == len(HISTORY))
        append(run_dir, log(8, 0.6))  # followed from where the sampled read ended
        await wait_for(pilot, lambda: len(app._run_events[str(run_dir)]) == len(HISTORY) + 1)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.screen.plotted["training loss"][0] == [2, 4, 6, 8]
