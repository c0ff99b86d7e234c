"""The chat prompt: an `Input` with history (up/down) and completion of slash commands and of
the loaded data's column names (ghost text; right arrow or Tab accepts it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import Input

# The slash commands `Planner._command` in assistant/planner.py answers (an if-chain, no table;
# assistant/adjust.py has none). Most useful first: a prefix shared by several completes to the
# first, e.g. "/s" -> "/status". The one-letter aliases /h and /? are left out.
COMMANDS: tuple[str, ...] = (
    "/help",
    "/status",
    "/back",
    "/plan",
    "/data",
    "/findings",
    "/forecast",
    "/run",
    "/train",
    "/resume",
    "/stop",
    "/export",
)

HISTORY_MAX = 500
QUOTES = "'\"`"


def _no_columns() -> list[str]:
    return []


class PromptSuggester(Suggester):
    """Completes a slash command, or the last word against the data's column names.

    `columns` is called for every suggestion (the data can change between turns) and returns
    [] when no data is loaded. Matching ignores case; the suggestion keeps what was typed and
    appends the rest of the name.
    """

    def __init__(
        self,
        columns: Callable[[], list[str]] | None = None,
        commands: Iterable[str] = COMMANDS,
    ) -> None:
        # no cache: the columns change when data is loaded; case-sensitive so that the value
        # reaches `get_suggestion` as typed (the base class would casefold it)
        super().__init__(use_cache=False, case_sensitive=True)
        self.columns = columns or _no_columns
        self.commands = tuple(commands)

    async def get_suggestion(self, value: str) -> str | None:
        if value.startswith("/"):
            if any(c.isspace() for c in value):  # the command is typed; its argument is free
                return None
            return _complete(value, value, self.commands)
        if not value or value[-1].isspace():
            return None
        word = value.split()[-1].lstrip(QUOTES)  # `column 'cat` completes too
        if not word:
            return None
        try:
            names = [str(name) for name in self.columns()]
        except Exception:  # a failing callable must not take the app down with its worker
            return None
        return _complete(value, word, names)


def _complete(value: str, fragment: str, names: Iterable[str]) -> str | None:
    """`value` with the rest of the first name that `fragment` (its end) is a prefix of."""
    folded = fragment.casefold()
    for name in names:
        if len(name) > len(fragment) and name.casefold().startswith(folded):
            return value + name[len(fragment) :]
    return None


class PromptInput(Input):
    """The chat prompt. Up/down browse earlier entries (down past the newest brings back what
    was being typed); Tab, like right arrow at the end, accepts a visible suggestion, and moves
    focus as usual when there is none.

    `history`: earlier entries, oldest first. `columns`: returns the loaded data's column names
    ([] when none), for completion. Other arguments are `Input`'s.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history_previous", "Previous entry", show=False),
        Binding("down", "history_next", "Next entry", show=False),
        Binding("tab", "accept_suggestion", "Accept suggestion", show=False),
    ]

    def __init__(
        self,
        *args: Any,
        history: Iterable[str] = (),
        columns: Callable[[], list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._history: list[str] = []
        self._index: int | None = None  # the entry shown while browsing; None when not
        self._draft = ""
        self._recalling = False
        kwargs.setdefault("suggester", PromptSuggester(columns))
        super().__init__(*args, **kwargs)
        self.set_history(history)

    @property
    def history(self) -> list[str]:
        """A copy of the entries, oldest first."""
        return list(self._history)

    def set_history(self, entries: Iterable[str]) -> None:
        """Replace the history (e.g. with the user turns of a reopened session), oldest first."""
        self._history = []
        self._stop_browsing()
        for entry in entries:
            self.remember(entry)

    def remember(self, text: str) -> None:
        """Add an entry; empty text and a repeat of the newest entry are skipped."""
        self._stop_browsing()
        text = text.strip()
        if not text or (self._history and self._history[-1] == text):
            return
        self._history.append(text)
        del self._history[:-HISTORY_MAX]

    # ------------------------------------------------------------ history

    def _stop_browsing(self) -> None:
        self._index = None
        self._draft = ""

    def _show(self, text: str) -> None:
        self._recalling = True
        try:
            self.value = text
        finally:
            self._recalling = False
        self.cursor_position = len(text)

    def watch_value(self, value: str) -> None:
        if not self._recalling:  # typed or set by the app: the value is a new draft
            self._index = None

    def action_history_previous(self) -> None:
        if not self._history:
            return
        if self._index is None:
            self._draft = self.value
            self._index = len(self._history) - 1
        elif self._index > 0:
            self._index -= 1
        else:
            return
        self._show(self._history[self._index])

    def action_history_next(self) -> None:
        if self._index is None:
            return
        if self._index + 1 < len(self._history):
            self._index += 1
            self._show(self._history[self._index])
        else:
            draft = self._draft
            self._stop_browsing()
            self._show(draft)

    # ------------------------------------------------------------ completion

    def action_accept_suggestion(self) -> None:
        """Tab: take the visible suggestion; with none, let the screen move focus."""
        suggestion = self._suggestion
        if not suggestion or len(suggestion) <= len(self.value):
            raise SkipAction()
        self.value = suggestion
        self.cursor_position = len(suggestion)
