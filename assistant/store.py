"""The session store: one folder per session under the sessions home, one SQLite file in each.

`session.db` (sqlite-utils, WAL mode) holds the conversation turns, every version of the plan,
the planner's state, the runs and the person's title for the session. Run folders live beside
it in `runs/<id>/`. This module maps rows to plain dicts and nothing else: what a turn means is
the planner's business. Schema changes go through `MIGRATIONS`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
import unicodedata
from pathlib import Path
from typing import Any

from tuning_core import runs as run_files
from tuning_core.errors import SessionError


def _import_sqlite_utils():
    """sqlite-utils imports pandas and numpy whenever they are installed (they are, for the
    training side), only for DataFrame and array values that tunesmith never stores; without
    them `import assistant.app` took about 0.65 s here instead of about 1.4 s. Hide them while it loads; it then treats them as absent,
    and a later `import pandas` anywhere else works as usual."""
    import sys

    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations
    finally:
        for name in hidden:
            del sys.modules[name]
    return Database, Migrations


Database, Migrations = _import_sqlite_utils()

DB_NAME = "session.db"
HOME_ENV = "TUNESMITH_HOME"
TITLE_MAX = 60
# run states whose worker process may still be writing into the session's folder
# (`tuning_core.runs.read_status` turns them into "dead" once the process has gone)
ACTIVE_RUN_STATES = ("starting", "running")

MIGRATIONS = Migrations("tunesmith")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db["meta"].create(
        {
            "id": str,
            "created": float,
            "updated": float,
            "name": str,
            "stage": str,
            "task": str,
            "data_file": str,
            "base_model": str,
            "state": str,
        },
        pk="id",
    )
    db["turns"].create({"n": int, "role": str, "text": str, "time": float, "kind": str}, pk="n")
    db["plans"].create(
        {"version": int, "plan": str, "reasons": str, "time": float, "source": str}, pk="version"
    )
    db["runs"].create(
        {
            "id": str,
            "dir": str,
            "status": str,
            "started": float,
            "ended": float,
            "headline": str,
        },
        pk="id",
    )


@MIGRATIONS()
def m002_dataset_versions(db: Database) -> None:
    """Fixed versions of the person's data, written inside the session (issue 3)."""
    db["datasets"].create(
        {"version": int, "fix": str, "what": str, "dir": str, "summary": str, "time": float},
        pk="version",
    )


@MIGRATIONS()
def m003_session_title(db: Database) -> None:
    """A title the person gives the session in the sessions browser."""
    db["meta"].add_column("title", str)


def clean_title(title: str) -> str:
    """`title` stripped; ValueError (one line) unless it is 1-60 characters on one line."""
    text = str(title).strip()
    if not text:
        raise ValueError("A session title cannot be empty.")
    if len(text) > TITLE_MAX:
        raise ValueError(f"A session title is at most {TITLE_MAX} characters, not {len(text)}.")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise ValueError("A session title is one line, without tabs or control characters.")
    return text


def run_is_active(summary: dict[str, Any]) -> bool:
    """True when a session summary's last run may still be going."""
    run = summary.get("last_run") or {}
    return run.get("status") in ACTIVE_RUN_STATES


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "sessions")


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class Session:
    """One saved session: its folder, its database, its runs."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.id = self.dir.name
        try:
            conn = sqlite3.connect(self.dir / DB_NAME, check_same_thread=False)
            self.db = Database(conn)
            self.db.enable_wal()
            MIGRATIONS.apply(self.db)
        except sqlite3.DatabaseError as exc:
            raise SessionError(f"Session {self.id} cannot be opened: {exc}") from exc

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    # -- conversation
    def add_turn(self, role: str, text: str, kind: str = "text") -> int:
        with self.db.atomic():
            n = self.db.execute("select coalesce(max(n), 0) + 1 from turns").fetchone()[0]
            self.db["turns"].insert(
                {"n": n, "role": role, "text": text, "time": time.time(), "kind": kind}
            )
            self.db["meta"].upsert({"id": self.id, "updated": time.time()}, pk="id")
        return n

    def turns(self) -> list[dict[str, Any]]:
        return list(self.db["turns"].rows_where(order_by="n"))

    # -- planner state and plans
    def save_state(self, state: dict[str, Any], summary: dict[str, str]) -> None:
        with self.db.atomic():
            self.db["meta"].upsert(
                {"id": self.id, "updated": time.time(), "state": json.dumps(state), **summary},
                pk="id",
            )

    def load_state(self) -> dict[str, Any] | None:
        row = self.meta()
        return json.loads(row["state"]) if row.get("state") else None

    def meta(self) -> dict[str, Any]:
        rows = list(self.db["meta"].rows_where("id = ?", [self.id]))
        return rows[0] if rows else {}

    def set_title(self, title: str) -> str:
        """Give the session a title (see `clean_title`); the title as stored."""
        text = clean_title(title)
        self.db["meta"].upsert({"id": self.id, "title": text}, pk="id")
        return text

    def save_plan(self, plan: dict, reasons: dict, source: str) -> int:
        with self.db.atomic():
            version = self.db.execute("select coalesce(max(version), 0) + 1 from plans").fetchone()[
                0
            ]
            self.db["plans"].insert(
                {
                    "version": version,
                    "plan": json.dumps(plan, sort_keys=True),
                    "reasons": json.dumps(reasons, sort_keys=True),
                    "time": time.time(),
                    "source": source,
                }
            )
        return version

    def plans(self) -> list[dict[str, Any]]:
        return list(self.db["plans"].rows_where(order_by="version"))

    # -- dataset versions
    def save_data_version(self, version: dict[str, Any]) -> None:
        self.db["datasets"].upsert(
            {
                "version": version["version"],
                "fix": version["fix"],
                "what": version["what"],
                "dir": version["dir"],
                "summary": json.dumps(version.get("summary", {}), sort_keys=True, default=str),
                "time": time.time(),
            },
            pk="version",
        )

    def data_versions(self) -> list[dict[str, Any]]:
        return list(self.db["datasets"].rows_where(order_by="version"))

    # -- runs
    def add_run(self, run_id: str, run_dir: Path) -> None:
        self.db["runs"].upsert(
            {"id": run_id, "dir": str(run_dir), "status": "starting", "started": time.time()},
            pk="id",
        )

    def update_run(self, run_id: str, status: str, headline: dict | None = None) -> None:
        record: dict[str, Any] = {"id": run_id, "status": status}
        if headline is not None:
            record["headline"] = json.dumps(headline, sort_keys=True)
        if status in run_files.TERMINAL_STATES:
            record["ended"] = time.time()
        self.db["runs"].upsert(record, pk="id")

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db["runs"].rows_where(order_by="started"))

    def last_run(self) -> dict[str, Any] | None:
        """The newest run with its live status read from its folder."""
        rows = self.runs()
        if not rows:
            return None
        row = dict(rows[-1])
        status = run_files.read_status(Path(row["dir"]))
        state = status.get("state", row["status"])
        if state == "missing":
            state = row["status"]
        headline = status.get("headline") or (
            json.loads(row["headline"]) if row.get("headline") else None
        )
        return {"id": row["id"], "dir": row["dir"], "status": state, "headline": headline}

    def summary(self) -> dict[str, Any]:
        meta = self.meta()
        return {
            "id": self.id,
            "name": meta.get("name") or "",
            "title": meta.get("title") or "",
            "created": meta.get("created"),
            "updated": meta.get("updated"),
            "stage": meta.get("stage") or "task",
            "task": meta.get("task") or "",
            "data_file": meta.get("data_file") or "",
            "base_model": meta.get("base_model") or "",
            "last_run": self.last_run(),
        }

    def close(self) -> None:
        self.db.close()


class SessionStore:
    """All sessions under one home folder."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home else default_home()

    def create(self) -> Session:
        self.home.mkdir(parents=True, exist_ok=True)
        directory = self.home / new_session_id()
        directory.mkdir()
        session = Session(directory)
        now = time.time()
        session.db["meta"].insert(
            {"id": session.id, "created": now, "updated": now, "stage": "task"}
        )
        return session

    def path(self, session_id: str) -> Path:
        return self.home / session_id

    def open(self, session_id: str) -> Session:
        return Session(self._existing(session_id))

    def _existing(self, session_id: str) -> Path:
        """The folder of session `session_id`; SessionError when there is no such session."""
        directory = self.home / session_id
        plain = session_id not in ("", ".", "..") and Path(session_id).name == session_id
        if not plain or not (directory / DB_NAME).exists():
            known = [s.name for s in self._dirs()]
            hint = f"; known sessions: {', '.join(known[-5:])}" if known else ""
            raise SessionError(f"No session {session_id!r} in {self.home}{hint}")
        return directory

    def rename(self, session_id: str, title: str) -> str:
        """Give session `session_id` a title (stripped, 1-60 characters, else ValueError);
        the title as stored. SessionError when there is no such session."""
        text = clean_title(title)
        session = self.open(session_id)
        try:
            return session.set_title(text)
        finally:
            session.close()

    def delete(self, session_id: str) -> None:
        """Remove session `session_id`'s folder: its conversation, plans, data versions and
        runs. SessionError when there is no such session. It does not look at the session's
        runs: a caller that may hold a running one checks `run_is_active` first."""
        shutil.rmtree(self._existing(session_id))

    def _dirs(self) -> list[Path]:
        if not self.home.exists():
            return []
        return sorted(p for p in self.home.iterdir() if (p / DB_NAME).exists())

    def list(self) -> list[dict[str, Any]]:
        """Summaries of every session, oldest first; a damaged one is listed with its error."""
        out = []
        for directory in self._dirs():
            try:
                session = Session(directory)
                try:
                    out.append(session.summary())
                finally:
                    session.close()
            except (SessionError, sqlite3.DatabaseError) as exc:
                out.append({"id": directory.name, "error": str(exc)})
        return out
