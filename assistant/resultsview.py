"""The results view: the headline numbers of the finished run, the per-class table and the
confusion matrix of the test split, the comparison with the baselines and the judge's
call-outs, and the most confident wrong predictions.

Like the data view it only displays the planner's state (`state.report`, as the planner stores
it after a run, with the judge's verdict under "judge"); it calls nothing. Reports written by
older versions lack some keys (no verdict, no confident errors, no calibration): every part
shows what the report holds and says so when something is missing, never raising.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from assistant.pacing import PacedScreen
from assistant.widgets import KeyFooter
from tuning_core.judge import ECE_CALL_OUT, OTHERS, OVERFIT_GAP, baseline_name, metric_name

MISSING = "—"
ERROR_TEXT_WIDTH = 80  # characters of an error's text shown in its table row
BASELINE_NAMES = {"majority": "majority class", "tfidf_lr": "TF-IDF + logistic regression"}
CONSTANT_NAMES = {
    "instruction_tuning": "—",
    "token_classification": "every word outside an entity",
    "regression": "the mean target",
    "multi_label_classification": "most common label set",
}


def number(value: Any) -> float | None:
    """`value` as a float, or None when it is not a number (missing, None, text, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def fmt(value: Any, spec: str = ".4f") -> str:
    """A number formatted with `spec`, or a dash when there is none."""
    x = number(value)
    return MISSING if x is None else format(x, spec)


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def one_line(text: Any, width: int) -> str:
    """`text` on one line (whitespace collapsed), cut to `width` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class ResultsView:
    """The parts of a report the screen shows, read defensively from `state.report`."""

    def __init__(self, report: dict[str, Any] | None) -> None:
        self.report = mapping(report)
        self.test = mapping(self.report.get("test"))
        self.verdict = mapping(self.report.get("judge"))
        self.metric = str(self.report.get("metric") or self.verdict.get("metric") or "macro_f1")
        self.task = str(
            self.report.get("task") or self.verdict.get("task") or "single_label_classification"
        )
        positive = self.test.get("positive_label")
        self.metric_name = str(
            self.verdict.get("metric_name") or metric_name(self.metric, positive)
        )

    def pick(self, key: str) -> Any:
        """A test-split value, from the test metrics or else from the verdict's copy."""
        value = self.test.get(key)
        return self.verdict.get(key) if value is None else value

    @property
    def official(self) -> float | None:
        value = number(self.test.get(self.metric))
        return number(self.verdict.get("official")) if value is None else value

    @property
    def labels(self) -> list[str]:
        labels = sequence(self.pick("labels"))
        return [str(x) for x in labels] or list(mapping(self.pick("per_class")))

    @property
    def per_class(self) -> list[tuple[str, dict[str, Any]]]:
        scores = mapping(self.pick("per_class"))
        order = dict.fromkeys([x for x in self.labels if x in scores] + list(scores))
        return [(label, mapping(scores[label])) for label in order]

    @property
    def confusion(self) -> list[list[Any]]:
        return [sequence(row) for row in sequence(self.pick("confusion"))]

    @property
    def errors(self) -> list[dict[str, Any]]:
        if self.task == "instruction_tuning":  # no errors: the replies, base and tuned
            return [
                {
                    "text": g.get("question") or g.get("prompt", ""),
                    "true": g.get("reference", ""),
                    "base": g.get("base", ""),
                    "predicted": g.get("tuned", ""),
                }
                for g in sequence(self.test.get("generations"))
                if isinstance(g, dict)
            ]
        errors = self.test.get("confident_errors")
        if errors is None:
            errors = self.verdict.get("confident_errors")
        return [e for e in sequence(errors) if isinstance(e, dict)]

    def gap(self) -> tuple[float | None, float | None, float | None]:
        """(training score, validation score, training minus validation) on the task metric."""
        fit = mapping(self.report.get("train_fit"))
        train = number(fit.get(self.metric))
        if train is None:
            train = number(self.verdict.get("train"))
        val = number(mapping(self.report.get("validation")).get(self.metric))
        if val is None:
            val = number(self.verdict.get("validation"))
        gap = number(self.verdict.get("fit_gap"))
        if gap is None and train is not None and val is not None:
            gap = round(train - val, 4)
        return train, val, gap

    def baselines(self) -> list[tuple[str, float, float | None]]:
        """(name, score, model minus baseline) for each baseline the verdict scored."""
        scores = mapping(self.verdict.get("baselines"))
        deltas = mapping(self.verdict.get("deltas"))
        rows = []
        names = {
            **BASELINE_NAMES,
            "majority": CONSTANT_NAMES.get(self.task, "majority class"),
            "tfidf_lr": baseline_name(self.task),
        }
        for key, name in names.items():
            score = number(scores.get(key))
            if score is None:
                continue
            delta = number(deltas.get(key))
            if delta is None and self.official is not None:
                delta = round(self.official - score, 4)
            rows.append((name, score, delta))
        return rows

    def calls(self) -> list[str]:
        return [str(call) for call in sequence(self.verdict.get("calls"))]

    def tasks(self) -> list[tuple[str, dict[str, Any]]]:
        """The other label sets trained on the same encoder (multi-task), as the judge read
        them: name, then its metric's name, test and validation scores and rows."""
        return [(str(k), mapping(v)) for k, v in mapping(self.verdict.get("tasks")).items()]

    # ---------------------------------------------------------------- text parts

    def header(self, run_id: str | None) -> Text:
        text = Text()
        text.append(run_id or "this run", style="bold")
        rows = self.pick("n")
        if rows is None:
            rows = self.verdict.get("test_rows")
        text.append(f"  test ({rows} rows)" if number(rows) is not None else "  test", style="dim")
        text.append(f"  {self.metric_name} ", style="bold")
        text.append(fmt(self.official), style="bold green")
        for key in OTHERS.get(self.task, OTHERS["single_label_classification"]):
            if key != self.metric:  # the official metric is already shown first
                name = "R²" if key == "r2" else metric_name(key)
                text.append(f"  ·  {name} {fmt(self.pick(key))}")
        ece = number(self.pick("ece"))
        if self.task == "single_label_classification":
            text.append("  ·  ECE ")
            text.append(fmt(ece), style="bold dark_orange" if (ece or 0) > ECE_CALL_OUT else "")
        train, val, gap = self.gap()
        text.append("\ntrain/validation gap ")
        called = self.verdict.get("overfitting")  # the judge's call, when it made one
        overfit = called if isinstance(called, bool) else (gap or 0) > OVERFIT_GAP
        text.append(fmt(gap, "+.4f"), style="bold red" if overfit else "bold")
        if train is not None and val is not None:
            text.append(f" (training {fmt(train)}, validation {fmt(val)})", style="dim")
        if overfit:
            text.append(" — overfitting", style="bold red")
        epochs, train_rows = self.report.get("epochs_run"), self.report.get("train_rows")
        if epochs is not None or train_rows is not None:
            text.append(
                f"\n{epochs if epochs is not None else '?'} epochs run on "
                f"{train_rows if train_rows is not None else '?'} training rows, best epoch kept",
                style="dim",
            )
        return text

    def calls_text(self) -> Text:
        if not self.verdict:
            return Text("No verdict in this report (it was written before the judge).", "dim")
        calls = self.calls()
        if not calls:
            return Text("No call-outs: nothing stood out.", style="dim")
        text = Text()
        for i, call in enumerate(calls):
            text.append("• ", style="bold dark_orange")
            text.append(call + ("\n" if i < len(calls) - 1 else ""))
        return text


def error_detail(error: dict[str, Any]) -> Text:
    text = Text()
    if "base" in error:  # an instruction-tuned model's reply beside the base model's
        text.append("prompt: ", style="dim")
        text.append(f"{error.get('text', '')}\n")
        text.append("reference: ", style="dim")
        text.append(f"{error.get('true', '')}\n", style="green")
        text.append("base model: ", style="dim")
        text.append(f"{error.get('base', '')}\n")
        text.append("tuned: ", style="dim")
        text.append(str(error.get("predicted", "")), style="bold")
        return text
    text.append(f"row {error.get('row', '?')}: ", style="dim")
    text.append(f"true {error.get('true', '?')}", style="green")
    text.append(f", predicted {error.get('predicted', '?')}", style="red")
    if "error" in error:  # regression: how far off
        text.append(f", off by {fmt(error.get('error'), '+.3f')}\n", style="dim")
    else:
        text.append(f" with confidence {fmt(error.get('confidence'), '.3f')}\n", style="dim")
    text.append(str(error.get("text", "")))
    return text


class ResultsScreen(PacedScreen, Screen):
    """The finished run's results, full screen; Escape goes back to the chat."""

    DEFAULT_CSS = """
    #results-view {
        padding: 0 1;
    }
    #results-header {
        margin: 1 0 0 0;
    }
    .results-title {
        text-style: bold;
        color: $secondary;
        margin: 1 0 0 0;
    }
    #results-tables {
        height: auto;
    }
    .results-half {
        width: 1fr;
        height: auto;
        margin: 0 1 0 0;
    }
    #per-class, #confusion, #baselines {
        height: auto;
        max-height: 16;
    }
    #errors {
        height: auto;
        max-height: 14;
    }
    #calls, #error-text {
        margin: 1 0 0 0;
        padding: 0 1;
        border-left: thick $secondary 60%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+r", "app.pop_screen", "Back to chat", show=False, priority=True),
    ]

    def __init__(self, state: Any) -> None:
        super().__init__()
        self.state = state
        self.results = ResultsView(getattr(state, "report", None))
        self.errors = self.results.errors

    def compose(self) -> ComposeResult:
        view = self.results
        yield Header()
        with VerticalScroll(id="results-view"):
            yield Static(view.header(getattr(self.state, "run_id", None)), id="results-header")
            with Horizontal(id="results-tables"):
                with Vertical(classes="results-half"):
                    yield Static("Per class (test)", classes="results-title")
                    yield DataTable(id="per-class", cursor_type="row", zebra_stripes=True)
                with Vertical(classes="results-half"):
                    yield Static(
                        "Confusion matrix (rows: true, columns: predicted)",
                        classes="results-title",
                    )
                    yield DataTable(id="confusion", cursor_type="cell")
            yield Static(
                f"Against the baselines ({view.metric_name} on the same test rows)",
                classes="results-title",
            )
            yield DataTable(id="baselines", cursor_type="row")
            if view.tasks():
                yield Static(
                    "Other tasks trained on the same encoder (a head each)",
                    classes="results-title",
                )
                yield DataTable(id="other-tasks", cursor_type="row")
            yield Static(view.calls_text(), id="calls")
            yield Static(
                f"Replies to {len(self.errors)} held-out prompts, base model and tuned — "
                "select one to read it whole"
                if view.task == "instruction_tuning"
                else f"Most confident errors ({len(self.errors)}) — select one for its whole text",
                classes="results-title",
            )
            yield DataTable(id="errors", cursor_type="row", zebra_stripes=True)
            yield Static("", id="error-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._fill_per_class()
        self._fill_confusion()
        self._fill_baselines()
        self._fill_tasks()
        # the errors table, at the bottom, is filled after the first frame: the screen's first
        # layout and drawing is then one step of about 30 ms, not 40 (bench/ui_stalls.py)
        self.call_after_refresh(self._fill_errors)

    def _fill_per_class(self) -> None:
        table = self.query_one("#per-class", DataTable)
        table.add_columns("class", "precision", "recall", "F1", "support")
        for label, m in self.results.per_class:
            support = m.get("support")
            table.add_row(
                Text(label, style="bold"),
                fmt(m.get("precision")),
                fmt(m.get("recall")),
                fmt(m.get("f1")),
                fmt(support, ".0f") if support is not None else MISSING,
                key=label,
            )
        table.display = table.row_count > 0

    def _fill_confusion(self) -> None:
        table = self.query_one("#confusion", DataTable)
        matrix = self.results.confusion
        labels = self.results.labels
        width = max([len(labels), *(len(row) for row in matrix)], default=0)
        names = labels + [str(i) for i in range(len(labels), width)]
        if not matrix:
            table.display = False
            return
        table.add_column(Text("true \\ predicted", style="dim"), key="true")
        for i, name in enumerate(names):
            table.add_column(Text(name, style="bold"), key=f"p{i}")
        for r, row in enumerate(matrix):
            cells: list[Text] = [Text(names[r] if r < len(names) else str(r), style="bold")]
            for c in range(width):
                count = row[c] if c < len(row) else None
                shown = fmt(count, ".0f") if number(count) is not None else MISSING
                if r == c:
                    style = "bold black on green"
                elif number(count):
                    style = "red"
                else:
                    style = "dim"
                cells.append(Text(shown, style=style, justify="right"))
            table.add_row(*cells, key=f"t{r}")

    def _fill_baselines(self) -> None:
        table = self.query_one("#baselines", DataTable)
        rows = self.results.baselines()
        if not rows:
            table.display = False
            return
        table.add_columns("model", self.results.metric_name, "model - baseline")
        table.add_row(Text("fine-tuned model", style="bold"), fmt(self.results.official), "")
        for name, score, delta in rows:
            style = "green" if (delta or 0) > 0 else "bold red"
            table.add_row(name, fmt(score), Text(fmt(delta, "+.4f"), style=style))

    def _fill_tasks(self) -> None:
        tasks = self.results.tasks()
        if not tasks:
            return
        table = self.query_one("#other-tasks", DataTable)
        table.add_columns("task", "metric", "test", "validation", "training rows", "loss weight")
        for name, t in tasks:
            table.add_row(
                Text(name, style="bold"),
                str(t.get("metric_name", "")),
                fmt(t.get("official")),
                fmt(t.get("validation")),
                fmt(t.get("train_rows"), ".0f"),
                fmt(t.get("weight"), "g"),
            )

    def _fill_errors(self) -> None:
        table = self.query_one("#errors", DataTable)
        detail = self.query_one("#error-text", Static)
        if not self.errors:
            table.display = False
            detail.update(Text("No confident errors in this report.", style="dim"))
            return
        if self.results.task == "instruction_tuning":
            table.add_columns("prompt", "reference", "base", "tuned")
            for i, reply in enumerate(self.errors):
                table.add_row(
                    *(
                        one_line(reply.get(k, ""), 30)
                        for k in ("text", "true", "base", "predicted")
                    ),
                    key=str(i),
                )
            detail.update(error_detail(self.errors[0]))
            return
        regression = self.results.task == "regression"
        table.add_columns("error" if regression else "confidence", "true", "predicted", "text")
        for i, error in enumerate(self.errors):
            table.add_row(
                fmt(error.get("error"), "+.3f")
                if regression
                else fmt(error.get("confidence"), ".3f"),
                Text(str(error.get("true", MISSING)), style="green"),
                Text(str(error.get("predicted", MISSING)), style="red"),
                one_line(error.get("text", ""), ERROR_TEXT_WIDTH),
                key=str(i),
            )
        detail.update(error_detail(self.errors[0]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "errors" or event.row_key.value is None:
            return
        self.query_one("#error-text", Static).update(
            error_detail(self.errors[int(event.row_key.value)])
        )
