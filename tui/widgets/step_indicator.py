"""Where the user is in the wizard: one mark per step and the current step's name."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from wizard_steps.i18n import NP_, _, pgettext
from wizard_steps.state import STEPS

STEP_TITLES = {  # English; shown with step_title() so that a language switch redraws them
    "welcome": NP_("step", "Welcome"), "prereqs": NP_("step", "Prerequisites"),
    "model": NP_("step", "Model"), "precision": NP_("step", "Precision"),
    "template": NP_("step", "Prompt template"), "convert": NP_("step", "Convert"),
    "deploy": NP_("step", "Deploy"), "benchmark": NP_("step", "Benchmark"), "chat": NP_("step", "Chat"),
    "summary": NP_("step", "Summary"),
}


def step_title(step: str) -> str:
    """The step's name in the current language."""
    return pgettext("step", STEP_TITLES[step])


class StepIndicator(Static):
    """● done, ◉ here, ○ ahead; then "step 3/10 · Model"."""

    def __init__(self, current: str, completed: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = current
        self.completed = completed

    def render(self) -> Text:
        text = Text()
        for step in STEPS:
            if step == self.current:
                text.append("◉ ", style="bold reverse")
            elif step in self.completed:
                text.append("● ", style="green")
            else:
                text.append("○ ", style="dim")
        index = STEPS.index(self.current) + 1
        text.append(" " + _("step {index}/{total}").format(index=index, total=len(STEPS)) + " · ", style="dim")
        text.append(step_title(self.current), style="bold")
        return text
