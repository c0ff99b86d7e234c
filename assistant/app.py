"""The Textual app: a thin shell over `assistant.conversation.Conversation`.

It owns the screen and nothing else. Every conversation call (`opening`, `say`, `finish_run`)
runs in a thread worker, one at a time in the order asked, and comes back as a `RepliesReady`
message; a 0.5 s timer follows the run folder of a training run (`tuning_core.runs`) and
feeds the run panel, and the run monitor (`assistant.monitor`) while it is open. What the
replies say is the planner's business; how things look is `assistant.widgets` and `app.tcss`.
Importing this module loads no torch/transformers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from assistant.conversation import Conversation
from assistant.planner import Reply
from assistant.prompt import PromptInput
from assistant.settings import DEFAULT_THEME, LIGHT_THEME, Settings
from assistant.store import SessionStore
from assistant.widgets import (
    NEW_SESSION,
    ChatMessage,
    PlanPanel,
    QuitScreen,
    RunPanel,
    SessionPicker,
)
from tuning_core import runs
from tuning_core.errors import TuningError

PLACEHOLDER = "Type a message (Enter alone takes the default, /help lists commands)"
WORKING = {"say": "working…", "opening": "opening the session…", "finish": "reading the results…"}


@dataclass
class RepliesReady(Message):
    """A conversation call finished in its worker thread."""

    conversation: Conversation
    job: str
    replies: list[Reply]


class TunesmithApp(App):
    """Chat on the left, the plan on the right, the run under the chat, the prompt below."""

    CSS_PATH = "app.tcss"
    TITLE = "tunesmith"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"),
        (100, "-wide"),
        (140, "-wider"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+d", "data_view", "Data", priority=True),
        Binding("ctrl+t", "monitor", "Run", priority=True),
        Binding("ctrl+r", "results_view", "Results", priority=True),
        Binding("ctrl+o", "sessions", "Open", priority=True),
        Binding("ctrl+n", "new_session", "New", priority=True),
        Binding("f2", "toggle_theme", "Theme"),
        Binding("ctrl+b", "toggle_side", "Plan"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        # Ctrl+C quits too (asking first while a run goes); `q` where no text is being typed
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("q", "quit_key", "Quit", show=False),
        Binding("escape", "back", "Back to the prompt", show=False),
    ]

    def __init__(self, home: Path | str, session_id: str | None = None) -> None:
        super().__init__()
        self.store = SessionStore(Path(home))
        self.initial_session_id = session_id
        self.conversation: Conversation | None = None
        self._jobs: deque[tuple[str, Any]] = deque()
        self._worker: Worker | None = None  # the conversation call in flight, if any
        self._turn_text: dict[Worker, str] = {}  # what the person typed, given back on failure
        self._offsets: dict[str, int] = {}  # events.jsonl offset per run folder
        self._run_events: dict[str, list[dict]] = {}  # the events read so far, per run folder
        self._followed: str | None = None  # the run folder the run panel shows
        self._finishing: str | None = None  # the run folder whose results were asked for
        self.settings = Settings(Path(home))
        saved_theme = self.settings.get("theme", DEFAULT_THEME)
        if saved_theme in self.available_themes:
            self.theme = saved_theme

    @property
    def busy(self) -> bool:
        """True while a conversation call is in flight or queued."""
        return self._worker is not None or bool(self._jobs)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VerticalScroll(id="chat")
                yield RunPanel(id="run-panel")
                yield Static("", id="working")
            yield PlanPanel(id="side")
        yield PromptInput(placeholder=PLACEHOLDER, id="prompt", columns=self._columns)
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.query_one(RunPanel).display = False
        self.query_one("#working").display = False
        self.query_one("#prompt", Input).focus()
        self.set_interval(0.5, self._follow_run)
        if self.initial_session_id is None and self._offer_last_session():
            return
        problem = await self._open(self.initial_session_id)
        if problem:  # e.g. `--session` names no session: say so on the terminal and stop
            self.exit(return_code=1, message=f"tunesmith: {problem}")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Sessions", "Open a saved session (ctrl+o)", self.action_sessions)
        yield SystemCommand(
            "Data view", "Labels, lengths, findings and sample rows (ctrl+d)", self.action_data_view
        )
        yield SystemCommand(
            "Results view",
            "Metrics, confusion matrix, baselines and worst errors (ctrl+r)",
            self.action_results_view,
        )
        yield SystemCommand(
            "Run monitor",
            "Loss and metric curves, progress and trials of the run (ctrl+t)",
            self.action_monitor,
        )
        yield SystemCommand(
            "New session", "Start a new conversation (ctrl+n)", self.action_new_session
        )
        yield SystemCommand(
            "Light or dark",
            "Switch between the light and the dark theme (f2)",
            self.action_toggle_theme,
        )
        yield SystemCommand(
            "Plan pane", "Hide or show the plan beside the chat (ctrl+b)", self.action_toggle_side
        )
        yield SystemCommand("Quit", "Leave tunesmith; a run keeps going (ctrl+q)", self.action_quit)

    # ------------------------------------------------------------ sessions

    async def _open(self, session_id: str | None) -> str | None:
        """Make `session_id` (or a new session) the open conversation; what went wrong, if so."""
        try:
            conversation = Conversation.start(self.store, session_id)
        except TuningError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=8)
            return exc.message
        self.conversation = conversation
        self._jobs.clear()
        self._worker = None  # a call still running for the old session is ignored when done
        self._followed = self._finishing = None
        self.query_one(RunPanel).display = False
        self._set_working(None)
        self.sub_title = f"session {conversation.session_id}"
        chat = self.query_one("#chat", VerticalScroll)
        await chat.remove_children()
        saved = [
            ChatMessage(t["role"], t["text"] or "", t.get("kind") or "text")
            for t in conversation.history()
        ]
        self.query_one("#prompt", PromptInput).set_history(
            t["text"] or "" for t in conversation.history() if t["role"] == "user"
        )
        await self._show(saved)
        self._refresh_side()
        self._submit("opening")
        return None

    def _offer_last_session(self) -> bool:
        """With saved sessions and none named, offer the last one (a new one on Escape)."""
        saved = [s for s in self.store.list() if "error" not in s]
        if not saved:
            return False
        last = max(saved, key=lambda s: (s.get("updated") or 0.0, s["id"]))
        self.push_screen(
            SessionPicker(self.store.list(), None, self.store, offer=last["id"]),
            self._picked_at_start,
        )
        return True

    async def _picked_at_start(self, choice: str | None) -> None:
        await self._open(None if choice in (None, NEW_SESSION) else choice)

    def action_sessions(self) -> None:
        if any(isinstance(screen, SessionPicker) for screen in self.screen_stack):
            return
        current = self.conversation.session_id if self.conversation else None
        self.push_screen(SessionPicker(self.store.list(), current, self.store), self._picked)

    async def _picked(self, choice: str | None) -> None:
        if choice == NEW_SESSION:
            await self._open(None)
        elif choice and (self.conversation is None or choice != self.conversation.session_id):
            await self._open(choice)

    def action_data_view(self) -> None:
        from assistant.dataview import DataScreen  # the views load when first opened

        if isinstance(self.screen, DataScreen):
            self.pop_screen()
            return
        if self.conversation is None or not self.conversation.state.profile:
            self.notify("Load a data file first: the data view shows its profile.", timeout=5)
            return
        self.push_screen(DataScreen(self.conversation.state))

    def action_results_view(self) -> None:
        from assistant.resultsview import ResultsScreen

        if isinstance(self.screen, ResultsScreen):
            self.pop_screen()
            return
        if self.conversation is None or not self.conversation.state.report:
            self.notify("No results yet: train a model first.", timeout=5)
            return
        self.push_screen(ResultsScreen(self.conversation.state))

    def action_monitor(self) -> None:
        from assistant.monitor import RunMonitorScreen

        if isinstance(self.screen, RunMonitorScreen):
            self.pop_screen()
            return
        conversation = self.conversation
        run_dir = conversation.run_dir if conversation is not None else None
        events: list[dict] = []
        if conversation is not None and run_dir is not None:
            events = list(self._run_events.get(str(run_dir), []))
            if not events and not conversation.running:  # a finished run this app did not follow
                events = runs.read_events(run_dir)[0]
        if conversation is None or run_dir is None or not (events or conversation.running):
            self.notify("No run yet: start one with Enter after the plan.", timeout=5)
            return
        metric = (conversation.state.plan or {}).get("metric")
        self.push_screen(RunMonitorScreen(events, conversation.state.run_id, str(run_dir), metric))

    async def action_new_session(self) -> None:
        await self._open(None)

    def action_toggle_side(self) -> None:
        """Hide or show the plan pane (on a narrow terminal the chat gets the whole width)."""
        side = self.query_one(PlanPanel)
        side.display = not side.display
        if not side.display and side.has_focus:
            self.query_one("#prompt", PromptInput).focus()

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT_THEME if self.current_theme.dark else DEFAULT_THEME

    def _theme_changed(self, theme) -> None:
        self.settings.set("theme", theme.name)  # also a theme picked in the command palette

    def action_back(self) -> None:
        """Escape on the main screen: back to the prompt from the chat or the plan pane."""
        self.query_one("#prompt", PromptInput).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit_key":  # a bare `q` quits from the main screen only, not a dialog
            return self.screen is self.screen_stack[0]
        return True

    def action_quit_key(self) -> None:
        self.action_quit()

    def action_quit(self) -> None:
        conversation = self.conversation
        if isinstance(self.screen, QuitScreen) or conversation is None or not conversation.running:
            self.exit()
            return

        def answered(really: bool | None) -> None:
            if really:
                self.exit()

        self.push_screen(
            QuitScreen(conversation.state.run_id or "", conversation.session_id), answered
        )

    # ------------------------------------------------------------ conversation calls

    @on(Input.Submitted, "#prompt")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        event.input.clear()
        self.query_one("#prompt", PromptInput).remember(text)
        await self._show([ChatMessage("user", text)])
        self._submit("say", text)

    def _submit(self, job: str, arg: Any = None) -> None:
        """Queue a conversation call; calls run one at a time, in order."""
        self._jobs.append((job, arg))
        self._next_job()

    def _next_job(self) -> None:
        if self._worker is not None or not self._jobs or self.conversation is None:
            return
        job, arg = self._jobs.popleft()
        self._set_working(WORKING[job])
        self._worker = self._converse(self.conversation, job, arg)
        if job == "say":
            self._turn_text[self._worker] = arg

    # not exclusive: `_next_job` already runs one call at a time, and a call cannot be cancelled
    # half-way (a turn is saved as it goes); failures land in on_worker_state_changed
    @work(thread=True, exclusive=False, group="conversation", exit_on_error=False)
    def _converse(self, conversation: Conversation, job: str, arg: Any) -> None:
        def progress(text: str) -> None:  # a slow step says what it is doing, under the chat
            if conversation is self.conversation:
                self.call_from_thread(self._set_working, text)

        def early(reply: Reply) -> None:  # shown while the turn's slow part still runs
            self.post_message(RepliesReady(conversation, "early", [reply]))

        conversation.planner.progress = progress
        if job == "say":
            replies = conversation.say(arg, on_reply=early)
        elif job == "opening":
            replies = conversation.opening()
        else:
            replies = conversation.finish_run(arg)
        self.post_message(RepliesReady(conversation, job, replies))

    async def on_replies_ready(self, message: RepliesReady) -> None:
        if message.conversation is not self.conversation:
            return  # from a session that is no longer open
        await self._show([ChatMessage("assistant", r.text, r.kind) for r in message.replies])
        if message.job == "finish":
            self.query_one(RunPanel).display = False
            self._followed = self._finishing = None
        self._refresh_side()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "conversation" or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        text = self._turn_text.pop(worker, None)
        if event.state == WorkerState.ERROR:
            error = worker.error
            title = getattr(error, "title", None) or type(error).__name__
            self.notify(str(error), title=title, severity="error", timeout=10)
            prompt = self.query_one("#prompt", Input)
            if text and not prompt.value:
                prompt.value = text
                prompt.cursor_position = len(text)
        if worker is self._worker:
            self._worker = None
            self._set_working(None)
            self._next_job()

    # ------------------------------------------------------------ following a run

    def _follow_run(self) -> None:
        """Timer: read the followed run's new events; ask for its results once it ends."""
        conversation = self.conversation
        panel = self.query_one(RunPanel)
        if conversation is None or not conversation.running or conversation.run_dir is None:
            if panel.display and self._finishing is None:
                panel.display = False
            return
        run_dir = conversation.run_dir
        key = str(run_dir)
        if self._followed != key:
            self._followed = key
            panel.reset(conversation.state.run_id)
            panel.display = True
        self._read_events(panel, run_dir)
        if self._finishing == key:
            return
        status = runs.read_status(run_dir)
        if status.get("state") in runs.TERMINAL_STATES:
            self._read_events(panel, run_dir)  # the last lines written before it ended
            self._finishing = key
            self._submit("finish", status)

    def _read_events(self, panel: RunPanel, run_dir: Path) -> None:
        key = str(run_dir)
        events, self._offsets[key] = runs.read_events(run_dir, self._offsets.get(key, 0))
        panel.add_events(events)
        self._run_events.setdefault(key, []).extend(events)
        for screen in self.screen_stack:  # the monitor, also under another screen
            if getattr(screen, "run_key", None) == key:  # a RunMonitorScreen
                screen.add_events(events)
        if events and self.conversation is not None:
            replies = self.conversation.watch(events)
            if replies:
                self.run_worker(
                    self._show([ChatMessage("assistant", r.text, r.kind) for r in replies])
                )

    # ------------------------------------------------------------ display

    async def _show(self, messages: list[ChatMessage]) -> None:
        if not messages:
            return
        chat = self.query_one("#chat", VerticalScroll)
        await chat.mount_all(messages)
        # anchored: it follows the bottom as the new messages lay out (Markdown renders after
        # mounting), until the person scrolls up to read
        chat.anchor()

    def _columns(self) -> list[str]:
        """The loaded data's column names, for completing them in the prompt."""
        spec = self.conversation.state.spec if self.conversation else None
        return list((spec or {}).get("columns") or [])

    def _refresh_side(self) -> None:
        if self.conversation is not None:
            self.query_one(PlanPanel).show(self.conversation.state, self.conversation.session_id)

    def _set_working(self, text: str | None) -> None:
        working = self.query_one("#working", Static)
        working.update(text or "")
        working.display = bool(text)
