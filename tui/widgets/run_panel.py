"""One run of a long step (convert, deploy, benchmark, tune, compare): Start / Cancel, a progress
bar with the stage and the elapsed time, the result, and optionally the step's log.

The panel drives a ``wizard_steps`` event iterator in a thread worker. Progress and log lines it
shows itself; every other event reaches the screen as ``RunPanel.Event``, and the end of the run
as ``RunPanel.Ended``. ``running`` is a reactive: the buttons, the screen's bindings and its Next
button follow it through ``RunPanel.RunningChanged``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Label, Log, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Failed, Finished, LogLine, Progress
from wizard_steps.core.i18n import _

RunFactory = Callable[[threading.Event], Iterable[object]]
"""Starts the step: given the run's stop event, returns its event iterator."""

MAX_LOG_LINES = 3000


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class RunPanel(Vertical):
    """Start / Cancel, progress, stage, elapsed time, result and log of one long step."""

    running: reactive[bool] = reactive(False, init=False)

    @dataclass
    class Event(Message):
        """Something the run yielded other than progress, log lines and its final result."""

        panel: RunPanel
        event: object

        @property
        def control(self) -> RunPanel:
            return self.panel

    @dataclass
    class Ended(Message):
        """The run is over: ``outcome`` is its Finished or Failed event (None when the iterator
        simply ran out, as a benchmark does)."""

        panel: RunPanel
        outcome: Finished | Failed | None

        @property
        def control(self) -> RunPanel:
            return self.panel

        @property
        def cancelled(self) -> bool:
            return isinstance(self.outcome, Failed) and self.outcome.cancelled

    @dataclass
    class RunningChanged(Message):
        panel: RunPanel
        running: bool

        @property
        def control(self) -> RunPanel:
            return self.panel

    def __init__(self, prefix: str, *, prepare: Callable[[], RunFactory | None],
                 start_label: str, cancel_label: str, cancelling_label: str | None = None,
                 log_title: str | None = None, extra_buttons: Sequence[Widget] = (),
                 start_tooltip: str | None = None, cancel_id: str | None = None) -> None:
        super().__init__(id=f"{prefix}-run", classes="run-panel")
        self.prefix = prefix
        self.prepare = prepare
        self.start_label, self.cancel_label = start_label, cancel_label
        self.cancelling_label = cancelling_label or _("Cancelling…")
        self.start_tooltip = start_tooltip
        self.cancel_id = cancel_id or f"{prefix}-cancel"
        self.log_title = log_title
        self.extra_buttons = list(extra_buttons)
        self.ready = True  # the screen says whether Start can run now
        self.stop = threading.Event()
        self.finished = threading.Event()  # set by the run's thread once the step has returned
        self.finished.set()
        self.started = 0.0
        self.timer: Timer | None = None
        self.outcome: Finished | Failed | None = None

    def compose(self) -> ComposeResult:
        p = self.prefix
        with Horizontal(id=f"{p}-controls", classes="run-controls"):
            yield Button(self.start_label, id=f"{p}-start", variant="success", classes="run-start",
                         tooltip=self.start_tooltip)
            yield Button(self.cancel_label, id=self.cancel_id, variant="error", classes="run-cancel")
            yield from self.extra_buttons
            with Vertical(id=f"{p}-progress-box", classes="run-progress-box"):
                yield ProgressBar(total=1.0, show_eta=False, id=f"{p}-progress", classes="run-progress")
                yield Label("", id=f"{p}-stage", classes="hint run-stage")
        yield Static("", id=f"{p}-result", classes="run-result")
        if self.log_title is not None:
            yield Log(max_lines=MAX_LOG_LINES, id=f"{p}-log", classes="run-log")

    def on_mount(self) -> None:
        self.query_one(f"#{self.prefix}-result").display = False
        if self.log_title is not None:
            self.query_one(f"#{self.prefix}-log", Log).border_title = self.log_title
        self.show_controls()

    def on_unmount(self) -> None:
        self.stop.set()  # the screen is going: the step stops and cleans up

    # --- what the screen calls --------------------------------------------------------------

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.show_controls()

    def set_stage(self, text: str | Text) -> None:
        self.query_one(f"#{self.prefix}-stage", Label).update(text)

    def set_progress(self, fraction: float) -> None:
        self.query_one(f"#{self.prefix}-progress", ProgressBar).update(progress=fraction)

    def show_result(self, content: RenderableType | None) -> None:
        result = self.query_one(f"#{self.prefix}-result", Static)
        result.update(content or "")
        result.display = content is not None
        if content is not None:
            result.scroll_visible()

    @property
    def log_view(self) -> Log:
        """The run's log widget (not ``log``: that is Textual's logger, which Textual itself calls)."""
        return self.query_one(f"#{self.prefix}-log", Log)

    @on(Button.Pressed, ".run-start")
    def start(self) -> None:
        """Start pressed (or its key): the screen prepares the run; None means it cannot run."""
        if self.running:
            return
        factory = self.prepare()
        if factory is not None:
            self.run(factory)

    @on(Button.Pressed, ".run-cancel")
    def cancel(self) -> None:
        if self.running and not self.stop.is_set():
            self.stop.set()
            self.set_stage(self.cancelling_label)

    def run(self, factory: RunFactory) -> bool:
        """Start ``factory``'s events in a worker; False when a run is already going."""
        if self.running:
            return False
        self.stop, self.outcome = threading.Event(), None
        self.finished = threading.Event()
        self.started = time.monotonic()
        self.set_progress(0.0)
        self.set_stage(_("Starting…"))
        self.show_result(None)
        if self.log_title is not None:
            self.log_view.clear()
            self.show_live("")
        self.timer = self.set_interval(1.0, self.tick)
        self.tick()
        self.running = True
        self.query_one(f"#{self.prefix}-controls").scroll_visible(top=True)
        self.drive(factory, self.stop)
        return True

    # --- the run ------------------------------------------------------------------------------

    def watch_running(self, running: bool) -> None:
        self.show_controls()
        self.screen.refresh_bindings()
        self.post_message(self.RunningChanged(self, running))

    def show_controls(self) -> None:
        start = self.query_one(f"#{self.prefix}-start", Button)
        start.disabled = self.running or not self.ready
        cancel = self.query_one(f"#{self.cancel_id}", Button)
        cancel.disabled = not self.running
        if not self.running and cancel.has_focus and not start.disabled:
            start.focus(scroll_visible=False)  # focus does not vanish with the disabled button

    def tick(self) -> None:
        self.query_one(f"#{self.prefix}-progress-box").border_subtitle = (
            _("elapsed {time}").format(time=elapsed(time.monotonic() - self.started)))

    def show_live(self, text: str) -> None:
        """A carriage-return progress line, drawn over the one before it on the log's lower border."""
        self.log_view.border_subtitle = Text(text.strip())

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def drive(self, factory: RunFactory, stop: threading.Event) -> None:
        worker = get_current_worker()
        finished = self.finished
        outcome: Finished | Failed | None = None
        try:
            events = factory(stop)
            try:
                for event in events:
                    if worker.is_cancelled:  # the panel is going: stop the step, let it clean up
                        stop.set()
                        continue
                    if isinstance(event, (Finished, Failed)):
                        outcome = event
                        continue
                    try:
                        self.app.call_from_thread(self.deliver, event)
                    except RuntimeError:  # the app has gone
                        stop.set()
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        except WizardError as exc:
            outcome = Failed(str(exc))
        finally:
            finished.set()
        if outcome is None and stop.is_set():
            outcome = Failed(_("Stopped."), cancelled=True)
        with suppress(RuntimeError):  # the app has gone
            self.app.call_from_thread(self.end, outcome)

    def deliver(self, event: object) -> None:
        if isinstance(event, Progress):
            if event.fraction is not None:
                self.set_progress(event.fraction)
            if not self.stop.is_set():
                self.set_stage(event.stage)
        elif isinstance(event, LogLine) and self.log_title is not None:
            if event.live:
                self.show_live(event.text)
            else:
                self.show_live("")
                log = self.log_view
                log.write_line(event.text, scroll_end=log.is_vertical_scroll_end)
        else:
            self.post_message(self.Event(self, event))

    def end(self, outcome: Finished | Failed | None) -> None:
        if not self.running:
            return
        self.outcome = outcome
        if not self.is_attached:  # the screen closed mid-run: nothing left to draw
            if self.timer is not None:
                self.timer.stop()
            self.set_reactive(RunPanel.running, False)
            return
        if self.timer is not None:
            self.timer.stop()
            self.tick()
        if isinstance(outcome, Finished):
            self.set_progress(1.0)
            self.set_stage(_("Done"))
        elif isinstance(outcome, Failed):
            self.set_stage(_("Cancelled") if outcome.cancelled else _("Failed"))
            if not outcome.cancelled or outcome.reason != _("Stopped."):
                text = Text(outcome.reason, style="bold red")
                if outcome.log_path:
                    text.append("\n" + _("Full log: {path}").format(path=outcome.log_path), style="dim")
                self.show_result(text)
        else:
            self.set_stage(_("Done"))
        if self.log_title is not None:
            self.show_live("")
            self.call_after_refresh(self.log_view.scroll_end, animate=False)
        self.running = False
        self.post_message(self.Ended(self, outcome))

    @on(Worker.StateChanged)
    def worker_ended(self, event: Worker.StateChanged) -> None:
        event.stop()
        if event.worker.group == "run" and event.state is WorkerState.ERROR and self.running:
            self.end(Failed(_("The run stopped on an unexpected error: {error}").format(
                error=event.worker.error)))
