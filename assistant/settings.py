"""The app's own preferences (the theme), in `settings.json` beside the sessions.

A missing or unreadable file gives the defaults; a write goes to a temporary name first and is
renamed over the old file, so a crash leaves the previous settings whole. The file is private
to the user (0600) whatever the umask, and a sessions home made here is 0700.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from assistant.store import make_private_dir

DEFAULT_THEME = "textual-dark"
LIGHT_THEME = "textual-light"


class Settings:
    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "settings.json"

    def _read(self) -> dict[str, Any]:
        try:
            values = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def get(self, name: str, default: Any = None) -> Any:
        return self._read().get(name, default)

    def set(self, name: str, value: Any) -> None:
        values = self._read()
        if values.get(name) == value:
            return
        values[name] = value
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            make_private_dir(self.path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)  # os.open's mode is cut by the umask
                fh.write(json.dumps(values, indent=1, sort_keys=True))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            # a preference that cannot be saved is not worth interrupting anyone for
