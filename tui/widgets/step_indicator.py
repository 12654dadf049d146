"""Where the user is in the wizard: one mark per step and the current step's name."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from wizard_steps.state import STEPS

STEP_TITLES = {
    "welcome": "Welcome", "prereqs": "Prerequisites", "model": "Model", "precision": "Precision",
    "template": "Prompt template", "convert": "Convert", "deploy": "Deploy",
    "benchmark": "Benchmark", "chat": "Chat", "summary": "Summary",
}


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
        text.append(f" step {index}/{len(STEPS)} · ", style="dim")
        text.append(STEP_TITLES[self.current], style="bold")
        return text
