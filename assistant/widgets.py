"""The app's widgets and modal screens: chat messages (and the button that shows older ones),
the plan panel, the run panel, the session picker (with its title and delete dialogs), the
read-only offer for a session open elsewhere, and the quit confirmation.

They only display what they are given (plan dicts, run events, session summaries). None of
them calls the conversation or the training core: the app (`assistant.app`) does that in
worker threads and hands the results here. The one exception is the session picker, which
renames and deletes saved sessions through the `SessionStore` it is given (small, quick
writes; a session another tunesmith has open is refused with a message).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from rich.markdown import Markdown as RichMarkdown
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Static,
)
from textual.widgets.option_list import Option, OptionDoesNotExist

from assistant.pacing import PacedScreen
from assistant.planner import STAGES, plan_rows
from assistant.store import SessionLocked, SessionStore, clean_title, run_is_active
from tuning_core.errors import SessionError

NEW_SESSION = "__new__"
# shorter labels where the planner's own would squeeze the values in a 30-column panel
SHORT_LABELS = {"label_smoothing": "Smoothing", "early_stopping_patience": "Early stop"}


class RenderedOnce:
    """A Rich renderable that renders `renderable` once per set of console options and keeps
    the segments. Textual lays a widget out by rendering its content to count the lines, then
    renders it again to draw it, and does both again on every layout change (a new message, the
    side panel shown or hidden, a theme): for a chat of Markdown replies that was most of the
    time the event loop spent in each screen update (bench/ui_stalls.py)."""

    KEEP = 3  # widths kept: hiding and showing the plan pane (ctrl+b) goes back and forth

    def __init__(self, renderable) -> None:
        self.renderable = renderable
        self._rendered: dict[tuple, list] = {}

    def __rich_console__(self, console, options):
        key = (options.max_width, options.justify, options.overflow, options.no_wrap)
        segments = self._rendered.pop(key, None)
        if segments is None:
            segments = list(console.render(self.renderable, options))
            if len(self._rendered) >= self.KEEP:
                del self._rendered[next(iter(self._rendered))]  # the least recently used
        self._rendered[key] = segments
        return segments

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self.renderable)

    def prerender(self, console, width: int) -> None:
        """Render for `width` cells now (in a worker thread, say), as Textual will ask for it
        when the widget is that wide: the first screen update after mounting then draws from
        the kept segments instead of rendering the Markdown on the event loop."""
        list(self.__rich_console__(console, console.options.update_width(width)))


class ChatMessage(Static):
    """One turn of the conversation; `role` is user or assistant, `kind` the reply kind.

    The Markdown is rendered by Rich into one widget, not by Textual's Markdown widget (a
    widget per block): a long reply then mounts and lays out in a few milliseconds instead of
    holding the event loop for a few hundred (bench/ui_stalls.py). It is rendered once per width
    (`RenderedOnce`)."""

    def __init__(
        self, role: str, text: str, kind: str = "text", content: RenderedOnce | None = None
    ) -> None:
        """`content`: the text's `markdown(text)`, maybe rendered already (`prerender`)."""
        if role == "user" and not text.strip():
            text = "*↵ (Enter: take the default)*"
        self.source = text
        super().__init__(content or markdown(text), classes=f"message {role} {kind}")
        self.role = role
        self.kind = kind

    def on_resize(self) -> None:
        # the widths the next message of this role will most likely get (see `prerender`): its
        # own, and while the chat does not scroll yet, the narrower one it takes once it does
        # (every message is drawn again then, in one screen update)
        widths = getattr(self.app, "message_widths", None)
        if widths is not None:
            width = self.content_region.width
            chat = self.parent
            scrolls = chat is None or getattr(chat, "show_vertical_scrollbar", True)
            bar = 0 if scrolls else chat.styles.scrollbar_size_vertical
            widths[self.role] = [width, width - bar] if bar else [width]


def markdown(text: str) -> RenderedOnce:
    """A chat message's content: `text` as Markdown, rendered once per width."""
    return RenderedOnce(RichMarkdown(text))


class KeyFooter(Widget, can_focus=False):
    """The key bar: the screen's shown bindings as `key description` pairs, and the command
    palette's key on the right; a click on a pair presses its key.

    It looks like Textual's compact Footer but is one widget drawing one line, redrawn only
    when the shown bindings change. The Footer recomposes a widget per key on every change of
    focus, and restyling and drawing those was the largest single cost of the app's screen
    updates (bench/ui_stalls.py: 30-300 ms a time on this machine)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-footer--key", "key-footer--description"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyFooter > .key-footer--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyFooter > .key-footer--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple = ()
        self._spans: list[tuple[int, int, str, bool]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        seen: set[str] = set()
        shown = []
        palette = None
        for key, (_node, binding, enabled, _tip) in screen.active_bindings.items():
            if key == self.app.COMMAND_PALETTE_BINDING and self.app.ENABLE_COMMAND_PALETTE:
                palette = (binding.key, self.app.get_key_display(binding), "palette", enabled)
                continue
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            shown.append(
                (binding.key, self.app.get_key_display(binding), binding.description, enabled)
            )
        if palette:
            shown.append(palette)
        if tuple(shown) != self._shown:
            self._shown = tuple(shown)
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-footer--key")
        description_style = self.get_component_rich_style("key-footer--description")
        text = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        keys = list(self._shown)
        palette = keys.pop() if keys and keys[-1][2] == "palette" else None
        for key, display, description, enabled in keys:
            start = len(text)
            text.append(display, key_style)
            text.append(f" {description}", description_style)
            if not enabled:
                text.stylize("dim", start)
            self._spans.append((start, len(text), key, enabled))
            text.append(" ")
        if palette:
            key, display, description, enabled = palette
            right = Text.assemble("▏", (display, key_style), (f" {description}", description_style))
            gap = self.size.width - len(text) - len(right)
            if gap >= 0:
                text.append(" " * gap)
                self._spans.append((len(text) + 1, len(text) + len(right), key, enabled))
                text.append_text(right)
        return text

    def on_click(self, event) -> None:
        for start, end, key, enabled in self._spans:
            if start <= event.x < end:
                if enabled:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()
                return


class OlderTurns(Button):
    """At the top of the chat when older turns are not shown: pressing it shows more."""

    DEFAULT_CSS = """
    OlderTurns {
        width: 100%;
        height: 1;
        min-height: 1;
        border: none;
        margin: 1 0 0 0;
        background: $panel;
        color: $text-muted;
    }
    OlderTurns:focus {
        text-style: bold reverse;
    }
    """

    def __init__(self, hidden: int, page: int) -> None:
        super().__init__(self.text(hidden, page), id="older-turns", compact=True)
        self.hidden = hidden

    @staticmethod
    def text(hidden: int, page: int) -> str:
        more = min(hidden, page)
        turns = "turn" if hidden == 1 else "turns"
        return f"▲ {hidden:,} older {turns}: show {more:,} more"

    def update_count(self, hidden: int, page: int) -> None:
        self.hidden = hidden
        self.label = self.text(hidden, page)


class PlanPanel(Vertical, can_focus=True):
    """The side panel: the current plan as label/value rows, the stage and the session id.
    It takes the focus (Tab) so that a long plan scrolls from the keyboard."""

    def compose(self) -> ComposeResult:
        yield Static("", id="stage")
        yield Static("", id="plan-table")
        yield Static("", id="session-line")

    _shown: str | None = None  # what `show` drew last

    def show(self, state: Any, session_id: str) -> None:
        # shown after every reply: when nothing it draws has changed, nothing is redrawn (a new
        # table would be rendered and laid out again on the event loop)
        shown = json.dumps(
            [state.stage, session_id, state.plan, sorted(state.changed), state.spec],
            sort_keys=True,
            default=str,
        )
        if shown == self._shown:
            return
        self._shown = shown
        stages = Text()
        for i, name in enumerate(STAGES):
            if i:
                stages.append(" → ", style="dim")
            if name == state.stage:
                stages.append(name, style="bold reverse")
            elif STAGES.index(name) < STAGES.index(state.stage):
                stages.append(name, style="green")
            else:
                stages.append(name, style="dim")
        self.query_one("#stage", Static).update(stages)
        self.query_one("#plan-table", Static).update(RenderedOnce(self._plan_table(state)))
        self.query_one("#session-line", Static).update(Text(f"session {session_id}", style="dim"))

    @staticmethod
    def _plan_table(state: Any) -> Table | Text:
        if not state.plan:
            return Text("No plan yet: tell me the task and the data file.", style="dim italic")
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        spec = state.spec or {}
        data = spec.get("files", {}).get("train")
        if data:
            table.add_row("Data", Path(data).name)
        for name, label, value in plan_rows(state.plan):
            label = SHORT_LABELS.get(name, label)
            if name == "base_model" and "/" in value and Path(value).is_absolute():
                value = Path(value).name  # a local folder: its name is what tells them apart
            if name in state.changed:
                table.add_row(
                    Text(label, style="bold yellow"), Text(f"{value} ●", style="bold yellow")
                )
            else:
                table.add_row(label, value)
        if state.changed:
            table.add_row("", Text("● you changed it", style="yellow"))
        return table


def _metric_text(metrics: dict[str, float]) -> str:
    parts = []
    if "eval_f1" in metrics:
        parts.append(f"F1 {metrics['eval_f1']:.3f}")
    if "eval_macro_f1" in metrics:
        parts.append(f"macro-F1 {metrics['eval_macro_f1']:.3f}")
    if "eval_accuracy" in metrics:
        parts.append(f"acc {metrics['eval_accuracy']:.3f}")
    for key, name in (
        ("micro_f1", "micro-F1"),
        ("pearson", "r"),
        ("mae", "MAE"),
        ("entity_f1", "entity F1"),
    ):
        if f"eval_{key}" in metrics:
            parts.append(f"{name} {metrics[f'eval_{key}']:.3f}")
    return " / ".join(parts)


TRIAL_COLUMNS = ("#", "state", "value", "epochs", "parameters", "note")


def fill_trials_table(table: DataTable, trials: dict[int, dict[str, Any]]) -> None:
    """Show a search's trials (trial events by number) in `table`, whose columns are
    TRIAL_COLUMNS: one row per trial in number order, the best finished one marked ★."""
    table.clear()
    done = [t for t in trials.values() if t.get("value") is not None]
    best = max(done, key=lambda t: t["value"])["number"] if done else None
    for number in sorted(trials):
        t = trials[number]
        params = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in sorted(t.get("params", {}).items())
        )
        mark = " ★" if number == best else ""
        table.add_row(
            Text(f"{number}{mark}", style="bold" if mark else ""),
            t.get("state", ""),
            "-" if t.get("value") is None else f"{t['value']:.4f}",
            str(t.get("epochs_reported") or "-"),
            params,
            t.get("note") or "",
            key=str(number),
        )
    table.display = True


class RunPanel(Vertical):
    """Progress of the followed run: a bar (step of max_steps), one line of numbers, and during
    a search the trials table (one row per finished trial, the best marked)."""

    def compose(self) -> ComposeResult:
        yield Label("", id="run-title")
        yield ProgressBar(show_eta=False, id="run-bar")
        yield Static("waiting for the worker to start…", id="run-line")
        yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#trials", DataTable).add_columns(*TRIAL_COLUMNS)

    def reset(self, run_id: str | None) -> None:
        self.latest: dict[str, Any] = {}
        self.eval_text = ""
        self.trials: dict[int, dict[str, Any]] = {}
        self.query_one("#run-title", Label).update(f"Training {run_id or ''}".strip())
        self.query_one("#run-bar", ProgressBar).update(total=None, progress=0)
        self.query_one("#run-line", Static).update("waiting for the worker to start…")
        table = self.query_one("#trials", DataTable)
        table.clear()
        table.display = False

    def add_events(self, events: list[dict[str, Any]]) -> None:
        bar = self.query_one("#run-bar", ProgressBar)
        for event in events:
            kind = event.get("type")
            if kind in ("start", "log") and event.get("max_steps"):
                bar.update(total=event["max_steps"], progress=event.get("step", 0))
            if kind == "log":
                self.latest = event
            elif kind == "eval":
                self.eval_text = _metric_text(event.get("metrics", {}))
            elif kind == "trial":
                self.trials[int(event["number"])] = event
            elif kind == "oom":
                self.eval_text = (
                    f"out of memory: micro-batch {event['batch_size']} x {event['grad_accum']}"
                )
            elif kind == "stopped":
                self.eval_text = f"stopped at step {event.get('step')}"
            elif kind == "error":
                self.eval_text = f"error: {event.get('message')}"
        if events:
            self.query_one("#run-line", Static).update(self.line())
        if any(e.get("type") == "trial" for e in events):
            self._show_trials()

    def _show_trials(self) -> None:
        fill_trials_table(self.query_one("#trials", DataTable), self.trials)

    def line(self) -> str:
        e = self.latest
        parts = []
        if e:
            parts += [
                f"step {e['step']}/{e['max_steps']}",
                f"epoch {e['epoch']:.2f}",
                f"ETA {e['eta_s']:.0f} s",
                f"loss {e['loss']:.4f}",
            ]
        if self.eval_text:
            parts.append(f"eval {self.eval_text}")
        if e:
            parts += [f"{e['samples_per_s']:.1f} samples/s", f"mem {e['memory_mb']:.0f} MB"]
        return " · ".join(parts) or "starting…"


TITLE_COLUMN = 20  # the most of a title the picker's one-line entries show


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def session_prompt(
    summary: dict[str, Any], current: str | None, title_width: int | None = None
) -> Text:
    """One line of the session picker. `title_width` pads (or cuts) the title to a column
    shared by all lines; by default the title takes what it needs, up to TITLE_COLUMN."""
    if "error" in summary:  # the message names the session and says what is wrong
        return Text(str(summary["error"]), style="red")
    data = _short(Path(summary["data_file"]).name, 20) if summary.get("data_file") else ""
    data = data or "no data yet"
    title = summary.get("title") or ""
    if title_width is None:
        title_width = min(len(title), TITLE_COLUMN)
    run = summary.get("last_run") or {}
    text = Text()
    text.append(summary["id"], style="bold" if summary["id"] == current else "")
    if title_width:
        text.append(f"  {_short(title, title_width):<{title_width}}", style="bold yellow")
    text.append(f"  {summary.get('stage') or 'task':<7}  ", style="cyan")
    text.append(f"{data:<20}")
    text.append(f"  {('run ' + str(run['status'])) if run else 'no run'}", style="dim")
    if summary["id"] == current:
        text.append("  (open)", style="green")
    elif elsewhere(summary):
        text.append(f"  open in pid {elsewhere(summary).get('pid') or '?'}", style="yellow")
    return text


def elsewhere(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The lock holder of a listed session when it is another process, else None."""
    holder = summary.get("open_by")
    return holder if holder and holder.get("pid") != os.getpid() else None


def _described(session_id: str, summary: dict[str, Any]) -> str:
    """'ID' or 'ID (title)', for messages about a session."""
    title = summary.get("title")
    return f"{session_id} ({title})" if title else session_id


class SessionPicker(PacedScreen, ModalScreen[str | None]):
    """Pick a saved session (its id), or NEW_SESSION; None when dismissed. With a store, `r`
    renames and `d`/`delete` deletes the highlighted session (after asking), and the list is
    read again from the store."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_picker", "Close"),
        Binding("r", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
        Binding("delete", "delete", "Delete", show=False),
    ]

    def __init__(
        self,
        sessions: list[dict[str, Any]],
        current: str | None,
        store: SessionStore | None = None,
        offer: str | None = None,
    ) -> None:
        super().__init__()
        self.sessions = sessions
        self.current = current
        self.store = store
        self.offer = offer  # at start: the session to highlight; Escape then starts a new one

    def compose(self) -> ComposeResult:
        keys = "Enter opens · r renames · d deletes · Escape closes"
        if self.store is None:
            keys = "Enter opens, Escape closes"
        title = f"Sessions — {keys}"
        if self.offer:
            title = "Welcome back — Enter reopens your last session, Escape starts a new one"
        with Vertical(id="picker"):
            yield Label(title, id="picker-title")
            yield OptionList(*self._options(), id="picker-list")

    def _options(self) -> list[Option]:
        options = [Option(Text("+ New session", style="bold green"), id=NEW_SESSION)]
        titles = [len(s.get("title") or "") for s in self.sessions if "error" not in s]
        title_width = min(max(titles, default=0), TITLE_COLUMN)
        for summary in reversed(self.sessions):  # newest first
            options.append(
                Option(
                    session_prompt(summary, self.current, title_width),
                    id=summary["id"],
                    disabled="error" in summary,
                )
            )
        return options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        if self.offer:
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            if self.offer in ids:
                options.highlighted = ids.index(self.offer)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_picker(self) -> None:
        self.dismiss(None)

    # -- rename and delete

    def _highlighted(self) -> tuple[SessionStore, dict[str, Any]] | None:
        """The store and the highlighted session's summary; None (having said why) if either
        is missing."""
        if self.store is None:
            self.notify("Renaming and deleting sessions is not available here.")
            return None
        option = self.query_one(OptionList).highlighted_option
        summary = next(
            (s for s in self.sessions if option is not None and s["id"] == option.id), None
        )
        if summary is None or "error" in summary:
            self.notify("Highlight a saved session first (up/down).")
            return None
        return self.store, summary

    def _reload(self, session_id: str | None = None, index: int | None = None) -> None:
        """Read the sessions again; highlight `session_id`, else the entry at `index`."""
        if self.store is None:
            return
        self.sessions = self.store.list()
        option_list = self.query_one(OptionList)
        option_list.set_options(self._options())
        if session_id is not None:
            try:
                index = option_list.get_option_index(session_id)
            except OptionDoesNotExist:
                pass
        if index is not None:
            option_list.highlighted = min(index, option_list.option_count - 1)

    def _open_elsewhere(self, summary: dict[str, Any], doing: str) -> bool:
        """Say so (one line) and True when another tunesmith has the session open."""
        holder = elsewhere(summary)
        if holder is None:
            return False
        message = SessionLocked(summary["id"], holder).message
        self.notify(f"{message}: close it there before {doing} it.", severity="warning")
        return True

    def action_rename(self) -> None:
        found = self._highlighted()
        if found is None:
            return
        store, summary = found
        session_id = summary["id"]
        if self._open_elsewhere(summary, "renaming"):
            return

        def renamed(title: str | None) -> None:
            if title is None:
                return
            try:
                store.rename(session_id, title)
            except SessionLocked as exc:  # opened elsewhere since the list was read
                self.notify(f"{exc}: close it there before renaming it.", severity="warning")
            except (SessionError, ValueError) as exc:
                self.notify(str(exc), severity="error")
            self._reload(session_id)

        self.app.push_screen(TitleScreen(session_id, summary.get("title") or ""), renamed)

    def action_delete(self) -> None:
        found = self._highlighted()
        if found is None:
            return
        store, summary = found
        session_id = summary["id"]
        if session_id == self.current:
            self.notify(
                f"Session {session_id} is open: switch to another one before deleting it.",
                severity="warning",
            )
            return
        if run_is_active(summary):
            self.notify(
                f"Session {session_id} has a run still going: stop it or let it finish first.",
                severity="warning",
            )
            return
        if self._open_elsewhere(summary, "deleting"):
            return
        index = self.query_one(OptionList).highlighted

        def answered(really: bool | None) -> None:
            if not really:
                return
            try:
                store.delete(session_id)
            except SessionLocked as exc:
                self.notify(f"{exc}: close it there before deleting it.", severity="warning")
            except (SessionError, OSError) as exc:
                self.notify(str(exc), severity="error")
            else:
                self.notify(f"Deleted session {_described(session_id, summary)}.")
            self._reload(index=index)

        self.app.push_screen(ConfirmDeleteScreen(session_id, summary.get("title") or ""), answered)


class TitleScreen(PacedScreen, ModalScreen[str | None]):
    """Ask for a session's title: Enter gives the cleaned title, Escape None. A title the
    store would refuse (empty, too long) is explained here and not given back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, session_id: str, title: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="title-dialog"):
            yield Label(f"Title for session {self.session_id}", id="title-label")
            yield Input(
                value=self.title_text, placeholder="a short title, 1-60 characters", id="title"
            )
            yield Static("Enter saves, Escape cancels", id="title-hint")

    def on_mount(self) -> None:
        self.query_one("#title", Input).focus()

    @on(Input.Submitted, "#title")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            title = clean_title(event.value)
        except ValueError as exc:
            hint = self.query_one("#title-hint", Static)
            hint.update(Text(f"{exc} Escape cancels.", style="bold red"))
            return
        self.dismiss(title)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDeleteScreen(PacedScreen, ModalScreen[bool]):
    """Asked before a session is deleted; Keep is focused, Escape keeps."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "keep", "Keep")]

    def __init__(self, session_id: str, title: str = "") -> None:
        super().__init__()
        self.session_id = session_id
        self.title_text = title

    def compose(self) -> ComposeResult:
        name = _described(self.session_id, {"title": self.title_text})
        with Vertical(id="delete-dialog"):
            yield Static(
                Text.assemble(
                    "Delete session ",
                    (name, "bold"),
                    "? Its conversation, plans and runs are removed.",
                ),
                id="delete-text",
            )
            with Horizontal(id="delete-buttons"):
                yield Button("Delete", variant="error", id="delete-yes")
                yield Button("Keep", variant="primary", id="delete-no")

    def on_mount(self) -> None:
        self.query_one("#delete-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "delete-yes")

    def action_keep(self) -> None:
        self.dismiss(False)


class ReadOnlyScreen(PacedScreen, ModalScreen[bool]):
    """Asked when the session to open is open in another tunesmith: True to view it read-only
    (nothing typed is saved), False to leave it. Escape cancels."""

    DEFAULT_CSS = """
    ReadOnlyScreen {
        align: center middle;
    }
    #readonly-dialog {
        width: 72;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $surface;
    }
    #readonly-buttons {
        height: auto;
        margin: 1 0 0 0;
        align: right middle;
    }
    #readonly-buttons Button {
        margin: 0 0 0 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="readonly-dialog"):
            yield Static(
                Text.assemble(
                    (self.message, "bold"),
                    ".\n\nYou can view it read-only: the conversation, the plan, the data and "
                    "the runs show, and nothing you type is saved.",
                ),
                id="readonly-text",
            )
            with Horizontal(id="readonly-buttons"):
                yield Button("View read-only", variant="primary", id="readonly-view")
                yield Button("Cancel", id="readonly-cancel")

    def on_mount(self) -> None:
        self.query_one("#readonly-view", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "readonly-view")

    def action_cancel(self) -> None:
        self.dismiss(False)


class QuitScreen(PacedScreen, ModalScreen[bool]):
    """Asked when quitting while a run is going: the run carries on without the app."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stay", "Stay")]

    def __init__(self, run_id: str, session_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static(
                f"Training [b]{self.run_id}[/b] keeps running in its own process after you quit.\n\n"
                f"Reopen it later with:\n  [b]tunesmith --session {self.session_id}[/b]",
                id="quit-text",
            )
            with Horizontal(id="quit-buttons"):
                yield Button("Quit", variant="error", id="quit-yes")
                yield Button("Stay", variant="primary", id="quit-no")

    def on_mount(self) -> None:
        self.query_one("#quit-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")

    def action_stay(self) -> None:
        self.dismiss(False)
