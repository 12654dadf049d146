"""Tune for this machine: measure onnxruntime's thread settings on the model the benchmark uses and
keep the fastest, with live progress and the before/after figures side by side."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, Static

from tui.widgets.run_panel import RunFactory, RunPanel
from wizard_steps.core.i18n import _, number
from wizard_steps.measurement import tune
from wizard_steps.prompt.templates import PromptTemplate

BAR_WIDTH = 30


def bars(result: tune.TuneResult) -> Text:
    """Before and after at the focus length, as two bars on one scale."""
    before = result.speeds[result.current.label][result.focus_length]
    after = result.speeds[result.best.label][result.focus_length]
    top = max(before, after) or 1.0
    text = Text()
    for label, value, style in ((_("before"), before, "yellow"), (_("after"), after, "green")):
        width = max(1, round(BAR_WIDTH * value / top))
        text.append(f"{label:>7} ", style="bold")
        text.append("█" * width, style=style)
        text.append(f" {number(value, 1)} tok/s\n")
    return text


class TuneScreen(ModalScreen[bool]):
    """Dismisses with True when the model's genai_config.json was changed."""

    BINDINGS = [Binding("escape", "close", _("Close"))]

    def __init__(self, folder: Path, template: PromptTemplate, deployed: bool) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.template = template
        self.deployed = deployed
        self.changed = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="tune-dialog"):
            yield Label(_("Tune for this machine"), classes="step-title")
            yield Static(_("Tries onnxruntime's own thread choice and 1 to {cpus} threads on "
                           "{folder}, then keeps the fastest.").format(
                               cpus=tune.usable_cpus(), folder=self.folder), classes="hint")
            yield RunPanel("tune", prepare=self.prepare_run, start_label=_("Measure again"),
                           cancel_label=_("Stop"), cancelling_label=_("Stopping…"))
            yield DataTable(id="tune-table", cursor_type="none")
            yield Static("", id="tune-bars")
            yield Label("", id="tune-result")
            with Horizontal(classes="row"):
                yield Button(_("Undo tuning"), id="tune-undo")
                yield Button(_("Close"), id="tune-close", variant="primary")

    def on_mount(self) -> None:
        table = self.query_one("#tune-table", DataTable)
        table.add_columns(_("setting"), _("128 tokens"), _("512 tokens"))
        self.show_undo()
        self.query_one(RunPanel).start()

    def show_undo(self) -> None:
        running = self.query_one(RunPanel).running
        self.query_one("#tune-undo", Button).disabled = running or not (self.folder / tune.BACKUP_NAME).exists()

    def prepare_run(self) -> RunFactory:
        self.query_one("#tune-table", DataTable).clear()
        self.query_one("#tune-bars", Static).update("")
        self.query_one("#tune-result", Label).update("")
        return lambda stop: tune.measure(self.folder, self.template, cancel=stop)

    @on(RunPanel.RunningChanged)
    def running_changed(self) -> None:
        self.show_undo()

    @on(RunPanel.Event)
    def show(self, message: RunPanel.Event) -> None:
        event = message.event
        if isinstance(event, tune.TuneSample):
            self.query_one(RunPanel).set_stage(
                f"{event.candidate.label}: {event.length} tokens, run {event.run}: "
                f"{number(event.tokens_per_s, 1)} tok/s")
        elif isinstance(event, tune.TuneResult):
            self.changed = event.changed
            table = self.query_one("#tune-table", DataTable)
            for label, speeds in event.speeds.items():
                mark = " ★" if label == event.best.label else ""
                table.add_row(label + mark, *(number(speeds.get(n, 0.0), 1) for n in (128, 512)))
            self.query_one("#tune-bars", Static).update(bars(event))
            note = event.reason
            if event.changed and self.deployed:
                note += " " + _("Foundry Local reads the tuned file the next time it loads the model.")
            self.query_one("#tune-result", Label).update(note)

    @on(RunPanel.Ended)
    def ended(self) -> None:
        self.show_undo()

    @on(Button.Pressed, "#tune-undo")
    def undo(self) -> None:
        if tune.undo(self.folder):
            self.changed = True
            self.notify(_("The original genai_config.json is back."))
        self.show_undo()

    @on(Button.Pressed, "#tune-close")
    def action_close(self) -> None:
        self.query_one(RunPanel).cancel()
        self.dismiss(self.changed)
