"""Keeping each step of the event loop short when Textual has a burst of work to do.

A Textual message pump takes the messages waiting in its queue one after another without
giving the event loop a turn in between: `asyncio.Queue.get` returns at once while the queue
holds something. When a screen is pushed, its pump finds a dozen messages waiting (mount,
resume, resize of the screen and of each widget), and two of them lay out and draw the whole
screen. For the results view (five tables) that was one step of 55-60 ms on this machine
(bench/ui_stalls.py, 2026-11-30), in which no key was read and no frame of another screen drawn.

`OneMessagePerStep` gives the loop a turn once the messages handled since the last turn have
taken `STEP_BUDGET_S` (10 ms), so a costly message ends a step of its own (two steps of about
35 ms instead of one of 60 for the results view), while a run of cheap ones is still taken in
bulk. (A turn after every message starved the app's own timers when a hung-up terminal flooded
its queue with input: the app no longer noticed that its terminal had closed.) Nothing is
reordered: a pump still handles its own messages in the order they came; other pumps and the
screen's refresh timer may run in between, as they would had the messages arrived apart.

`PacedScreen` adds one more saving for screens: it starts with the breakpoint classes
(`-narrow`, `-wide`, ... from the app's HORIZONTAL_BREAKPOINTS) for the terminal's present
size. Textual sets them on the screen's first resize, after the first layout, and the change of
classes restyles and redraws the whole screen once more.

Switching the theme is one callback, not a burst: `TunesmithApp.refresh_css` splits it in two
(reparse the stylesheet with the theme's variables, then restyle the widgets in a later turn
of the loop; see there).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual.message import Message

STEP_BUDGET_S = 0.010


class OneMessagePerStep:
    """Mixin for a Textual `App` or `Screen` (put it first among the bases): the event loop
    gets a turn once the messages handled since its last turn have taken `STEP_BUDGET_S`."""

    _spent_s = 0.0  # handling messages since the loop's last turn

    async def _dispatch_message(self, message: Message) -> None:
        started = time.perf_counter()
        await super()._dispatch_message(message)  # type: ignore[misc]
        self._spent_s += time.perf_counter() - started
        if self._spent_s >= STEP_BUDGET_S:
            self._spent_s = 0.0
            await asyncio.sleep(0)
        elif self._message_queue.empty():  # type: ignore[attr-defined]
            self._spent_s = 0.0  # the pump waits for the next message: the loop gets its turn


class PacedScreen(OneMessagePerStep):
    """Mixin for a Textual `Screen` (first among the bases): one message per step, and the
    breakpoint classes for the present terminal size from the start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            app = self.app  # type: ignore[attr-defined]
        except Exception:  # made outside a running app (a test): Textual sets them on resize
            return
        width, height = app.size
        for dimension, breakpoints in (
            (width, self.HORIZONTAL_BREAKPOINTS or app.HORIZONTAL_BREAKPOINTS),  # type: ignore[attr-defined]
            (height, self.VERTICAL_BREAKPOINTS or app.VERTICAL_BREAKPOINTS),  # type: ignore[attr-defined]
        ):
            chosen = breakpoint_class(dimension, breakpoints or [])
            if chosen:
                self.add_class(chosen)  # type: ignore[attr-defined]


def breakpoint_class(dimension: int, breakpoints: list[tuple[int, str]]) -> str | None:
    """The class of the largest breakpoint at or below `dimension`, as Textual picks it."""
    for threshold, name in sorted(breakpoints, reverse=True):
        if dimension >= threshold:
            return name
    return None
