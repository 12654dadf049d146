"""Welcome: what the wizard does; the demo model or your own; resume a previous run."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from tui.screens.base import StepScreen
from tui.widgets.step_indicator import STEP_TITLES
from wizard_steps.state import STEPS, WizardState

INTRO = """\
[b]slmops[/b]: take a fine-tuned small language model to a model you can talk to, on this machine.

[b]prerequisites[/b] → [b]model[/b] → [b]precision[/b] → [b]prompt template[/b] → [b]convert[/b] \
(Olive, to ONNX) → [b]deploy[/b] (Foundry Local) → [b]benchmark[/b] (live) → [b]chat[/b]

Every step is real: Olive converts, onnxruntime-genai generates, Foundry Local serves.
No model at hand? The bundled demo, [i]SmolLM2-135M-Instruct[/i], works offline.
"""


class WelcomeScreen(StepScreen):
    STEP = "welcome"
    HELP = ("Start with the bundled demo model (works offline), or with your own Hugging Face "
            "model folder. A previous run can be resumed from the last step it completed.")

    def compose_body(self) -> ComposeResult:
        yield Static(INTRO, id="welcome-intro")
        with Horizontal(classes="row", id="welcome-choices"):
            yield Button("Use the demo model", id="start-demo", variant="success")
            yield Button("Use my own model", id="start-own")
            saved = WizardState.load()
            if saved is not None and saved.last_completed not in (None, "welcome"):
                resume_at = STEPS[min(STEPS.index(saved.last_completed) + 1, len(STEPS) - 1)]
                yield Button(f"Resume at {STEP_TITLES[resume_at]}", id="resume",
                             variant="warning")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#start-demo", Button).focus()

    @on(Button.Pressed, "#start-demo")
    def start_demo(self) -> None:
        self.state.use_demo = True
        self.state.model_dir = None
        self.action_next_step()

    @on(Button.Pressed, "#start-own")
    def start_own(self) -> None:
        self.state.use_demo = False
        self.action_next_step()

    @on(Button.Pressed, "#resume")
    def resume(self) -> None:
        saved = WizardState.load()
        if saved is None:
            self.notify("The saved run can no longer be read.", severity="error")
            return
        self.wizard.state = saved
        last = saved.last_completed or "welcome"
        self.wizard.go(STEPS[min(STEPS.index(last) + 1, len(STEPS) - 1)])
