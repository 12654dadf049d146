"""``slmops demo`` and ``slmops run``: the unattended road (``wizard_steps.road.unattended``)
shown on a terminal, progress and one line per step, then the report (JSON with ``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

from tui import exit_codes
from tui.progress import ProgressPrinter, drive
from wizard_steps.core.events import Event, Failed, Finished, R
from wizard_steps.core.i18n import _
from wizard_steps.road.answers import Answers
from wizard_steps.road.unattended import RunReport, StepFailed, apply_language, execute


def run_on_terminal(answers: Answers, json_output: bool = False) -> RunReport:
    """The road with its progress drawn here; lines go to stderr when stdout carries JSON."""
    printer = ProgressPrinter()

    def say(text: str) -> None:
        print(text, file=sys.stderr if json_output else sys.stdout, flush=True)

    def follow(events: Iterator[Event[R]]) -> Finished[R] | Failed:
        return drive(events, printer)

    return execute(answers, say, follow)


def run_pipeline(answers: Answers, json_output: bool = False) -> int:
    """Run everything and print the report; the exit code says how it went."""
    apply_language(answers)
    try:
        report = run_on_terminal(answers, json_output)
    except StepFailed as exc:
        print(f"slmops: {exc}", file=sys.stderr if json_output else sys.stdout, flush=True)
        return exit_codes.STEP_FAILED
    if json_output:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(_("Done. Replay this run anywhere with: slmops run --answers {file}").format(
            file=report.answers_file))
    return exit_codes.OK
