"""The wizard's steps in one table: key, title and screen, in order. The keys are the state's
(``wizard_steps.road.state.STEPS``, which knows no screens); a test keeps the two in step."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from textual.screen import Screen

from wizard_steps.core.i18n import NP_, pgettext


@dataclass(frozen=True)
class Step:
    key: str
    title: str  # English, marked for translation; shown with step_title()
    screen: str  # "module:Class", imported when the step is first shown (keeps startup light)

    def screen_class(self) -> type[Screen[None]]:
        module, _colon, name = self.screen.partition(":")
        return getattr(importlib.import_module(module), name)


STEP_TABLE = (
    Step("welcome", NP_("step", "Welcome"), "tui.screens.welcome:WelcomeScreen"),
    Step("prereqs", NP_("step", "Prerequisites"), "tui.screens.prereqs:PrereqsScreen"),
    Step("model", NP_("step", "Model"), "tui.screens.model:ModelScreen"),
    Step("precision", NP_("step", "Precision"), "tui.screens.precision:PrecisionScreen"),
    Step("template", NP_("step", "Prompt template"), "tui.screens.template:TemplateScreen"),
    Step("convert", NP_("step", "Convert"), "tui.screens.convert:ConvertScreen"),
    Step("deploy", NP_("step", "Deploy"), "tui.screens.deploy:DeployScreen"),
    Step("benchmark", NP_("step", "Benchmark"), "tui.screens.benchmark:BenchmarkScreen"),
    Step("chat", NP_("step", "Chat"), "tui.screens.chat:ChatScreen"),
    Step("summary", NP_("step", "Summary"), "tui.screens.summary:SummaryScreen"),
)
STEPS_BY_KEY = {step.key: step for step in STEP_TABLE}


def step_title(key: str) -> str:
    """The step's name in the current language."""
    return pgettext("step", STEPS_BY_KEY[key].title)


def screen_class(key: str) -> type[Screen[None]]:
    return STEPS_BY_KEY[key].screen_class()
