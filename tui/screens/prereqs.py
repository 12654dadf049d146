"""Prerequisites: each check with its status, detail and fix; failures block Next."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Label

from tui.screens.base import StepScreen
from wizard_steps.core.i18n import N_, _
from wizard_steps.road import prereqs

MARKS = {"ok": (N_("ok"), "green"), "warn": (N_("warn"), "yellow"), "fail": (N_("FAIL"), "bold red")}


def mark(status: str) -> Text:
    text, style = MARKS[status]
    return Text(_(text), style=style)


class PrereqsScreen(StepScreen):
    STEP = "prereqs"
    HELP = N_("Checks Python, free memory and disk, CMake, Foundry Local (CLI or SDK) and the "
              "installed Olive / onnxruntime-genai / onnx versions, including pairings known to "
              "break. Warnings let you go on; failures must be fixed first (each says how).")

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[prereqs.Check] | None = None

    def compose_body(self) -> ComposeResult:
        yield Label(_("Prerequisites"), classes="step-title")
        yield DataTable(id="checks-table", cursor_type="row", zebra_stripes=True)
        yield Label("", id="check-fix", classes="hint")
        with Horizontal(classes="row"):
            yield Button(_("Re-run checks"), id="rerun")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#checks-table", DataTable)
        table.add_columns("", _("check"), _("detail"))
        self.run_checks()

    def blocked_reason(self) -> str | None:
        if self.checks is None:
            return _("Checking…")
        failed = [_(c.name) for c in self.checks if c.status is prereqs.Status.FAIL]
        return _("Fix first: {checks}").format(checks=", ".join(failed)) if failed else None

    @on(Button.Pressed, "#rerun")
    def rerun(self) -> None:
        self.run_checks()

    @work(thread=True, exclusive=True, group="quick")
    def run_checks(self) -> None:
        checks = prereqs.run_all()
        self.app.call_from_thread(self.show_checks, checks)

    def show_checks(self, checks: list[prereqs.Check]) -> None:
        self.checks = checks
        table = self.query_one("#checks-table", DataTable)
        table.clear()
        for check in checks:
            table.add_row(mark(check.status.value), _(check.name), check.detail, key=check.name)
        self.refresh_nav()
        self.show_fix(0)

    @on(DataTable.RowHighlighted, "#checks-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_fix(event.cursor_row)

    def show_fix(self, row: int) -> None:
        if not self.checks or row >= len(self.checks):
            return
        check = self.checks[row]
        label = self.query_one("#check-fix", Label)
        fix = "\n" + _("Fix: {fix}").format(fix=check.fix) if check.fix and check.status.value != "ok" else ""
        label.update(f"{_(check.name)}: {check.detail}{fix}")
