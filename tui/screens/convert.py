"""Convert: the Olive plan built from the wizard's choices, its config JSON, and the conversion run
live (progress, stage, Olive's log, elapsed time), cancellable; the result proven by generating."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Collapsible, Input, Label, Static, Switch

from tui.screens.base import StepScreen
from tui.widgets.run_panel import RunFactory, RunPanel
from wizard_steps.conversion import convert
from wizard_steps.conversion.convert import ConvertPlan, ConvertResult
from wizard_steps.conversion.precision import Precision, estimate_bytes, human_size
from wizard_steps.core import paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Finished
from wizard_steps.core.i18n import N_, _, number, percent
from wizard_steps.measurement.tune_quick import QuickTune, describe
from wizard_steps.model.adapter import inspect_model_or_adapter
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.verdict.compare import compare_root

RESULT_LABELS = (N_("Folder"), N_("Size"), N_("Sample"), N_("Speed"), N_("Again"))


def describe_plan(plan: ConvertPlan) -> Text:
    """One or two lines: source model → precision and its settings, with the estimated size."""
    model = plan.model
    target = plan.precision.value.upper()
    if plan.precision is Precision.INT4:
        settings = plan.int4
        target += " · " + _("{algorithm} · block {size} · {symmetry} · embeddings {embeddings}").format(
            algorithm=settings.algorithm.value, size=settings.block_size,
            symmetry=_("symmetric") if settings.symmetric else _("asymmetric"),
            embeddings="INT4" if settings.quantize_embeddings else "FP32")
    estimate = estimate_bytes(plan.precision, model.num_parameters, model.vocab_size,
                              model.hidden_size, int4=plan.int4)
    text = Text()
    text.append(model.name, style="bold")
    text.append(f" ({human_size(model.size_bytes)}, {model.weights_dtype}) → ")
    text.append(target, style="bold")
    text.append(" · " + _("about {size}").format(size=human_size(estimate))
                + f" · {plan.provider.device.upper()}", style="dim")
    return text


def tuned_line(tuned: QuickTune | None) -> str:
    """What the short thread tuning after the conversion measured and kept."""
    return describe(tuned) if tuned is not None else _("not tuned (onnxruntime's default threads)")


def describe_result(result: Finished[ConvertResult]) -> Group:
    """The figures of a finished conversion and the command that repeats it, as label/value rows
    (a long value wraps under itself, not under the labels)."""
    done = result.result
    reduction = done.reduction * 100
    change = (_("{percent} smaller").format(percent=percent(reduction)) if reduction >= 0 else
              _("{percent} larger").format(percent=percent(-reduction)))
    heading = Text(_("✓ Converted in {seconds} s and checked by generating text.").format(
        seconds=number(done.duration_s, None)), style="bold green")
    values = [f"{result.path}",
              _("{size} (source {source}, {change})").format(size=human_size(done.size_bytes),
                                                             source=human_size(done.source_bytes), change=change),
              f"{done.sample_text.strip()!r}", tuned_line(done.tuned), done.rerun]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(ratio=1)
    for label, value in zip(RESULT_LABELS, values, strict=True):
        grid.add_row(_(label), value)
    return Group(heading, grid)


class ConvertScreen(StepScreen):
    STEP = "convert"
    HELP = N_("Converts the model to ONNX with Microsoft Olive (its ModelBuilder pass), with the "
            "precision and INT4 settings you chose and the generation settings written into "
            "genai_config.json. The config Olive runs is shown below. The result is written "
            "beside the target folder and moved into place only after onnxruntime-genai has "
            "loaded it and generated text, so a failed or cancelled run leaves nothing behind. "
            "On 2 cores the demo model takes 15 seconds (FP32, INT4 RTN) to about a minute and a half "
            "(the default INT4: QuaRot rotations and GPTQ's calibration, layer by layer).")
    BINDINGS = [
        Binding("s", "start", N_("Start")),
        Binding("escape", "cancel_run", N_("Cancel")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan: ConvertPlan | None = None
        self.result: Finished | None = None
        self.plan_error = ""
        self.config_json = ""
        self.earlier: Path | None = None  # a folder that already holds this very conversion

    def compose_body(self) -> ComposeResult:
        yield Label(_("Convert to ONNX with Olive"), classes="step-title")
        yield Static("", id="convert-plan")
        with Horizontal(id="convert-output-row"):
            yield Label(_("Output"), id="convert-output-label")
            yield Input(placeholder=_("output folder"), id="convert-output")
            yield Switch(id="convert-replace", tooltip=_("Replace the folder if it exists"))
            yield Label(_("Replace\nexisting"), id="convert-replace-label")
        yield Static("", id="convert-notice")
        with Collapsible(title=_("Olive config (olive run --config)"), id="convert-config-box"):
            yield Static("", id="convert-config")
        yield RunPanel("convert", prepare=self.prepare_run, start_label=_("Start"),
                       cancel_label=_("Cancel"), log_title=_("Olive log"))

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#convert-output", Input).value = self.initial_output_dir()
        self.replan()
        self.show_controls()
        start = self.query_one("#convert-start", Button)
        (self.query_one("#convert-replace") if start.disabled else start).focus()

    # --- the plan -----------------------------------------------------------------------------

    def initial_output_dir(self) -> str:
        if self.state.output_dir:
            return self.state.output_dir
        try:
            model = inspect_model_or_adapter(self.state.model_dir or "")
            return str(convert.default_output_dir(model, Precision(self.state.precision)))
        except (WizardError, ValueError):
            return ""

    def build_plan(self, replace: bool) -> ConvertPlan:
        state = self.state
        if not state.model_dir:
            raise WizardError(_("No model was chosen."), _("Go back to the Model step."))
        try:
            precision = Precision(state.precision)
            int4 = state.int4
            search = ModelConfig(**state.model_config).to_genai_search()  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise WizardError(_("A saved choice cannot be used ({error}).").format(error=exc),
                              _("Go back to the Precision or Template step.")) from None
        output = self.query_one("#convert-output", Input).value.strip() or None
        return convert.make_plan(state.model_dir, output, precision, int4=int4, search=search,
                                 replace_existing=replace)

    def replan(self) -> None:
        """Validate the choices again (fast: reads config.json and the folder's file sizes), and
        look for a folder that already holds this very conversion."""
        replace = self.query_one("#convert-replace", Switch).value
        preview: ConvertPlan | None = None
        try:
            self.plan = preview = self.build_plan(replace)
            self.plan_error = ""
        except WizardError as exc:
            self.plan = None
            out = Path(self.query_one("#convert-output", Input).value.strip() or ".").expanduser()
            exists = out.is_dir() and not replace
            hint = _("Switch on “Replace existing”, or choose another folder.") if exists else exc.hint
            self.plan_error = f"{exc.message} {hint}".strip()
            if exists:
                try:
                    preview = self.build_plan(replace=True)
                except WizardError:
                    preview = None
        self.earlier = self.find_earlier(preview) if preview is not None and self.result is None else None
        if self.earlier is not None:
            self.set_notice(self.earlier_notice(self.earlier))
        else:
            self.set_notice(Text(self.plan_error, style="bold red") if self.plan_error else "")
        self.query_one("#convert-plan", Static).update(describe_plan(preview) if preview else "")
        self.show_config(preview)
        self.show_controls()

    def find_earlier(self, plan: ConvertPlan) -> Path | None:
        """A folder converted earlier with these very settings from this model: the wizard's own
        last conversion, the output folder, the wizard's models or a comparison's candidates.
        Next goes on with it, so a second run of the road (a workshop's) does not convert again."""
        places = [Path(self.state.converted_dir)] if self.state.converted_dir else []
        places += [plan.output_dir, paths.models_dir()]
        try:
            places.append(compare_root(inspect_model_or_adapter(self.state.model_dir or "")))
        except WizardError:
            pass
        return convert.find_converted(plan, places)

    def earlier_notice(self, folder: Path) -> Text:
        plan_out = self.plan.output_dir if self.plan is not None else None
        again = (_("Start converts again into the output folder.") if plan_out is not None else
                 _("To convert again, switch on “Replace existing” or choose another folder."))
        return Text(_("Converted earlier with the same settings: {folder} ({size}). Next › goes on with "
                      "it. {again}").format(folder=folder, size=human_size(folder_size(folder)), again=again),
                    style="green")

    def set_notice(self, content: Text | str) -> None:
        notice = self.query_one("#convert-notice", Static)
        notice.update(content)
        notice.display = bool(content)

    def show_config(self, plan: ConvertPlan | None) -> None:
        box = self.query_one("#convert-config-box", Collapsible)
        box.display = plan is not None
        if plan is None:
            return
        config = convert.olive_config(plan, plan.output_dir, paths.olive_cache_dir() / "rerun")
        self.config_json = json.dumps(config, indent=2)
        self.query_one("#convert-config", Static).update(
            Syntax(self.config_json, "json", word_wrap=True, background_color="default"))

    @on(Input.Changed, "#convert-output")
    @on(Switch.Changed, "#convert-replace")
    def choices_changed(self) -> None:
        if not self.running:
            self.replan()

    # --- running ------------------------------------------------------------------------------

    def blocked_reason(self) -> str | None:
        if self.running:
            return _("Converting…")
        if self.result is not None or self.earlier is not None:
            return None
        return _("Convert the model first.")

    def before_next(self) -> bool:
        if self.result is None and self.earlier is not None:  # going on with the earlier folder
            self.state.converted_dir = str(self.earlier)
            self.state.save()
        return True

    def show_controls(self) -> None:
        self.panel.set_ready(self.plan is not None)
        self.query_one("#convert-output", Input).disabled = self.running
        self.query_one("#convert-replace", Switch).disabled = self.running
        self.refresh_bindings()
        self.refresh_nav()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return not self.running
        if action == "cancel_run":
            return self.running
        return super().check_action(action, parameters)

    def action_start(self) -> None:
        self.panel.start()

    def action_cancel_run(self) -> None:
        self.panel.cancel()

    def prepare_run(self) -> RunFactory | None:
        """Start: the plan checked again (the folder may have appeared or gone since)."""
        self.replan()
        plan = self.plan
        if plan is None:
            self.notify(self.plan_error, severity="error")
            return None
        self.result = None
        self.set_notice("")
        return partial(convert.convert, plan)

    @on(RunPanel.Ended, "#convert-run")
    def run_ended(self, message: RunPanel.Ended) -> None:
        if isinstance(message.outcome, Finished):
            self.result = message.outcome
            self.state.converted_dir = self.state.output_dir = str(message.outcome.path)
            self.state.save()
            self.panel.show_result(describe_result(message.outcome))
        self.show_controls()
