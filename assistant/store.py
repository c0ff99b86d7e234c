"""The session store: one folder per session under the sessions home, one SQLite file in each.

`session.db` (sqlite-utils, WAL mode) holds the conversation turns, every version of the plan,
the planner's state, the runs and the person's title for the session. Run folders live beside
it in `runs/<id>/`. This module maps rows to plain dicts and nothing else: what a turn means is
the planner's business. Schema changes go through `MIGRATIONS`.

What it promises (issue 8):

- One writer. Opening a session for writing takes an exclusive `flock` on `session.lock` in its
  folder, holding the pid and command of the process; the kernel drops it when the process
  ends, SIGKILL included, so no lock outlives its holder. A second writer gets `SessionLocked`
  ("Session X is open in another tunesmith (pid N): ...") and may open it read-only instead
  (`read_only=True`: an SQLite `mode=ro` connection, no migration, every write refused).
- Damage is named. A session.db cut short, overwritten or otherwise unreadable, or written by
  a newer tunesmith (a migration name this code does not know), raises `SessionError` naming
  the session; `SessionStore.list` shows it with that message and lists every other session.
  A newer schema is never migrated or written to.
- Private files. Session folders are 0700, session.db (and so its -wal/-shm, which SQLite
  creates with the database's mode) 0600, the sessions home 0700 when this module creates it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import sqlite3
import sys
import threading
import time
import unicodedata
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
LOCK_NAME = "session.lock"
HOME_ENV = "TUNESMITH_HOME"
TITLE_MAX = 60
DIR_MODE = 0o700  # session folders and a sessions home this module creates
FILE_MODE = 0o600  # session.db, its lock file
LOCK_WAIT_S = 0.25  # how long a writer retries a lock held for a moment (a `list` probing it)
# run states whose worker process may still be writing into the session's folder
# (`tuning_core.runs.read_status` turns them into "dead" once the process has gone)
ACTIVE_RUN_STATES = ("starting", "running")

MIGRATIONS = Migrations("tunesmith")
MIGRATION_NAMES: list[str] = []  # in order; a database naming any other was written by a newer one


def migration(fn):
    """Register `fn` as the next migration of the session schema."""
    MIGRATION_NAMES.append(fn.__name__)
    return MIGRATIONS()(fn)


@migration
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


@migration
def m002_dataset_versions(db: Database) -> None:
    """Fixed versions of the person's data, written inside the session (issue 3)."""
    db["datasets"].create(
        {"version": int, "fix": str, "what": str, "dir": str, "summary": str, "time": float},
        pk="version",
    )


@migration
def m003_session_title(db: Database) -> None:
    """A title the person gives the session in the sessions browser."""
    db["meta"].add_column("title", str)


class SessionLocked(SessionError):
    """The session is open for writing in another process (or another Session here)."""

    def __init__(self, session_id: str, holder: dict[str, Any]) -> None:
        self.session_id = session_id
        self.pid = holder.get("pid")
        self.command = str(holder.get("command") or "")
        message = f"Session {session_id} is open in another tunesmith (pid {self.pid or '?'})"
        if self.command:
            message += f": {self.command}"
        super().__init__(message)


class SessionTooNew(SessionError):
    """The session's database was written by a newer tunesmith; it is left untouched."""


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


def make_private_dir(path: Path) -> bool:
    """Create folder `path` (parents as needed) with mode 0700 whatever the umask; True when it
    was created here. An existing folder is left as it is."""
    path = Path(path)
    if path.is_dir():
        return False
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return False
    os.chmod(path, DIR_MODE)  # mkdir's mode is cut by the umask
    return True


def _tighten(path: Path, mode: int) -> None:
    """Take group and other permissions off `path` (a session written by an older tunesmith)."""
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, mode)
    except OSError:
        pass


def header_problem(path: Path) -> str | None:
    """What is wrong with the file `path` as an SQLite database, judged from its 100-byte
    header and its size alone (cheap enough for listing a thousand sessions); None when it
    looks whole. Damage further in shows when the pages are read (`Session(verify=True)`)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            header = fh.read(100)
    except OSError as exc:
        return f"its session.db cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "its session.db is empty"
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return "its session.db is not an SQLite database (overwritten or damaged)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the page count is only kept up when these match
    if valid and pages and size < pages * page_size:
        return f"its session.db is cut short ({size:,} of {pages * page_size:,} bytes)"
    return None


def _query(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    """Rows as dicts, straight from the connection (listing a thousand sessions reads three
    small queries each; sqlite-utils' table helpers add a schema query to each). A table an
    old schema lacks reads as empty."""
    try:
        cursor = conn.execute(sql, args)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _check_schema(conn: sqlite3.Connection, session_id: str) -> None:
    """SessionTooNew when the database names a migration this tunesmith does not know."""
    rows = _query(
        conn, "select name from _sqlite_migrations where migration_set = ?", [MIGRATIONS.name]
    )
    unknown = [row["name"] for row in rows if row["name"] not in MIGRATION_NAMES]
    if unknown:
        raise SessionTooNew(
            f"Session {session_id} was written by a newer tunesmith (its schema has "
            f"{', '.join(unknown)}): update tunesmith to open it; it is left unchanged"
        )


def _meta_of(conn: sqlite3.Connection, session_id: str) -> dict[str, Any]:
    rows = _query(conn, "select * from meta where id = ?", [session_id])
    return rows[0] if rows else {}


def _last_run_of(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest run with its live status read from its folder; a run whose folder has gone
    reads as "missing", with a message saying so."""
    rows = _query(conn, "select * from runs order by started desc limit 1", [])
    if not rows:
        return None
    row = rows[0]
    saved = json.loads(row["headline"]) if row.get("headline") else None
    if not row["dir"] or not os.path.isdir(row["dir"]):
        return {
            "id": row["id"],
            "dir": row["dir"],
            "status": "missing",
            "headline": saved,
            "message": f"the folder of run {row['id']} is missing ({row['dir']})",
        }
    status = run_files.read_status(Path(row["dir"]))
    state = status.get("state", row["status"])
    if state == "missing":
        state = row["status"]
    headline = status.get("headline") or saved
    return {"id": row["id"], "dir": row["dir"], "status": state, "headline": headline}


def _summary_of(conn: sqlite3.Connection, session_id: str) -> dict[str, Any]:
    meta = _meta_of(conn, session_id)
    return {
        "id": session_id,
        "name": meta.get("name") or "",
        "title": meta.get("title") or "",
        "created": meta.get("created"),
        "updated": meta.get("updated"),
        "stage": meta.get("stage") or "task",
        "task": meta.get("task") or "",
        "data_file": meta.get("data_file") or "",
        "base_model": meta.get("base_model") or "",
        "last_run": _last_run_of(conn),
    }


def _read_only_connection(path: Path | str) -> sqlite3.Connection:
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _damaged(session_id: str, exc: Exception) -> str:
    return f"Session {session_id} cannot be opened: its session.db is damaged ({exc})"


def _holder_command() -> str:
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if argv[0] in ("cli.py", "__main__.py"):
        argv[0] = "tunesmith"
    text = " ".join(argv)
    return text if len(text) <= 120 else text[:119] + "…"


def read_holder(directory: Path) -> dict[str, Any]:
    """The pid and command the holder of `directory`'s lock wrote ({} if unreadable)."""
    for _ in range(10):  # the holder writes them just after taking the lock
        try:
            text = (Path(directory) / LOCK_NAME).read_text(encoding="utf-8")
            if text.strip():
                value = json.loads(text)
                return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return {}


def lock_holder(directory: Path) -> dict[str, Any] | None:
    """Who holds `directory`'s session lock (pid, command), or None when nobody does. It asks
    for a shared lock for an instant, which an exclusive holder refuses; this process's own
    sessions count as held too."""
    try:
        fd = os.open(Path(directory) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # never opened for writing by a tunesmith that locks
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(directory) or {"pid": None}
    finally:
        os.close(fd)  # also drops the shared lock
    return None


class SessionLock:
    """The exclusive lock on one session folder: an `flock` on DIR/session.lock, which holds
    the holder's pid and command. The kernel releases it when the file is closed or the
    process dies, so a SIGKILL never leaves it behind; the descriptor is not inherited by
    child processes (Python opens files non-inheritable), so a training worker started from
    the app does not keep it. Two locks of one folder conflict within one process too (flock
    locks belong to the open file description)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._file = None

    def acquire(self, session_id: str, wait_s: float = LOCK_WAIT_S) -> None:
        """Take the lock or raise SessionLocked naming the holder."""
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        handle = os.fdopen(fd, "r+b")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise SessionLocked(session_id, read_holder(self.directory)) from None
                time.sleep(0.02)
        _tighten(self.directory / LOCK_NAME, FILE_MODE)
        handle.truncate(0)
        holder = {"pid": os.getpid(), "command": _holder_command(), "since": time.time()}
        handle.write(json.dumps(holder).encode())
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# the sessions this process has open for writing, by folder: renaming the open session from
# the sessions browser goes through its own connection instead of a second (refused) lock
_HELD: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()


def _key(directory: Path) -> str:
    return str(Path(directory).resolve())


class Session:
    """One saved session: its folder, its database, its runs.

    Opened for writing (the default) it holds the session's lock (`SessionLocked` when another
    holds it), brings the schema up to date and keeps files private. `read_only=True` opens
    the database with `mode=ro`, migrates nothing and refuses every write. `verify` runs
    SQLite's quick_check so that damage anywhere in the file is named at open; listing skips
    it (the header check still runs). `fresh`: the store has just made an empty session.db."""

    def __init__(
        self, directory: Path, read_only: bool = False, verify: bool = True, fresh: bool = False
    ) -> None:
        self.dir = Path(directory)
        self.id = self.dir.name
        self.read_only = read_only
        self._write_lock = threading.RLock()  # the app's UI thread and its workers share it
        self._lock: SessionLock | None = None
        self.db = None
        path = self.dir / DB_NAME
        if not read_only:
            self._lock = SessionLock(self.dir)
            self._lock.acquire(self.id)
        conn = None
        try:
            problem = header_problem(path)
            if problem and not (fresh and path.stat().st_size == 0):
                raise SessionError(f"Session {self.id} cannot be opened: {problem}")
            if read_only:
                conn = _read_only_connection(path)
            else:
                _tighten(self.dir, DIR_MODE)
                for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                    _tighten(self.dir / name, FILE_MODE)
                conn = sqlite3.connect(path, check_same_thread=False)
            self.db = Database(conn)
            if verify:
                found = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
                if found != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(found))
            _check_schema(conn, self.id)
            if not read_only:
                self.db.enable_wal()
                MIGRATIONS.apply(self.db)
        except sqlite3.DatabaseError as exc:
            self._abandon(conn)
            if "locked" in str(exc) or "busy" in str(exc):
                raise SessionError(f"Session {self.id} is busy ({exc}); try again") from exc
            raise SessionError(_damaged(self.id, exc)) from exc
        except BaseException:
            self._abandon(conn)
            raise
        if not read_only:
            _HELD[_key(self.dir)] = self

    def _abandon(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            conn.close()
        if self._lock is not None:
            self._lock.release()

    def _writing(self):
        """The write lock, after checking the session is not open read-only."""
        if self.read_only:
            raise SessionError(
                f"read-only: session {self.id} is open read-only here; nothing was saved"
            )
        return self._write_lock

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    # -- conversation
    def add_turn(self, role: str, text: str, kind: str = "text") -> int:
        """Append a turn; it is committed when this returns."""
        with self._writing(), self.db.atomic():
            n = self.db.execute("select coalesce(max(n), 0) + 1 from turns").fetchone()[0]
            self.db["turns"].insert(
                {"n": n, "role": role, "text": text, "time": time.time(), "kind": kind}
            )
            self.db["meta"].upsert({"id": self.id, "updated": time.time()}, pk="id")
        return n

    def turns(self, limit: int | None = None, before: int | None = None) -> list[dict[str, Any]]:
        """Turns in order; with `limit`, only the newest `limit` (of those numbered below
        `before`, when given)."""
        where, args = ("n < ?", [before]) if before is not None else (None, [])
        if limit is None:
            return list(self.db["turns"].rows_where(where, args, order_by="n"))
        rows = list(self.db["turns"].rows_where(where, args, order_by="n desc", limit=limit))
        rows.reverse()
        return rows

    def turns_after(self, n: int) -> list[dict[str, Any]]:
        """The turns numbered above `n`, in order (what another process has written since)."""
        return list(self.db["turns"].rows_where("n > ?", [n], order_by="n"))

    def turn_count(self, before: int | None = None) -> int:
        if not self.db["turns"].exists():
            return 0
        if before is None:
            return self.db.execute("select count(*) from turns").fetchone()[0]
        return self.db.execute("select count(*) from turns where n < ?", [before]).fetchone()[0]

    def user_texts(self, limit: int) -> list[str]:
        """The newest `limit` texts the person typed, oldest first."""
        rows = self.db["turns"].rows_where(
            "role = 'user'", select="text", order_by="n desc", limit=limit
        )
        return [row["text"] or "" for row in rows][::-1]

    # -- planner state and plans
    def save_state(self, state: dict[str, Any], summary: dict[str, str]) -> None:
        with self._writing(), self.db.atomic():
            self.db["meta"].upsert(
                {"id": self.id, "updated": time.time(), "state": json.dumps(state), **summary},
                pk="id",
            )

    def load_state(self) -> dict[str, Any] | None:
        row = self.meta()
        return json.loads(row["state"]) if row.get("state") else None

    def meta(self) -> dict[str, Any]:
        return _meta_of(self.db.conn, self.id)

    def set_title(self, title: str) -> str:
        """Give the session a title (see `clean_title`); the title as stored."""
        text = clean_title(title)
        with self._writing(), self.db.atomic():
            self.db["meta"].upsert({"id": self.id, "title": text}, pk="id")
        return text

    def save_plan(self, plan: dict, reasons: dict, source: str) -> int:
        with self._writing(), self.db.atomic():
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
        with self._writing(), self.db.atomic():
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
        with self._writing(), self.db.atomic():
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
        with self._writing(), self.db.atomic():
            self.db["runs"].upsert(record, pk="id")

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db["runs"].rows_where(order_by="started"))

    def last_run(self) -> dict[str, Any] | None:
        """The newest run with its live status read from its folder ("missing", with a
        message, when the folder has gone)."""
        return _last_run_of(self.db.conn)

    def summary(self) -> dict[str, Any]:
        return _summary_of(self.db.conn, self.id)

    def close(self) -> None:
        """Close the database and give the lock back."""
        if self.db is not None:
            with self._write_lock:
                self.db.close()
        if self._lock is not None:
            if _HELD.get(_key(self.dir)) is self:
                del _HELD[_key(self.dir)]
            self._lock.release()


class SessionStore:
    """All sessions under one home folder."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home else default_home()

    def create(self) -> Session:
        """A new session. It is made whole in a hidden folder (schema and first row written)
        and renamed into place, so a process killed while creating it leaves no half-made
        session in the list (at most a hidden `.ID.new` folder, skipped and cleared later)."""
        make_private_dir(self.home)
        self._clear_stale_staging()
        for _ in range(20):
            session_id = new_session_id()
            directory = self.home / session_id
            staging = self.home / f".{session_id}.new"
            if directory.exists():
                time.sleep(0.01)  # two sessions in one second drew the same suffix
                continue
            try:
                staging.mkdir(mode=DIR_MODE)
                break
            except FileExistsError:
                time.sleep(0.01)
        else:
            raise SessionError(f"Could not make a new session folder in {self.home}")
        os.chmod(staging, DIR_MODE)
        fd = os.open(staging / DB_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # os.open's mode is cut by the umask
        os.close(fd)
        draft = Session(staging, verify=False, fresh=True)
        try:
            now = time.time()
            with draft._writing():
                draft.db["meta"].insert(
                    {"id": session_id, "created": now, "updated": now, "stage": "task"}
                )
            draft.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            draft.close()
        os.replace(staging, directory)
        return Session(directory)

    def _clear_stale_staging(self) -> None:
        """Remove hidden folders of sessions whose creation was cut short an hour ago or more."""
        try:
            stale = [p for p in self.home.glob(".*.new") if p.is_dir()]
        except OSError:
            return
        for path in stale:
            try:
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass

    def path(self, session_id: str) -> Path:
        return self.home / session_id

    def open(self, session_id: str, read_only: bool = False) -> Session:
        """The session, for writing (SessionLocked when another process has it open for
        writing) or `read_only`; SessionError, naming it, when it cannot be opened."""
        return Session(self._existing(session_id), read_only=read_only)

    def _existing(self, session_id: str) -> Path:
        """The folder of session `session_id`; SessionError when there is no such session."""
        directory = self.home / session_id
        plain = session_id not in ("", ".", "..") and Path(session_id).name == session_id
        if not plain or not (directory / DB_NAME).exists():
            known = [s.name for s in self._dirs()]
            hint = f"; known sessions: {', '.join(known[-5:])}" if known else ""
            raise SessionError(f"No session {session_id!r} in {self.home}{hint}")
        return directory

    def holder(self, session_id: str) -> dict[str, Any] | None:
        """Who has session `session_id` open for writing (pid, command), or None."""
        return lock_holder(self._existing(session_id))

    def rename(self, session_id: str, title: str) -> str:
        """Give session `session_id` a title (stripped, 1-60 characters, else ValueError);
        the title as stored. SessionError when there is no such session, SessionLocked when
        another process has it open (this process's own open session is renamed in place)."""
        text = clean_title(title)
        directory = self._existing(session_id)
        held = _HELD.get(_key(directory))
        if held is not None:
            return held.set_title(text)
        session = Session(directory)
        try:
            return session.set_title(text)
        finally:
            session.close()

    def delete(self, session_id: str) -> None:
        """Remove session `session_id`'s folder: its conversation, plans, data versions and
        runs. SessionError when there is no such session or it is open, here or in another
        process (the lock is held while the folder goes, so nobody opens it meanwhile). It
        does not look at the session's runs: a caller that may hold a running one checks
        `run_is_active` first."""
        directory = self._existing(session_id)
        if _key(directory) in _HELD:
            raise SessionError(
                f"Session {session_id} is open: switch to another one before deleting it"
            )
        lock = SessionLock(directory)
        lock.acquire(session_id)
        try:
            shutil.rmtree(directory)
        finally:
            lock.release()

    def _dirs(self) -> list[Path]:
        if not self.home.exists():
            return []
        return sorted(
            p
            for p in self.home.iterdir()
            if not p.name.startswith(".") and (p / DB_NAME).exists()  # .ID.new: being made
        )

    def summary(self, directory: Path) -> dict[str, Any]:
        """One session's summary for a listing, read without taking its lock or changing it
        (a read-only connection, three small queries, its last run's status.json);
        `{"id", "error"}` for one that cannot be read, and `open_by` (pid, command) when
        another tunesmith has it open for writing."""
        name = Path(directory).name
        path = os.path.join(directory, DB_NAME)
        problem = header_problem(path)
        if problem:
            return {"id": name, "error": f"Session {name} cannot be opened: {problem}"}
        try:
            conn = _read_only_connection(path)
            try:
                _check_schema(conn, name)
                summary = _summary_of(conn, name)
            finally:
                conn.close()
        except SessionError as exc:
            return {"id": name, "error": exc.message}
        except (sqlite3.DatabaseError, ValueError) as exc:
            return {"id": name, "error": _damaged(name, exc)}
        holder = lock_holder(directory)
        if holder is not None:
            summary["open_by"] = holder
        return summary

    def list(self) -> list[dict[str, Any]]:
        """Summaries of every session, oldest first; a damaged one is listed with its error."""
        return [self.summary(directory) for directory in self._dirs()]
