"""The Textual wizard: one screen per step, the choices in one saved WizardState."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.screen import Screen

from tui.screens.base import StepScreen
from tui.widgets.help import ConfirmScreen
from tui.widgets.step_indicator import STEP_TITLES
from wizard_steps.state import STEPS, WizardState

SCREENS_BY_STEP = {
    "welcome": "tui.screens.welcome:WelcomeScreen",
    "prereqs": "tui.screens.prereqs:PrereqsScreen",
    "model": "tui.screens.model:ModelScreen",
    "precision": "tui.screens.precision:PrecisionScreen",
    "template": "tui.screens.template:TemplateScreen",
    "convert": "tui.screens.convert:ConvertScreen",
    "deploy": "tui.screens.deploy:DeployScreen",
    "benchmark": "tui.screens.benchmark:BenchmarkScreen",
    "chat": "tui.screens.chat:ChatScreen",
    "summary": "tui.screens.summary:SummaryScreen",
}


def screen_class(step: str) -> type[StepScreen]:
    module, _, name = SCREENS_BY_STEP[step].partition(":")
    return getattr(importlib.import_module(module), name)


class StepCommands(Provider):
    """Command palette entries: jump to any step."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.app
        assert isinstance(app, SlmopsApp)
        for index, step in enumerate(STEPS, 1):
            label = f"Go to step {index}: {STEP_TITLES[step]}"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(app.go, step),
                          help="Jump to this step of the wizard")


class SlmopsApp(App[None]):
    """slmops: from a fine-tuned model folder to a local deployment you can talk to."""

    CSS_PATH = Path(__file__).parent / "styles" / "app.tcss"
    TITLE = "slmops"
    COMMANDS: ClassVar = App.COMMANDS | {StepCommands}
    BINDINGS: ClassVar = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f2", "toggle_dark", "Theme"),
    ]

    def __init__(self, state: WizardState | None = None, start: str | None = None) -> None:
        super().__init__()
        self.state = state or WizardState()
        self.start_step = start or self.state.step

    def on_mount(self) -> None:
        self.state.step = self.start_step
        self.push_screen(screen_class(self.start_step)())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Light / dark theme", "Switch between the light and dark theme",
                            self.action_toggle_dark)

    def go(self, step: str) -> None:
        """Show ``step``, replacing the current screen (whose work is cancelled)."""
        self.state.step = step
        self.state.save()
        self.switch_screen(screen_class(step)())

    def next_step(self) -> None:
        index = STEPS.index(self.state.step)
        if index + 1 < len(STEPS):
            self.go(STEPS[index + 1])

    def previous_step(self) -> None:
        index = STEPS.index(self.state.step)
        if index > 0:
            self.go(STEPS[index - 1])

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        screen = self.screen
        if isinstance(screen, StepScreen) and screen.is_busy():
            def answer(yes: bool | None) -> None:
                if yes:
                    screen.cancel.set()
                    self.exit()

            self.push_screen(ConfirmScreen("Work is still running on this step (it will be "
                                           "cancelled and nothing half-done is kept). Quit?"),
                             answer)
            return
        self.state.save()
        self.exit()


def run(state: WizardState | None = None, start: str | None = None) -> None:
    SlmopsApp(state, start).run()
