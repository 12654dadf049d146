"""The one protocol between slmops and the child processes it starts (Olive's worker, the source
model's torch run): the child prints its result as one ``@result {json}`` line at the end; the
parent streams every other line as log and takes the last result line as the answer.

A child reports a failure as data (``{"error": "..."}``), never as a traceback to parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

PREFIX = "@result "


def emit(result: dict[str, object]) -> None:
    """In the child: print the result line (flushed: the parent may be waiting on it)."""
    print(PREFIX + json.dumps(result), flush=True)


def is_result(line: str) -> bool:
    return line.startswith(PREFIX)


def find(lines: Iterable[str]) -> dict[str, object] | None:
    """In the parent: the last result line's object, or None when the child printed none."""
    found = None
    for line in lines:
        if is_result(line):
            found = line
    if found is None:
        return None
    value = json.loads(found[len(PREFIX):])
    return value if isinstance(value, dict) else {"error": f"unexpected result {value!r}"}


def error_of(result: dict[str, object] | None, lines: list[str], default: str) -> str | None:
    """Why the child failed (its reported error, else its last non-empty line), or None if it did not."""
    if result and "error" not in result:
        return None
    reason = (result or {}).get("error") or next((ln for ln in reversed(lines) if ln.strip()
                                                  and not is_result(ln)), default)
    return str(reason)
