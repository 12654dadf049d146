"""Where the user is in the wizard: one mark per step and the current step's name."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.steps import step_title
from wizard_steps.core.i18n import _
from wizard_steps.road.state import STEPS


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
