"""What every step screen shares: the step indicator, a scrolling body, Back / Next with the reason
Next is blocked, help, and cancellation of the screen's long work when the user leaves it."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import ClassVar, Protocol, runtime_checkable

from textual import on
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Label

from tui.widgets.footer import KeyFooter
from tui.widgets.help import HelpScreen
from tui.widgets.run_panel import RunPanel
from tui.widgets.step_indicator import StepIndicator, step_title
from wizard_steps.core.i18n import N_, _
from wizard_steps.road.state import WizardState, save_answers


@runtime_checkable
class Wizard(Protocol):
    """What a step asks of the app that shows it (``tui.app.SlmopsApp``): the choices so far, and
    moving between steps. A protocol, so the screens need not import the app that imports them."""

    state: WizardState

    def go(self, step: str) -> None: ...

    def next_step(self) -> None: ...

    def previous_step(self) -> None: ...


class StepScreen(Screen[None]):
    """Base of the wizard's screens. Subclasses set STEP and HELP (English, marked with N_: it is
    translated when shown) and write ``compose_body``."""

    STEP: ClassVar[str] = "welcome"
    HELP: ClassVar[str] = ""
    BINDINGS: ClassVar = [
        Binding("ctrl+n", "next_step", N_("Next"), priority=True),
        Binding("ctrl+b", "back_step", N_("Back"), priority=True),
        Binding("f1", "help", N_("Help")),
    ]

    def __init__(self) -> None:
        super().__init__(name=self.STEP)
        self.cancel = threading.Event()  # set when the screen goes away: its workers stop

    @property
    def wizard(self) -> Wizard:
        app = self.app
        assert isinstance(app, Wizard), app
        return app

    @property
    def state(self) -> WizardState:
        return self.wizard.state

    def compose(self) -> ComposeResult:
        yield StepIndicator(self.STEP, self.state.completed, id="step-indicator")
        with VerticalScroll(id="step-body"):
            yield from self.compose_body()
        with Horizontal(id="nav-bar"):
            yield Button(_("‹ Back"), id="back", variant="default")
            yield Label("", id="nav-reason")
            yield Button(_("Next ›"), id="next", variant="primary")
        yield KeyFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = step_title(self.STEP)
        self.query_one("#back", Button).display = self.STEP != "welcome"
        self.refresh_nav()

    def on_unmount(self) -> None:
        self.cancel.set()

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The bindings with their descriptions in the current language (the footer shows these)."""
        return {key: active._replace(tooltip=_(active.tooltip), binding=replace(
                    active.binding, description=_(active.binding.description), tooltip=_(active.binding.tooltip)))
                for key, active in super().active_bindings.items()}

    # --- navigation -------------------------------------------------------------------------

    def blocked_reason(self) -> str | None:
        """Why Next is not allowed yet (one short sentence), or None when it is."""
        return None

    def refresh_nav(self) -> None:
        reason = self.blocked_reason()
        self.query_one("#next", Button).disabled = reason is not None
        self.query_one("#nav-reason", Label).update(reason or "")

    def before_next(self) -> bool:
        """Save the screen's choices into the state; return False to stay."""
        return True

    @on(Button.Pressed, "#next")
    def action_next_step(self) -> None:
        reason = self.blocked_reason()
        if reason is not None:
            self.notify(reason, severity="warning")
            return
        if self.before_next():
            self.state.complete(self.STEP)
            save_answers(self.state)  # every interactive run leaves its answers file (wizard.toml)
            self.wizard.next_step()

    @on(Button.Pressed, "#back")
    def action_back_step(self) -> None:
        self.wizard.previous_step()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(f"# {step_title(self.STEP)}\n\n{_(self.HELP)}\n\n"
                                        + _(KEYS_HELP)))

    # --- a long step's run (tui/widgets/run_panel.py) -------------------------------------------

    @property
    def panel(self) -> RunPanel:
        """The screen's run panel (screens with a long step have one)."""
        return self.query_one(RunPanel)

    @property
    def running(self) -> bool:
        return any(panel.running for panel in self.query(RunPanel))

    def show_controls(self) -> None:
        """Enable what can be used now; screens with more controls extend it."""
        self.refresh_bindings()
        self.refresh_nav()

    @on(RunPanel.RunningChanged)
    def running_changed(self) -> None:
        self.show_controls()

    def is_busy(self) -> bool:
        """True while long work started by this screen is running (quitting asks first); quick
        look-ups run in the worker group "quick" and do not count."""
        return (any(panel.running for panel in self.query(RunPanel))
                or any(worker.is_running and worker.group != "quick" for worker in self.workers))

    def stop_work(self) -> None:
        """The screen is left (or stays, inert, under the next one): its long work stops."""
        self.cancel.set()
        for panel in self.query(RunPanel):
            panel.cancel()
        for worker in self.workers:
            worker.cancel()


KEYS_HELP = N_("""## Keys

| key | does |
| --- | --- |
| ctrl+n / ctrl+b | next / back |
| tab, shift+tab | move between fields |
| ctrl+p | command palette: jump to a step, change theme |
| f1 | this help |
| f3 | language: English / Türkçe |
| ctrl+q | quit (asks first if work is running) |
""")
