"""The data view: how the data was read, a label bar chart, a token-length histogram, the
findings table with sample rows for the selected finding, and the baseline.

It only displays the planner's state (the `spec`, `profile` and `baseline` dicts); it calls
nothing. Charts are drawn with block characters so they render in any terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from assistant.pacing import PacedScreen
from assistant.widgets import KeyFooter

SEVERITY_STYLE = {"high": "bold red", "medium": "dark_orange", "low": "yellow", "info": "cyan"}
BAR = "█"


def label_chart(label_counts: dict[str, int], width: int = 28) -> Text:
    """One bar per label, longest first, scaled to the largest count."""
    text = Text()
    if not label_counts:
        return text
    top = max(label_counts.values())
    total = sum(label_counts.values())
    name_width = min(18, max(len(k) for k in label_counts))
    for name, count in sorted(label_counts.items(), key=lambda kv: -kv[1]):
        bar = BAR * max(1, round(width * count / top))
        text.append(f"{name[:name_width]:<{name_width}} ", style="bold")
        text.append(bar, style="green")
        text.append(f" {count} ({count / total:.0%})\n", style="dim")
    return text


def length_histogram(
    share_longer_than: dict[str, float],
    token_lengths: dict[str, int],
    width: int = 28,
    bins: int = 12,
) -> Text:
    """Share of texts per token-length bin, from the profile's 'longer than t' shares."""
    points = sorted((int(k), v) for k, v in share_longer_than.items())
    text = Text()
    if not points:
        return text
    limit = max(8, token_lengths.get("max", points[-1][0]))
    step = max(8, ((limit // bins) + 7) // 8 * 8)  # bins on multiples of 8 (the stored points)
    shares = dict(points)

    def longer(t: int) -> float:
        below = [v for k, v in points if k <= t]
        return shares.get(t, below[-1] if below else 1.0)

    rows = []
    low = 0
    while low < limit:
        high = low + step
        rows.append((low, high, longer(low) - longer(high) if low else 1.0 - longer(high)))
        low = high
    top = max(share for _, _, share in rows) or 1.0
    for low, high, share in rows:
        text.append(f"{low:>4}-{high:<4} ", style="bold")
        text.append(BAR * round(width * share / top), style="blue")
        text.append(f" {share:.1%}\n", style="dim")
    text.append(
        f"median {token_lengths.get('p50')}, p90 {token_lengths.get('p90')}, "
        f"p99 {token_lengths.get('p99')}, max {token_lengths.get('max')} tokens",
        style="dim",
    )
    return text


def samples_text(finding: dict[str, Any]) -> Text:
    text = Text()
    text.append(finding.get("title", ""), style="bold")
    text.append(
        f"  [{finding.get('severity', '')}]\n",
        style=SEVERITY_STYLE.get(finding.get("severity"), ""),
    )
    text.append(finding.get("detail", "") + "\n")
    if finding.get("fix_text"):
        text.append("Fix: ", style="bold")
        text.append(finding["fix_text"] + "\n")
    for sample in finding.get("samples", [])[:5]:
        text.append(f"  {sample.get('split', '')} row {sample.get('row', '')}: ", style="dim")
        text.append(repr(str(sample.get("text", ""))[:100]))
        text.append(f" → {sample.get('label', '')}", style="cyan")
        extra = {k: v for k, v in sample.items() if k not in ("split", "row", "text", "label")}
        if extra:
            text.append("  " + ", ".join(f"{k}: {v}" for k, v in extra.items()), style="dim")
        text.append("\n")
    return text


class DataScreen(PacedScreen, Screen):
    """The data profile, full screen; Escape goes back to the chat."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+d", "app.pop_screen", "Back to chat", show=False, priority=True),
    ]

    def __init__(self, state: Any) -> None:
        super().__init__()
        self.state = state
        self.findings: list[dict[str, Any]] = list((state.profile or {}).get("findings") or [])

    def _labels_title(self) -> str:
        task = (self.state.profile or {}).get("task")
        if task == "regression":
            return "Targets (train)"
        if task == "multi_label_classification":
            return "Rows per label (train)"
        if task == "token_classification":
            return "Entities per type (train)"
        if task == "instruction_tuning":
            return "Conversations (train)"
        return "Labels (train)"

    def _labels_chart(self) -> Text:
        profile = self.state.profile or {}
        chart = label_chart(profile.get("label_counts", {}))
        if profile.get("task") in (
            "regression",
            "multi_label_classification",
            "token_classification",
            "instruction_tuning",
        ):
            from tuning_core.profile import DataProfile

            chart.append(DataProfile.from_dict(profile).labels_line(), style="dim")
        return chart

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="data-view"):
            yield Static(self._reading(), id="data-reading")
            with Horizontal(id="data-charts"):
                with Vertical(classes="data-chart"):
                    yield Static(self._labels_title(), classes="data-title")
                    yield Static(self._labels_chart(), id="label-chart")
                with Vertical(classes="data-chart"):
                    yield Static("Tokens per text (train)", classes="data-title")
                    profile = self.state.profile or {}
                    yield Static(
                        length_histogram(
                            profile.get("share_longer_than", {}), profile.get("token_lengths", {})
                        ),
                        id="length-histogram",
                    )
            yield Static(
                f"Findings ({len(self.findings)}) — select one for sample rows",
                classes="data-title",
            )
            yield DataTable(id="findings", cursor_type="row", zebra_stripes=True)
            yield Static("", id="finding-samples")
        yield KeyFooter()

    def _reading(self) -> Text:
        spec, profile = self.state.spec or {}, self.state.profile or {}
        text = Text()
        if not spec:
            return Text("No data loaded yet.")
        name = Path(self.state.source or spec["files"]["train"]).name
        text.append(f"{name}", style="bold")
        text.append(
            f"  text column '{spec['text_column']}', label column '{spec['label_column']}', "
        )
        text.append(f"{len(spec['labels'])} labels; rows: ")
        text.append(", ".join(f"{k} {v}" for k, v in profile.get("rows", {}).items()))
        if self.state.data_versions:
            text.append(
                f"\nfixed version v{self.state.data_versions[-1]['version']} (your file is unchanged)",
                style="green",
            )
        baseline = self.state.baseline
        if baseline:
            tfidf, majority = baseline["tfidf_lr"], baseline["majority"]
            if tfidf.get("cv_mean") is not None:
                text.append(
                    f"\nBaseline to beat ({baseline['metric']}): TF-IDF + LR {tfidf['cv_mean']:.4f} "
                    f"± {tfidf['cv_std']:.4f} (CV on train), majority class {majority['cv_mean']:.4f}",
                    style="bold",
                )
        return text

    def on_mount(self) -> None:
        table = self.query_one("#findings", DataTable)
        table.add_columns("severity", "finding", "rows", "suggested fix")
        for i, finding in enumerate(self.findings):
            table.add_row(
                Text(
                    finding.get("severity", ""),
                    style=SEVERITY_STYLE.get(finding.get("severity"), ""),
                ),
                finding.get("title", ""),
                str(finding.get("count", "")),
                finding.get("fix_text") or "—",
                key=str(i),
            )
        if self.findings:
            self.query_one("#finding-samples", Static).update(samples_text(self.findings[0]))
            table.focus()
        else:
            self.query_one("#finding-samples", Static).update("No findings: the data looks clean.")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            finding = self.findings[int(event.row_key.value)]
            self.query_one("#finding-samples", Static).update(samples_text(finding))
