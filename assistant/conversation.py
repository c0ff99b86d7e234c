"""A conversation: the planner bound to a saved session.

Every user turn is written to the session before the planner sees it, and every reply is
written before it is returned to a front end, so closing the terminal at any moment loses no
turn that was shown. Both front ends (the Textual app and the headless chat) talk only to this
class. Calls are serialised with a lock: the app calls from worker threads and its UI timer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.planner import Planner, PlannerState, Reply
from assistant.store import Session, SessionStore
from tuning_core import runs


class Conversation:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.RLock()
        saved = session.load_state()
        state = PlannerState.from_dict(saved) if saved else None
        self.planner = Planner(session.runs_dir, state)
        self._plan_saved = self.planner.state.plan
        self._watcher = None  # (run id, RunWatcher) of the followed run

    @classmethod
    def start(cls, store: SessionStore, session_id: str | None = None) -> Conversation:
        session = store.open(session_id) if session_id else store.create()
        return cls(session)

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def state(self) -> PlannerState:
        return self.planner.state

    def close(self) -> None:
        with self._lock:
            self.session.close()

    def history(self) -> list[dict[str, Any]]:
        return self.session.turns()

    def opening(self) -> list[Reply]:
        """Replies to show when the conversation opens: a greeting, or where we left off."""
        with self._lock:
            if not self.session.turns():
                return self._record(self.planner.greeting())
            replies = []
            if self.state.stage == "run":
                status = self.run_status()
                if status.get("state") in runs.TERMINAL_STATES:
                    replies += self.planner.run_finished(status)
                    self._sync_run(status)
                else:
                    replies.append(
                        Reply(
                            f"Welcome back. Training `{self.state.run_id}` is still running; following it."
                        )
                    )
            else:
                replies.append(Reply(f"Welcome back. {self.planner.status_text()}"))
            return self._record(replies)

    def say(self, text: str, on_reply: Callable[[Reply], None] | None = None) -> list[Reply]:
        """One user turn: saved, answered, and the answer saved before it is returned.

        With `on_reply`, a reply the planner has ready before the turn's slow work is done (the
        reading of a data file before its baseline, say) is saved and handed to it at once;
        the returned list holds the rest."""
        with self._lock:
            self.session.add_turn("user", text)

            def early(reply: Reply) -> None:
                self.session.add_turn("assistant", reply.text, reply.kind)
                on_reply(reply)

            self.planner.emit = early if on_reply else None
            try:
                replies = self.planner.handle(text)
            finally:
                self.planner.emit = None
            if self.state.run_id and self.state.stage == "run":
                self.session.add_run(self.state.run_id, Path(self.state.run_dir or ""))
            return self._record(replies)

    def _record(self, replies: list[Reply]) -> list[Reply]:
        if self.state.plan != self._plan_saved and self.state.plan is not None:
            reasons = (self.state.recommendation or {}).get("reasons", {})
            source = "person" if self.state.changed else "recommend"
            self.session.save_plan(self.state.plan, reasons, source)
            self._plan_saved = self.state.plan
        saved_versions = {row["version"] for row in self.session.data_versions()}
        for version in self.state.data_versions:
            if version["version"] not in saved_versions:
                self.session.save_data_version(version)
        self.session.save_state(self.state.to_dict(), self.planner.summary())
        for reply in replies:
            self.session.add_turn("assistant", reply.text, reply.kind)
        return replies

    # ------------------------------------------------------------ following a run

    @property
    def run_dir(self) -> Path | None:
        return Path(self.state.run_dir) if self.state.run_dir else None

    @property
    def running(self) -> bool:
        return self.state.stage == "run"

    def run_status(self) -> dict[str, Any]:
        return runs.read_status(self.run_dir) if self.run_dir else {"state": "none"}

    def _sync_run(self, status: dict[str, Any]) -> None:
        if self.state.run_id:
            self.session.update_run(
                self.state.run_id, status.get("state", "unknown"), status.get("headline")
            )

    def watch(self, events: list[dict[str, Any]]) -> list[Reply]:
        """Feed a running run's new events to the live diagnosis; what it newly notices comes
        back as replies (kept in the session, each kind of finding once per run)."""
        from tuning_core.diagnose import RunWatcher

        with self._lock:
            run_id = self.state.run_id or ""
            if self._watcher is None or self._watcher[0] != run_id:
                metric = (self.state.plan or {}).get("metric", "macro_f1")
                self._watcher = (run_id, RunWatcher(metric))
            watcher = self._watcher[1]
            replies = []
            for event in events:
                for finding in watcher.feed(event):
                    key = f"{run_id}:{finding.kind}"
                    if key in self.state.diagnosed:
                        continue
                    self.state.diagnosed.append(key)
                    replies.append(Reply(f"**Watching the run:** {finding.message}", "diagnosis"))
            return self._record(replies) if replies else []

    def finish_run(self, status: dict[str, Any] | None = None) -> list[Reply]:
        """Call when the followed run reached a terminal state; returns the results replies."""
        with self._lock:
            if not self.running:
                return []
            status = status or self.run_status()
            self._sync_run(status)
            return self._record(self.planner.run_finished(status))
