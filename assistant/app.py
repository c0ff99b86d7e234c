"""The Textual app: a thin shell over `assistant.conversation.Conversation`.

It owns the screen and nothing else. Every conversation call (`opening`, `say`, `finish_run`)
runs in a thread worker, one at a time in the order asked, and comes back as a `RepliesReady`
message; a 0.5 s timer follows the run folder of a training run (`tuning_core.runs`) and
feeds the run panel, and the run monitor (`assistant.monitor`) while it is open. What the
replies say is the planner's business; how things look is `assistant.widgets` and `app.tcss`.
Importing this module loads no torch/transformers.

Nothing shows before it is saved: what the person types appears in the chat once the worker
has committed it (`TurnSaved`), and replies are committed before they come
back. A reopened session shows its newest CHAT_PAGE turns, with a button above them for older
ones. A session open in another tunesmith is offered read-only (`ReadOnlyScreen`); the app
closes (and so unlocks) a session when it switches to another or exits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Static
from textual.worker import Worker, WorkerState

from assistant.conversation import Conversation
from assistant.gcpause import GarbagePauses
from assistant.pacing import OneMessagePerStep, PacedScreen
from assistant.planner import Reply
from assistant.prompt import PromptInput
from assistant.settings import DEFAULT_THEME, LIGHT_THEME, Settings
from assistant.store import SessionLocked, SessionStore
from assistant.widgets import (
    NEW_SESSION,
    ChatMessage,
    KeyFooter,
    OlderTurns,
    PlanPanel,
    QuitScreen,
    ReadOnlyScreen,
    RenderedOnce,
    RunPanel,
    SessionPicker,
    markdown,
)
from tuning_core import runs
from tuning_core.errors import TuningError

PLACEHOLDER = "Type a message (Enter alone takes the default, /help lists commands)"
WORKING = {"say": "working…", "opening": "opening the session…", "finish": "reading the results…"}
CHAT_PAGE = 100  # turns shown when a session opens, and added by each press of "older turns"
PROMPT_HISTORY = 500  # the person's newest lines offered by the prompt's up arrow
BIG_BACKLOG_BYTES = 1 << 20  # a followed run's events file larger than this is read sampled


@dataclass
class RepliesReady(Message):
    """A conversation call finished in its worker thread; `contents`: the replies' Markdown,
    rendered there for the chat's width (empty: rendered when shown)."""

    conversation: Conversation
    job: str
    replies: list[Reply]
    contents: list[RenderedOnce] = field(default_factory=list)


@dataclass
class TurnSaved(Message):
    """What the person typed is committed to the session: it shows in the chat now."""

    conversation: Conversation
    text: str


def terminal_hung_up(fd: int | None = None) -> bool:
    """True when the terminal on `fd` (stdin by default) has hung up: poll reports POLLHUP or
    POLLERR on a terminal whose other end has closed."""
    import select
    import sys

    if fd is None:
        if sys.__stdin__ is None:
            return False
        fd = sys.__stdin__.fileno()
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: hang-up and error are always reported
    try:
        return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))
    except OSError:
        return True


class MainScreen(PacedScreen, Screen):
    """The app's first screen (chat, plan, prompt), its messages paced as in assistant.pacing."""


class TunesmithApp(OneMessagePerStep, App):
    """Chat on the left, the plan on the right, the run under the chat, the prompt below."""

    CSS_PATH = "app.tcss"
    llm = None  # an assistant.llm.LLMFrontEnd when started with --llm (set by the CLI)
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
        self._opened = True  # false while `_open` is still showing a session's turns
        self._worker: Worker | None = None  # the conversation call in flight, if any
        self._turn_text: dict[Worker, str] = {}  # what the person typed, given back on failure
        self._offsets: dict[str, int] = {}  # events.jsonl offset per run folder
        self._run_events: dict[str, list[dict]] = {}  # the events read so far, per run folder
        self._followed: str | None = None  # the run folder the run panel shows
        self._finishing: str | None = None  # the run folder whose results were asked for
        self._oldest_shown: int | None = None  # the number of the oldest turn in the chat
        self._newest_saved = 0  # read-only: the newest turn shown, to catch up from
        self._gc = GarbagePauses()  # the collector kept out of the frames (assistant.gcpause)
        self.message_widths: dict[str, list[int]] = {}  # per role, a message's likely widths
        self.settings = Settings(Path(home))
        saved_theme = self.settings.get("theme", DEFAULT_THEME)
        if saved_theme in self.available_themes:
            self.theme = saved_theme

    @property
    def busy(self) -> bool:
        """True while a conversation call is in flight or queued."""
        return self._worker is not None or bool(self._jobs)

    # ------------------------------------------------------------ layout

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    def refresh_css(self, animate: bool = True) -> None:
        """Textual's refresh of the CSS (on a theme switch) in two steps of the event loop.

        Textual reparses every stylesheet with the theme's variables and restyles every widget
        of every screen in one callback: 45-50 ms on this machine with the chat, the plan and
        the key bar (bench/ui_stalls.py). Here the reparse happens now and the restyle in a
        later turn of the event loop."""
        stylesheet = self.stylesheet
        stylesheet.set_variables(self.get_css_variables())
        stylesheet.reparse()
        asyncio.get_running_loop().call_soon(self._restyle, animate)

    def _restyle(self, animate: bool) -> None:
        """The second half of `refresh_css`: what Textual does after its reparse."""
        stylesheet = self.stylesheet
        stylesheet.update(self, animate=animate)  # the app and its current screen
        current = self.screen
        if current.is_mounted:
            current._refresh_layout(self.size)
            current._css_update_count = self._css_update_count
        for screen in self.screen_stack:
            if screen is not current:
                stylesheet.update(screen, animate=animate)
                screen._css_update_count = self._css_update_count

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VerticalScroll(id="chat")
                yield RunPanel(id="run-panel")
                yield Static("", id="working")
            yield PlanPanel(id="side")
        yield PromptInput(placeholder=PLACEHOLDER, id="prompt", columns=self._columns)
        yield KeyFooter()

    async def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.query_one(RunPanel).display = False
        self.query_one("#working").display = False
        self.query_one("#prompt", Input).focus()
        self.set_interval(0.5, self._follow_run)
        self.set_interval(1.0, self._follow_writer)
        if not self.is_headless:
            self.set_interval(1.0, self._check_terminal)
        self.call_after_refresh(self._gc.freeze)  # what the first screen holds stays
        self.set_timer(1.0, self._load_views)
        if self.initial_session_id is None and self._offer_last_session():
            return
        problem = await self._open(self.initial_session_id)
        if problem:  # e.g. `--session` names no session: say so on the terminal and stop
            self.exit(return_code=1, message=f"tunesmith: {problem}")

    def on_unmount(self) -> None:
        if self.conversation is not None:
            self._retire(self.conversation)
            self.conversation = None

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
            "Older turns", "Show older turns of this session's conversation", self.action_older
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

    async def _open(
        self, session_id: str | None, read_only: bool = False, reason: str = ""
    ) -> str | None:
        """Make `session_id` (or a new session) the open conversation; what went wrong, if so.
        A session open in another tunesmith is offered read-only (the answer comes later)."""
        try:
            conversation = Conversation.start(self.store, session_id, read_only, reason)
        except SessionLocked as exc:
            answer = partial(self._locked_answer, session_id, exc.message)
            self.push_screen(ReadOnlyScreen(exc.message), answer)
            return None
        except TuningError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=8)
            return exc.message
        if self.conversation is not None:
            self._retire(self.conversation)
        # the run-follow timer waits until the opening is queued: it must not finish a run
        # (or say its folder is missing) before the opening has said where we left off
        self._opened = False
        self.conversation = conversation
        self._jobs.clear()
        self._worker = None  # a call still running for the old session is ignored when done
        self._followed = self._finishing = None
        self.query_one(RunPanel).display = False
        self._set_working(None)
        mode = " (read-only)" if conversation.read_only else ""
        self.sub_title = f"session {conversation.session_id}{mode}"
        chat = self.query_one("#chat", VerticalScroll)
        await chat.remove_children()
        turns = conversation.history(limit=CHAT_PAGE)
        self._oldest_shown = turns[0]["n"] if turns else None
        self._newest_saved = turns[-1]["n"] if turns else 0
        hidden = conversation.turn_count(before=self._oldest_shown) if turns else 0
        if hidden:
            await chat.mount(OlderTurns(hidden, CHAT_PAGE))
        self.query_one("#prompt", PromptInput).set_history(
            conversation.session.user_texts(PROMPT_HISTORY)
        )
        await self._show([self._message(t) for t in turns])
        self._refresh_side()
        self._submit("opening")
        self._opened = True
        return None

    async def _locked_answer(self, session_id: str | None, reason: str, view: bool | None) -> None:
        """The person's answer to the read-only offer for `session_id`."""
        if view:
            await self._open(session_id, read_only=True, reason=reason)
        elif self.conversation is None and session_id == self.initial_session_id:
            self.exit(return_code=1, message=f"tunesmith: {reason}")
        elif self.conversation is None:  # picked at start: pick again (Escape: a new session)
            self.push_screen(
                SessionPicker(self.store.list(), None, self.store), self._picked_at_start
            )

    def _retire(self, conversation: Conversation) -> None:
        """Close a conversation the app leaves, giving its session's lock back (at once, or
        once a call still running on it is done)."""
        conversation.close_soon()

    @staticmethod
    def _message(turn: dict[str, Any]) -> ChatMessage:
        return ChatMessage(turn["role"], turn["text"] or "", turn.get("kind") or "text")

    async def action_older(self) -> None:
        """Show the next CHAT_PAGE older turns above those in the chat."""
        conversation = self.conversation
        buttons = self.query(OlderTurns)
        if conversation is None or self._oldest_shown is None or not buttons:
            self.notify("The whole conversation is shown.", timeout=3)
            return
        button = buttons.first()
        turns = conversation.history(limit=CHAT_PAGE, before=self._oldest_shown)
        if turns:
            self._oldest_shown = turns[0]["n"]
            chat = self.query_one("#chat", VerticalScroll)
            chat.release_anchor()
            await chat.mount_all([self._message(t) for t in turns], after=button)
        hidden = conversation.turn_count(before=self._oldest_shown) if turns else 0
        if hidden:
            button.update_count(hidden, CHAT_PAGE)
        else:  # all shown: the button goes, and the keys go back to the prompt
            await button.remove()
            self.query_one("#prompt", PromptInput).focus()

    @on(Button.Pressed, "#older-turns")
    async def _older_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        await self.action_older()

    def _offer_last_session(self) -> bool:
        """With saved sessions and none named, offer the last one (a new one on Escape)."""
        listed = self.store.list()
        saved = [s for s in listed if "error" not in s]
        if not saved:
            return False
        last = max(saved, key=lambda s: (s.get("updated") or 0.0, s["id"]))
        self.push_screen(
            SessionPicker(listed, None, self.store, offer=last["id"]), self._picked_at_start
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
        if conversation is None or run_dir is None:
            self.notify("No run yet: start one with Enter after the plan.", timeout=5)
            return
        run_id = conversation.state.run_id
        if not run_dir.is_dir():
            self.notify(
                f"The folder of run {run_id} is missing ({run_dir}): it was moved or deleted.",
                title="Run missing",
                severity="warning",
                timeout=8,
            )
            return
        events = list(self._run_events.get(str(run_dir), []))
        load_from = None
        if not events and not conversation.running:  # a run this app did not follow
            if not (run_dir / "events.jsonl").exists():
                self.notify("No run yet: start one with Enter after the plan.", timeout=5)
                return
            load_from = run_dir  # the screen reads its events in a thread, from the file
        metric = (conversation.state.plan or {}).get("metric")
        self.push_screen(
            RunMonitorScreen(events, run_id, str(run_dir), metric, load_from=load_from)
        )

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
        if self.busy:  # it shows in the chat once its turn is saved, after the current step
            self.notify("Your message waits for the current step to finish.", timeout=3)
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

    @work(thread=True, exclusive=True, group="load-views", exit_on_error=False)
    def _load_views(self) -> None:
        """Import the views (and plotext under the run monitor) in a thread once the app is
        up, so that opening one the first time does not import on the event loop (100-200 ms
        here). The start path stays light: this runs a second after the first screen."""
        with self._gc.paused():
            import assistant.dataview
            import assistant.monitor
            import assistant.resultsview  # noqa: F401

    # not exclusive: `_next_job` already runs one call at a time, and a call cannot be cancelled
    # half-way (a turn is saved as it goes); failures land in on_worker_state_changed
    @work(thread=True, exclusive=False, group="conversation", exit_on_error=False)
    def _converse(self, conversation: Conversation, job: str, arg: Any) -> None:
        with self._gc.paused():
            self._converse_now(conversation, job, arg)

    def _converse_now(self, conversation: Conversation, job: str, arg: Any) -> None:
        def progress(text: str) -> None:  # a slow step says what it is doing, under the chat
            if conversation is self.conversation:
                self.call_from_thread(self._set_working, text)

        def early(reply: Reply) -> None:  # shown while the turn's slow part still runs
            self.post_message(RepliesReady(conversation, "early", [reply], self._render([reply])))

        def saved() -> None:  # the person's turn is committed: show it
            self.post_message(TurnSaved(conversation, arg))

        conversation.planner.progress = progress
        if job == "say" and self.llm is not None:  # the model's text streams under the chat
            replies = self.llm.say(conversation, arg, early, saved, on_token=progress)
        elif job == "say":
            replies = conversation.say(arg, on_reply=early, on_user=saved)
        elif job == "opening":
            replies = conversation.opening()
        else:
            replies = conversation.finish_run(arg)
        self.post_message(RepliesReady(conversation, job, replies, self._render(replies)))

    def _render(self, replies: list[Reply]) -> list[RenderedOnce]:
        """The replies' Markdown rendered here, in the conversation's thread, for the widths
        the last assistant message had or will have (`ChatMessage.on_resize`): a long reply
        (the data profile's tables) took 15-30 ms of the screen update that first showed it
        (bench/ui_stalls.py). Where the width has changed by then, the widget renders again
        for its own, as it would have anyway."""
        contents = [markdown(r.text) for r in replies]
        for width in self.message_widths.get("assistant", []):
            for content in contents:
                content.prerender(self.console, width)
        return contents

    async def on_replies_ready(self, message: RepliesReady) -> None:
        if message.conversation is not self.conversation:
            return  # from a session that is no longer open
        contents = message.contents or [None] * len(message.replies)
        await self._show(
            [
                ChatMessage("assistant", r.text, r.kind, content)
                for r, content in zip(message.replies, contents, strict=True)
            ]
        )
        if message.job == "finish":
            self.query_one(RunPanel).display = False
            self._followed = self._finishing = None
        self._refresh_side()

    async def on_turn_saved(self, message: TurnSaved) -> None:
        if message.conversation is self.conversation:
            await self._show([ChatMessage("user", message.text)])

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

    def _closing_down(self) -> bool:
        """True once the app is shutting down: its main screen's widgets are being removed, and
        a timer that fires then must not look for them."""
        try:
            self.query_one(RunPanel)
        except NoMatches:
            return True
        return False

    def _check_terminal(self) -> None:
        """Timer: leave when the terminal has gone (its window closed, tmux killed). Textual's
        input thread spins on the hung-up terminal otherwise, and the app lived on at full
        CPU holding the session's lock. A run keeps going in its own worker process."""
        if terminal_hung_up():
            self.exit(return_code=129, message="tunesmith: the terminal closed")

    async def _follow_writer(self) -> None:
        """Timer: in a read-only view, show what the session's writer has said since."""
        conversation = self.conversation
        if conversation is None or not conversation.read_only or self._closing_down():
            return
        turns = conversation.catch_up(self._newest_saved)
        if turns:
            self._newest_saved = turns[-1]["n"]
            await self._show([self._message(t) for t in turns])
            self._refresh_side()

    def _follow_run(self) -> None:
        """Timer: read the followed run's new events; ask for its results once it ends."""
        conversation = self.conversation
        if self._closing_down() or not self._opened:
            return
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
        gone = not run_dir.is_dir()  # moved or deleted while followed: say so, stop following
        if status.get("state") in runs.TERMINAL_STATES or gone:
            self._read_events(panel, run_dir)  # the last lines written before it ended
            self._finishing = key
            self._submit("finish", status)

    def _read_events(self, panel: RunPanel, run_dir: Path) -> None:
        key = str(run_dir)
        offset = self._offsets.get(key, 0)
        if offset == 0 and self._big_backlog(run_dir):
            # a long run reopened: its per-step lines sampled (as the monitor reads a file),
            # not 200,000 lines parsed on the UI thread
            from assistant.monitor import read_run_backlog

            events, _, self._offsets[key] = read_run_backlog(run_dir)
        else:
            events, self._offsets[key] = runs.read_events(run_dir, offset)
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

    @staticmethod
    def _big_backlog(run_dir: Path) -> bool:
        try:
            return (run_dir / "events.jsonl").stat().st_size > BIG_BACKLOG_BYTES
        except OSError:
            return False

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
