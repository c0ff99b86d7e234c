"""The app's own preferences (the theme), in `settings.json` beside the sessions.

A missing or unreadable file gives the defaults; a write goes to a temporary name first and is
renamed over the old file, so a crash leaves the previous settings whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(values, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a preference that cannot be saved is not worth interrupting anyone for
