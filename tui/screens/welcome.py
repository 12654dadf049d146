"""Welcome: what the wizard does; the demo model or your own; resume a previous run."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from tui.screens.base import StepScreen
from tui.widgets.step_indicator import step_title
from wizard_steps.core.i18n import N_, _
from wizard_steps.road.state import STEPS, WizardState

INTRO = N_("""\
[b]slmops[/b]: take a fine-tuned small language model to a model you can talk to, on this machine.

[b]prerequisites[/b] → [b]model[/b] → [b]precision[/b] → [b]prompt template[/b] → [b]convert[/b] \
(Olive, to ONNX) → [b]deploy[/b] (Foundry Local) → [b]benchmark[/b] (live) → [b]chat[/b]

Every step is real: Olive converts, onnxruntime-genai generates, Foundry Local serves.
No model at hand? The bundled demo, [i]SmolLM2-135M-Instruct[/i], works offline.
""")


class WelcomeScreen(StepScreen):
    STEP = "welcome"
    HELP = N_("Start with the bundled demo model (works offline), or with your own Hugging Face "
              "model folder. A previous run can be resumed from the last step it completed.")

    def compose_body(self) -> ComposeResult:
        yield Static(_(INTRO), id="welcome-intro")
        with Horizontal(classes="row", id="welcome-choices"):
            yield Button(_("Use the demo model"), id="start-demo", variant="success")
            yield Button(_("Use my own model"), id="start-own")
            saved = WizardState.load()
            if saved is not None and saved.last_completed not in (None, "welcome"):
                resume_at = STEPS[min(STEPS.index(saved.last_completed) + 1, len(STEPS) - 1)]
                yield Button(_("Resume at {step}").format(step=step_title(resume_at)), id="resume",
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
            self.notify(_("The saved run can no longer be read."), severity="error")
            return
        self.wizard.state = saved
        last = saved.last_completed or "welcome"
        self.wizard.go(STEPS[min(STEPS.index(last) + 1, len(STEPS) - 1)])
