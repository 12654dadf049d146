"""Typed events that every long step yields, so the TUI, the plain mode and the CLI drive the same
iterators (``for event in convert(plan, cancel=stop): ...``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LogLine:
    """One line of a subprocess's or a step's log. ``live``: a progress line drawn over the one
    before it (a carriage-return progress bar), not added to the log."""

    text: str
    live: bool = False


@dataclass(frozen=True)
class Progress:
    """How far a step has come: ``fraction`` in 0..1 (None when unknown) and the stage's name."""

    stage: str
    fraction: float | None = None


@dataclass(frozen=True)
class Finished:
    """The step succeeded; ``path`` is its product, ``details`` its figures."""

    path: Path
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The step failed: one sentence for the user and, when there is one, the full log's path."""

    reason: str
    log_path: Path | None = None
    cancelled: bool = False


Event = LogLine | Progress | Finished | Failed
