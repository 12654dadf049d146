"""Progress for headless commands: a line that rewrites itself on a terminal, plain lines in logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress, R
from wizard_steps.core.i18n import _


class ProgressPrinter:
    """Shows Progress events; LogLines only when verbose."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.verbose = verbose
        self._last_stage = ""

    def show(self, event: Event) -> None:
        if isinstance(event, LogLine):
            if self.verbose:
                self.line(event.text)
        elif isinstance(event, Progress):
            pct = f"{event.fraction * 100:3.0f}%" if event.fraction is not None else "    "
            if self.tty:
                self.stream.write(f"\r\033[K{pct} {event.stage}"[:200])
                self.stream.flush()
            elif event.stage != self._last_stage:
                self.line(f"{pct} {event.stage}")
            self._last_stage = event.stage

    def line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def drive(events: Iterable[Event[R]], printer: ProgressPrinter) -> Finished[R] | Failed:
    """Consume a step's events, showing progress; return its final event."""
    final: Finished[R] | Failed | None = None
    for event in events:
        if isinstance(event, (Finished, Failed)):
            final = event
        else:
            printer.show(event)
    printer.done()
    return final or Failed(_("The step ended without a result."))
