"""Typed events that every long step yields, so the TUI, the plain mode and the CLI drive the same
iterators (``for event in convert(plan, cancel=stop): ...``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, Union

R = TypeVar("R")


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
class Finished(Generic[R]):
    """The step succeeded; ``path`` is its product, ``result`` what the step reports of it (a
    typed result of the step's own: ``ConvertResult``, ``DeployResult``, ``PreparedModel``...)."""

    path: Path
    result: R


@dataclass(frozen=True)
class Failed:
    """The step failed: one sentence for the user and, when there is one, the full log's path."""

    reason: str
    log_path: Path | None = None
    cancelled: bool = False


# ``Event[ConvertResult]``: what ``convert`` yields; a bare ``Event`` finishes with any result.
Event = Union[LogLine, Progress, Finished[R], Failed]  # noqa: UP007  (a generic alias needs Union)
