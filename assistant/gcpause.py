"""Keeping Python's garbage collector out of the app's frames.

A full collection walks every object the process holds. After the conversation has imported
scikit-learn, the tokenizers and the rest, that is a few hundred thousand objects, and each
full collection held the event loop for 100-300 ms (bench/ui_stalls.py, 2026-11-30): the
largest stalls left once the screens themselves were cheap. Two things keep it out:

- `freeze()` moves everything alive into the collector's permanent generation, so later
  collections only walk what was made since. The app freezes once its first screen is up, and
  again after a conversation call that imported modules (the bulk of long-lived objects).
  Whatever cyclic garbage exists at that moment is kept for good: a few thousand objects, a
  handful of times a session.
- `paused()` turns the automatic collector off while a conversation call runs in its thread
  (loading, profiling, the baseline: seconds, in which the imports would trigger several full
  collections that hold the lock the event loop needs). The call's cyclic garbage is collected
  later, from the young generations, as usual.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class GarbagePauses:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._modules = len(sys.modules)

    def freeze(self) -> None:
        gc.freeze()
        self._modules = len(sys.modules)

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
            gc.disable()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    if len(sys.modules) > self._modules:
                        self.freeze()
                    gc.enable()
