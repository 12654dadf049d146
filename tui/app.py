"""The Textual wizard: one screen per step, the choices in one saved WizardState."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar, cast

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.screen import Screen
from textual.system_commands import SystemCommandsProvider

from tui.screens.base import StepScreen
from tui.steps import screen_class, step_title
from tui.widgets.help import ConfirmScreen
from wizard_steps.core.i18n import LANGUAGES, N_, _, current_language, fold, set_language, sort_key
from wizard_steps.road.state import STEPS, WizardState

# Textual's own palette texts, so that they are extracted and shown translated.
TEXTUAL_TEXTS = (
    N_("Theme"), N_("Change the current theme"), N_("Quit"), N_("Quit the application as soon as possible"),
    N_("Keys"), N_("Hide the keys and widget help panel"),
    N_("Show help for the focused widget and a summary of available keys"), N_("Minimize"),
    N_("Minimize the widget and restore to normal size"), N_("Maximize"), N_("Maximize the focused widget"),
    N_("Screenshot"), N_("Save an SVG 'screenshot' of the current screen"), N_("palette"),
    N_("Open the command palette"),
)

def folded_hit(provider: Provider, query: str, label: str) -> tuple[float, Content]:
    """Fuzzy match with the language's case folding (in Turkish "ı" finds "I", "i" finds "İ"),
    the label highlighted in its own case."""
    matcher = provider.matcher(fold(query))
    score = matcher.match(fold(label))
    return score, Content(label, list(matcher.highlight(fold(label)).spans)) if score > 0 else Content(label)


class SystemCommands(SystemCommandsProvider):
    """Textual's system commands (translated by the app), in the language's alphabetical order
    and found with its case folding."""

    async def discover(self) -> Hits:
        commands = sorted(self.app.get_system_commands(self.screen), key=lambda c: sort_key(c.title))
        for command in commands:
            if command.discover:
                yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        for command in self.app.get_system_commands(self.screen):
            score, shown = folded_hit(self, query, command.title)
            if score > 0:
                yield Hit(score, shown, command.callback, help=command.help)


class StepCommands(Provider):
    """Command palette entries: jump to any step."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, SlmopsApp)
        for index, step in enumerate(STEPS, 1):
            label = _("Go to step {number}: {title}").format(number=index, title=step_title(step))
            score, shown = folded_hit(self, query, label)
            if score > 0:
                yield Hit(score, shown, partial(app.go, step), help=_("Jump to this step of the wizard"))




class SlmopsApp(App[None]):
    """slmops: from a fine-tuned model folder to a local deployment you can talk to."""

    # One stylesheet per part, all loaded by the app (rules are scoped by screen and id).
    CSS_PATH = [Path(__file__).parent / "styles" / f"{name}.tcss"
                for name in ("app", "benchmark", "chat", "deploy")]
    TITLE = "slmops"
    COMMANDS: ClassVar = {SystemCommands, StepCommands}
    BINDINGS: ClassVar = [
        Binding("ctrl+q", "quit", N_("Quit"), priority=True),
        Binding("f2", "toggle_dark", N_("Theme")),
        Binding("f3", "switch_language", N_("Language"), show=False),  # the footer fits 80 columns
    ]

    def __init__(self, state: WizardState | None = None, start: str | None = None) -> None:
        super().__init__()
        self.state = state or WizardState()
        self.start_step = start or self.state.step

    def get_default_screen(self) -> Screen:
        """The first step's screen is the app's base screen (one screen fewer to build)."""
        self.state.step = self.start_step
        return screen_class(self.start_step)()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            yield command._replace(title=_(command.title), help=_(command.help))
        yield SystemCommand(_("Light / dark theme"), _("Switch between the light and dark theme"),
                            self.action_toggle_dark)
        other = "en" if current_language() == "tr" else "tr"
        yield SystemCommand(_("Language: English / Türkçe"),  # also on F3
                            _("Switch to {language}; you stay on this step").format(language=LANGUAGES[other]),
                            self.action_switch_language)

    def action_command_palette(self) -> None:
        """Textual's palette, with its placeholder in the current language."""
        # is_open takes App[object] and App is invariant in its result type: our App[None] is one
        if self.use_command_palette and not CommandPalette.is_open(cast("App[object]", self)):
            self.push_screen(CommandPalette(placeholder=_("Search for commands…"), id="--command-palette"))

    def action_switch_language(self, lang: str | None = None) -> None:
        """English <-> Türkçe (or ``lang``): the current step's screen is built again in the new
        language; the choices made so far (app.state) stay."""
        screen = self.screen
        if isinstance(screen, StepScreen) and screen.is_busy():
            self.notify(_("Finish or cancel the work on this step first, then switch the language."),
                        severity="warning")
            return
        set_language(lang or ("en" if current_language() == "tr" else "tr"))
        self.go(self.state.step)

    def go(self, step: str) -> None:
        """Show ``step``, replacing the current screen (whose work is cancelled)."""
        self.state.step = step
        self.state.save()
        if len(self.screen_stack) == 1:  # the first step's screen is the base: it stays, inert
            base = self.screen
            if isinstance(base, StepScreen):
                base.stop_work()
            self.push_screen(screen_class(step)())
        else:
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
                    screen.stop_work()
                    self.exit()

            self.push_screen(ConfirmScreen(_("Work is still running on this step (it will be "
                                             "cancelled and nothing half-done is kept). Quit?")),
                             answer)
            return
        self.state.save()
        self.exit()


def run(state: WizardState | None = None, start: str | None = None) -> None:
    SlmopsApp(state, start).run()
