"""A conversation: the planner bound to a saved session.

Every user turn is written to the session before the planner sees it (and before a front end
shows it: `say(on_user=)`), and every reply is written before it is returned to a front end,
so closing the terminal at any moment loses no turn that was shown. Both front ends (the
Textual app and the headless chat) talk only to this class. Calls are serialised with a lock:
the app calls from worker threads and its UI timer.

A conversation over a session opened read-only (another tunesmith has it open for writing)
shows what is saved and answers `/status` and `/help`; anything else typed gets one
"read-only: ..." line, and nothing is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.planner import Planner, PlannerState, Reply
from assistant.store import Session, SessionStore
from tuning_core import runs
from tuning_core.errors import SessionError

# what a read-only conversation still answers: commands that only read
READ_ONLY_COMMANDS = ("/status", "/help", "/h", "/?")


class Conversation:
    def __init__(self, session: Session, reason: str = "") -> None:
        """`reason`: for a read-only session, why (the lock holder's message)."""
        self.session = session
        self.reason = reason or f"session {session.id} is open read-only"
        self._lock = threading.RLock()
        try:
            saved = session.load_state()
            state = PlannerState.from_dict(saved) if saved else None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            session.close()
            raise SessionError(
                f"Session {session.id} cannot be opened: its saved state is unreadable ({exc})"
            ) from exc
        self.planner = Planner(session.runs_dir, state)
        self._plan_saved = self.planner.state.plan
        self._watcher = None  # (run id, RunWatcher) of the followed run

    def catch_up(self, newest: int) -> list[dict[str, Any]]:
        """Read-only: the turns the session's writer (another app, a headless chat, an agent
        through `tunesmith mcp`) saved after turn `newest`, with the planner's state reloaded
        when there are any, so the plan and the run shown follow the writer."""
        with self._lock:
            turns = self.session.turns_after(newest)
            if turns:
                saved = self.session.load_state()
                if saved:
                    self.planner.state = PlannerState.from_dict(saved)
            return turns

    @classmethod
    def start(
        cls,
        store: SessionStore,
        session_id: str | None = None,
        read_only: bool = False,
        reason: str = "",
    ) -> Conversation:
        """A new session's conversation, or session `session_id`'s: for writing (SessionLocked
        when another process has it), or `read_only` (`reason` says why, in its replies)."""
        session = store.open(session_id, read_only=read_only) if session_id else store.create()
        return cls(session, reason)

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def read_only(self) -> bool:
        return self.session.read_only

    @property
    def state(self) -> PlannerState:
        return self.planner.state

    def close(self) -> None:
        """Close the session (and give its lock back), once no call is running."""
        with self._lock:
            self.session.close()

    def close_soon(self) -> None:
        """Close now if no call is running, else in a thread once the running call is done
        (the app leaving a session must not wait for a slow turn)."""
        if self._lock.acquire(blocking=False):
            try:
                self.session.close()
            finally:
                self._lock.release()
        else:
            threading.Thread(target=self.close, daemon=True).start()

    def history(self, limit: int | None = None, before: int | None = None) -> list[dict[str, Any]]:
        """The saved turns in order; with `limit` the newest `limit` (numbered below `before`)."""
        return self.session.turns(limit, before)

    def turn_count(self, before: int | None = None) -> int:
        return self.session.turn_count(before)

    def read_only_reply(self) -> Reply:
        return Reply(f"read-only: {self.reason}; nothing typed here is saved.", "error")

    def opening(self) -> list[Reply]:
        """Replies to show when the conversation opens: a greeting, or where we left off."""
        with self._lock:
            if self.read_only:
                return [
                    Reply(
                        f"**Read-only view.** {self.reason}. The conversation, the plan, the "
                        "data and the runs show here, but nothing you type is saved "
                        "(`/status` and `/help` still answer).",
                        "error",
                    ),
                    Reply(self.planner.status_text()),
                ]
            if not self.session.turn_count():
                return self._record(self.planner.greeting())
            replies = []
            run_dir = self.run_dir
            if self.state.stage == "run" and run_dir is not None and not run_dir.is_dir():
                replies += self._run_folder_missing(run_dir)
            elif self.state.stage == "run":
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

    def _run_folder_missing(self, run_dir: Path) -> list[Reply]:
        """The followed run's folder has gone (moved or deleted): back to the plan, saying so."""
        run_id = self.state.run_id or run_dir.name
        self.planner.run_finished({"state": "failed", "error": "its run folder is missing"})
        if self.state.run_id:
            self.session.update_run(self.state.run_id, "missing")
        return [
            Reply(
                f"The folder of run `{run_id}` is missing ({run_dir}): it was moved or deleted, "
                "so its progress and results cannot be shown. The plan is unchanged; `/run` "
                "trains it again.",
                "error",
            )
        ]

    def say(
        self,
        text: str,
        on_reply: Callable[[Reply], None] | None = None,
        on_user: Callable[[], None] | None = None,
        user_kind: str = "text",
        record_user: bool = True,
    ) -> list[Reply]:
        """One user turn: saved, answered, and the answer saved before it is returned.

        `on_user` is called once the person's turn is committed, so a front end shows it only
        then. With `on_reply`, a reply the planner has ready before the turn's slow work is
        done (the reading of a data file before its baseline, say) is saved and handed to it
        at once; the returned list holds the rest. Read-only: nothing is saved, and only
        READ_ONLY_COMMANDS are answered. `user_kind` "tool": a line a tool typed for the
        person (`assistant.tools`); `record_user` False: the person's words are saved already
        (the LLM front end answering them with the rule-based planner)."""
        with self._lock:
            if self.read_only:
                if on_user:
                    on_user()
                command = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
                if command in READ_ONLY_COMMANDS:
                    return self.planner.handle(text.strip())
                return [self.read_only_reply()]
            if record_user:
                self.session.add_turn("user", text, user_kind)
            if on_user:
                on_user()

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

    def note(self, role: str, text: str, kind: str = "text") -> None:
        """Save one turn the planner does not see (the person's words to the LLM front end,
        its explanation); nothing in a read-only session."""
        with self._lock:
            if not self.read_only:
                self.session.add_turn(role, text, kind)

    def save_state(self) -> None:
        """Save the planner state now (after a front end changed it outside a turn)."""
        with self._lock:
            self._record([])

    def _record(self, replies: list[Reply]) -> list[Reply]:
        if self.read_only:
            return replies
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
        """A run is going that this conversation follows (a read-only one follows none)."""
        return self.state.stage == "run" and not self.read_only

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

        if self.read_only:
            return []
        with self._lock:
            run_id = self.state.run_id or ""
            if self._watcher is None or self._watcher[0] != run_id:
                metric = (self.state.plan or {}).get("metric", "macro_f1")
                if metric == "perplexity":  # evaluations report its logarithm, the loss
                    metric = "loss"
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
            if self.run_dir is not None and not self.run_dir.is_dir():
                return self._record(self._run_folder_missing(self.run_dir))
            self._sync_run(status)
            return self._record(self.planner.run_finished(status))
