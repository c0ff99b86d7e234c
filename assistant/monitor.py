"""The run monitor: a full screen over one run's events (the followed run, or a finished one).

It shows the training and validation loss curves in one plot and the validation metric (the
plan's) in another, drawn with textual-plotext; a line with step, epoch, ETA, speed, peak
memory, learning rate and grad norm; and during a search the trials table.

The screen keeps its own copy of every event of the run: the app hands it the events read so
far when it opens and forwards new ones (`add_events`) as its follow timer reads them. Folding
events into curves and numbers is `RunHistory`, which touches no widget. The text updates at
once; the plots are redrawn at most once every REDRAW_S seconds, with at most MAX_POINTS points
a curve, so a long run never makes a redraw slow.

A run the app did not follow (a finished one) is read from its events file by the screen
itself (`load_from`): `read_run_events` keeps every event but the per-step `log` lines, of
which it parses at most about LOG_SAMPLE evenly spaced ones (and the last before each other
event); the peak memory is still taken over every line. A file over LOAD_INLINE_BYTES is read
in a thread, so a run of 200,000 events opens the screen at once and its curves follow.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Header, Static
from textual_plotext import PlotextPlot

from assistant.pacing import PacedScreen
from assistant.resultsview import number
from assistant.widgets import TRIAL_COLUMNS, KeyFooter, fill_trials_table
from tuning_core.judge import metric_name

REDRAW_S = 0.3  # the plots are redrawn at most this often
MAX_POINTS = 400  # points drawn a curve; longer curves are thinned evenly (ends kept)
WAITING = "waiting for the worker to start…"
LOG_SAMPLE = 4000  # per-step log events parsed from a run's file, at most (about)
LOAD_INLINE_BYTES = 1 << 20  # events files up to this size are read at once, larger in a thread
LOG_MARK = b'"type": "log"'  # how the worker's json.dumps writes a log event's type
MEMORY_RE = re.compile(rb'"memory_mb": ([0-9.eE+-]+)')


def read_run_events(
    run_dir: Path, max_logs: int = LOG_SAMPLE
) -> tuple[list[dict[str, Any]], float | None]:
    """A run's events for the monitor, and the peak `memory_mb` over all of its log lines
    (see `read_run_backlog`)."""
    events, peak, _ = read_run_backlog(run_dir, max_logs)
    return events, peak


def read_run_backlog(
    run_dir: Path, max_logs: int = LOG_SAMPLE
) -> tuple[list[dict[str, Any]], float | None, int]:
    """A run's events for the monitor, the peak `memory_mb` over all of its log lines, and
    the byte offset after the last complete line (to follow the file from).

    Every event but `log` ones is kept, in order; of the log lines, every k-th (k chosen so
    that about `max_logs` are kept), the last one before each other event and the very last.
    Curves are thinned to MAX_POINTS points when drawn, so they look the same; parsing
    200,000 JSON lines would take seconds."""
    try:
        data = (Path(run_dir) / "events.jsonl").read_bytes()
    except OSError:
        return [], None, 0
    data = data[: data.rfind(b"\n") + 1]  # a line being written is not complete yet
    peak = max((float(m) for m in MEMORY_RE.findall(data)), default=None)
    stride = max(1, math.ceil(data.count(LOG_MARK) / max(1, max_logs)))
    events: list[dict[str, Any]] = []

    def parse(line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            events.append(event)

    skipped = None  # the newest log line not parsed
    count = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        if LOG_MARK in line:
            count += 1
            if count % stride:
                skipped = line
                continue
            skipped = None
        elif skipped is not None:
            parse(skipped)
            skipped = None
        parse(line)
    if skipped is not None:
        parse(skipped)
    return events, peak, len(data)


class Curve:
    """(step, value) points in step order. A point at or before the last step replaces the
    points from that step on: the run went back (a resume from a checkpoint)."""

    def __init__(self) -> None:
        self.xs: list[int] = []
        self.ys: list[Any] = []

    def add(self, x: int, y: Any) -> None:
        if self.xs and x <= self.xs[-1]:
            self.cut(x - 1)
        self.xs.append(x)
        self.ys.append(y)

    def cut(self, step: int) -> None:
        """Drop the points after `step`."""
        keep = sum(1 for x in self.xs if x <= step)
        del self.xs[keep:], self.ys[keep:]


class RunHistory:
    """What the monitor shows, folded from a run's events in order.

    A `start` event at step s (a new trial of a search starts at 0, a resume after running out
    of memory at its checkpoint's step) drops the curves' points after s, so the curves always
    show the training now going on, not the one it replaced."""

    def __init__(self, metric: str | None = None) -> None:
        self.metric = metric  # the plan's metric ("macro_f1", "f1", "accuracy"), if known
        self.train_loss = Curve()
        self.evals = Curve()  # y: the eval event's metrics dict
        self.latest: dict[str, Any] = {}  # the last log event
        self.step: int | None = None
        self.max_steps: int | None = None
        self.peak_memory_mb: float | None = None
        self.trials: dict[int, dict[str, Any]] = {}
        self.state = WAITING

    def feed(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type")
            step = number(event.get("step"))
            if kind in ("start", "log") and number(event.get("max_steps")):
                self.max_steps = int(event["max_steps"])
            if kind == "start":
                self.step = int(step or 0)
                self.latest = {}  # the numbers of the training it replaced no longer hold
                self.train_loss.cut(self.step)
                self.evals.cut(self.step)
                self.state = "training"
            elif kind == "log" and step is not None:
                self.step = int(step)
                self.latest = event
                memory = number(event.get("memory_mb"))
                if memory is not None:
                    self.peak_memory_mb = max(memory, self.peak_memory_mb or 0.0)
                loss = number(event.get("loss"))
                if loss is not None:
                    self.train_loss.add(int(step), loss)
                self.state = "training"
            elif kind == "eval" and step is not None:
                metrics = event.get("metrics")
                self.evals.add(int(step), metrics if isinstance(metrics, dict) else {})
            elif kind == "trial" and number(event.get("number")) is not None:
                self.trials[int(event["number"])] = event
            elif kind == "oom":
                self.state = (
                    f"out of memory: continuing with micro-batch {event.get('batch_size')} x "
                    f"{event.get('grad_accum')} accumulation"
                )
            elif kind == "judging":
                self.state = "scoring the test rows and the baselines"
            elif kind == "stopped":
                self.state = f"stopped at step {event.get('step')}"
            elif kind == "error":
                self.state = f"error: {event.get('message')}"
            elif kind == "finished":
                self.state = "finished"

    @property
    def metric_key(self) -> str:
        """The eval metric to plot: the plan's when the evals have it, else `eval_f1` when
        they have that (a positive class), else `eval_macro_f1`."""
        keys = {key for metrics in self.evals.ys for key in metrics}
        if self.metric and f"eval_{self.metric}" in keys:
            return f"eval_{self.metric}"
        for key in ("eval_f1", "eval_macro_f1", "eval_micro_f1", "eval_pearson", "eval_entity_f1"):
            if key in keys:
                return key
        return "eval_loss" if "eval_loss" in keys else "eval_macro_f1"

    @property
    def metric_label(self) -> str:
        return metric_name(self.metric_key.removeprefix("eval_"))

    def eval_curve(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one eval metric, over the evals that have it."""
        pairs = zip(self.evals.xs, self.evals.ys, strict=True)
        points = [(x, y) for x, m in pairs if (y := number(m.get(key))) is not None]
        return [x for x, _ in points], [y for _, y in points]

    def curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """The plotted curves: training loss, validation loss and the validation metric."""
        return {
            "training loss": (list(self.train_loss.xs), list(self.train_loss.ys)),
            "validation loss": self.eval_curve("eval_loss"),
            "metric": self.eval_curve(self.metric_key),
        }


class CurvePlot(PlotextPlot):
    """A plotext plot whose figure is built in a message of its own, never while the screen
    draws.

    `PlotextPlot.render` builds the whole figure (plotext's canvas, then Rich's ANSI decoding)
    each time the widget is drawn: at 160x48 the two plots took about a third of the step in
    which the monitor first appeared (31 of 92 ms under cProfile). Here `render` returns the figure
    last built; when the data (`changed`), the size or the theme differ from what it was built
    for, it shows that one (blank the first time) and asks for a build through the widget's
    own message queue, which then redraws the plot alone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._version = 0  # counts the changes of the data
        self._built: tuple[tuple[Any, ...], Text] | None = None
        self._build_asked = False

    def changed(self) -> None:
        """The figure's data changed: build it again."""
        self._version += 1
        self.refresh()

    def _wanted(self) -> tuple[Any, ...]:
        return (self.size, self.app.theme, self._version)

    def render(self) -> Text:
        if self._built is not None and self._built[0] == self._wanted():
            return self._built[1]
        if not self._build_asked:
            self._build_asked = True
            self.call_later(self._build)
        return self._built[1] if self._built is not None else Text("")

    def _build(self) -> None:
        self._build_asked = False
        if self._built is None or self._built[0] != self._wanted():
            self._built = (self._wanted(), super().render())
            self.refresh()


def duration(seconds: float) -> str:
    """42 s, 3 min 20 s, 1 h 05 min."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_line(history: RunHistory) -> str:
    """Step of max_steps, epoch, ETA, loss, speed, peak memory, learning rate and grad norm of
    the last log event (and the last evaluation's numbers)."""
    e = history.latest
    parts = []
    if history.step is not None:
        total = f"/{history.max_steps}" if history.max_steps else ""
        parts.append(f"step {history.step}{total}")
    formats = (
        ("epoch", "epoch {:.2f}"),
        ("eta_s", "ETA {}"),
        ("loss", "loss {:.4f}"),
        ("samples_per_s", "{:.1f} samples/s"),
    )
    ended = history.state == "finished" or history.state.startswith(("stopped", "error"))
    for key, form in formats:
        if key == "eta_s" and ended:
            continue  # the last estimate of a run that has ended
        value = number(e.get(key))
        if value is not None:
            parts.append(form.format(duration(value) if key == "eta_s" else value))
    if history.peak_memory_mb is not None:
        parts.append(f"peak mem {history.peak_memory_mb:.0f} MB")
    for key, form in (("learning_rate", "lr {:.2e}"), ("grad_norm", "grad norm {:.4f}")):
        value = number(e.get(key))
        if value is not None:
            parts.append(form.format(value))
    _, val_loss = history.eval_curve("eval_loss")
    _, metric = history.eval_curve(history.metric_key)
    if val_loss:
        parts.append(f"val loss {val_loss[-1]:.4f}")
    if metric:
        parts.append(f"val {history.metric_label} {metric[-1]:.4f}")
    return " · ".join(parts) or WAITING


def thin(xs: list[Any], ys: list[Any], limit: int = MAX_POINTS) -> tuple[list[Any], list[Any]]:
    """At most `limit` points, evenly spaced, the first and the last always kept."""
    if len(xs) <= limit:
        return list(xs), list(ys)
    last = len(xs) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [xs[i] for i in picks], [ys[i] for i in picks]


def step_ticks(high: float, count: int = 5) -> list[int]:
    """Round whole-number ticks from 0 to `high`: steps of 1, 2 or 5 times a power of ten."""
    if high <= 0:
        return [0]
    raw = high / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    width = next((m * power for m in (1, 2, 5, 10) if m * power >= raw), 10 * power)
    width = max(1, int(width))
    return list(range(0, int(high) + 1, width))


class RunMonitorScreen(PacedScreen, Screen):
    """Curves, progress and trials of one run, full screen; Escape (or ctrl+t) goes back."""

    DEFAULT_CSS = """
    #monitor {
        padding: 0 1;
    }
    #monitor-title {
        margin: 1 0 0 0;
    }
    #monitor-line {
        color: $text-muted;
    }
    #monitor-plots {
        height: 1fr;
        min-height: 10;
        margin: 1 0 0 0;
    }
    RunMonitorScreen.-narrow #monitor-plots {
        layout: vertical;
    }
    #monitor-plots CurvePlot {
        min-height: 5;
    }
    #monitor-trials-title {
        text-style: bold;
        color: $secondary;
        margin: 1 0 0 0;
    }
    #monitor-trials {
        height: auto;
        max-height: 10;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(
        self,
        events: Iterable[dict[str, Any]],
        run_id: str | None = None,
        run_key: str | None = None,
        metric: str | None = None,
        load_from: Path | None = None,
    ) -> None:
        """`load_from`: a run folder whose events file the screen reads itself (see
        `read_run_events`), for a run the app has not been following."""
        super().__init__()
        self.run_id = run_id
        self.run_key = run_key  # the run folder, as the app keys it
        self.load_from = Path(load_from) if load_from is not None else None
        self.loading = False
        self.events: list[dict[str, Any]] = list(events)
        self.history = RunHistory(metric)
        self.history.feed(self.events)
        self.plotted: dict[str, tuple[list[int], list[float]]] = {}  # as last drawn
        self.redraws = 0
        self._last_redraw = 0.0
        self._redraw_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="monitor"):
            yield Static("", id="monitor-title")
            yield Static(WAITING, id="monitor-line")
            with Horizontal(id="monitor-plots"):
                yield CurvePlot(id="loss-plot")
                yield CurvePlot(id="metric-plot")
            yield Static("Trials of the search", id="monitor-trials-title")
            yield DataTable(id="monitor-trials", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#monitor-trials", DataTable).add_columns(*TRIAL_COLUMNS)
        for plot_id in ("#loss-plot", "#metric-plot"):
            plt = self.query_one(plot_id, CurvePlot).plt
            plt.xlabel("step")
        if self.load_from is not None:
            path = self.load_from / "events.jsonl"
            if path.exists() and path.stat().st_size > LOAD_INLINE_BYTES:
                self.loading = True
                self._load_in_thread(self.load_from)
            else:
                self._loaded(*read_run_events(self.load_from), show=False)
        self._show_text()
        self._show_trials()
        self._redraw()

    @work(thread=True, exclusive=True, group="monitor-load")
    def _load_in_thread(self, run_dir: Path) -> None:
        events, peak = read_run_events(run_dir)
        try:
            self.app.call_from_thread(self._loaded, events, peak)
        except RuntimeError:
            pass  # the app has closed meanwhile

    def _loaded(self, events: list[dict[str, Any]], peak: float | None, show: bool = True) -> None:
        """The events read from the run's file (before any the app forwarded since)."""
        self.loading = False
        self.events[:0] = events
        history = RunHistory(self.history.metric)
        history.feed(self.events)
        if peak is not None:
            history.peak_memory_mb = max(peak, history.peak_memory_mb or 0.0)
        self.history = history
        if show and self.is_mounted:
            self._show_text()
            self._show_trials()
            self._schedule_redraw()

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """New events of the run, in order (from the app's follow timer)."""
        if not events:
            return
        self.events.extend(events)
        self.history.feed(events)
        if not self.is_mounted:
            return  # on_mount shows everything
        self._show_text()
        if any(e.get("type") == "trial" for e in events):
            self._show_trials()
        if any(e.get("type") in ("start", "log", "eval") for e in events):
            self._schedule_redraw()

    # ------------------------------------------------------------ text and table

    def _show_text(self) -> None:
        title = Text()
        title.append(f"Run {self.run_id}" if self.run_id else "Run", style="bold")
        state = self.history.state
        style = "red" if state.startswith(("error", "out of memory")) else "green"
        title.append(f"  {state}", style=style if state != WAITING else "dim")
        self.query_one("#monitor-title", Static).update(title)
        line = "reading the run's events…" if self.loading else progress_line(self.history)
        self.query_one("#monitor-line", Static).update(line)

    def _show_trials(self) -> None:
        table = self.query_one("#monitor-trials", DataTable)
        shown = bool(self.history.trials)
        if shown:
            fill_trials_table(table, self.history.trials)
        table.display = shown
        self.query_one("#monitor-trials-title", Static).display = shown

    # ------------------------------------------------------------ plots

    def _schedule_redraw(self) -> None:
        """Redraw now if the last redraw is REDRAW_S old, else once when it is."""
        if self._redraw_timer is not None:
            return  # one is already due and will draw the newest data
        wait = self._last_redraw + REDRAW_S - time.monotonic()
        if wait <= 0:
            self._redraw()
        else:
            self._redraw_timer = self.set_timer(wait, self._redraw)

    def _redraw(self) -> None:
        self._redraw_timer = None
        self._last_redraw = time.monotonic()
        self.redraws += 1
        history = self.history
        self.plotted = history.curves()
        ticks = step_ticks(history.max_steps) if history.max_steps else None

        loss_plot = self.query_one("#loss-plot", CurvePlot)
        plt = loss_plot.plt
        plt.clear_data()
        plt.title("loss")
        for label, marker in (("training loss", "braille"), ("validation loss", "dot")):
            xs, ys = self.plotted[label]
            if xs:
                plt.plot(*thin(xs, ys), marker=marker, label=label)
        self._axes(plt, ticks)
        loss_plot.changed()

        metric_plot = self.query_one("#metric-plot", CurvePlot)
        plt = metric_plot.plt
        plt.clear_data()
        xs, ys = self.plotted["metric"]
        plt.title(f"validation {history.metric_label}")
        if xs:
            plt.plot(*thin(xs, ys), marker="braille", label=history.metric_label)
        self._axes(plt, ticks)
        metric_plot.changed()

    def _axes(self, plt: Any, ticks: list[int] | None) -> None:
        if ticks:  # both plots span the whole run, so their steps line up
            plt.xlim(0, self.history.max_steps)
            plt.xticks(ticks)
