"""Completion for folder paths as the user types (→ accepts it)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester


class FolderSuggester(Suggester):
    """Suggests the first sub-folder whose name starts with what follows the last separator."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        typed = Path(value).expanduser()
        parent, stem = (typed, "") if value.endswith(("/", os.sep)) else (typed.parent, typed.name)
        try:
            names = sorted(entry.name for entry in os.scandir(parent)
                           if entry.is_dir() and not entry.name.startswith("."))
        except OSError:
            return None
        match = next((name for name in names if name.startswith(stem) and name != stem), None)
        return value + match[len(stem):] if match else None
