"""Deploy: the converted folder into Foundry Local under a name checked as you type, the
inference_model.json that goes with it, the run with its stages, the proof answer, and the
models deployed so far."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Collapsible, DataTable, Input, Label, RadioButton, RadioSet, Static

from tui.screens.base import StepScreen
from tui.widgets.run_panel import RunFactory, RunPanel
from wizard_steps.conversion.precision import human_size
from wizard_steps.core import paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Finished
from wizard_steps.core.i18n import N_, _, number, sort_key
from wizard_steps.deployment.deploy import DeployedModel, DeployResult, deploy, list_deployed, next_version
from wizard_steps.deployment.deploy_files import MAX_NAME, InferenceModel, check_model_folder, validate_name
from wizard_steps.deployment.foundry_cli import PlacedResult, choose_backend, deploy_with_cli
from wizard_steps.measurement.tune_quick import describe
from wizard_steps.prompt import template_diff
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import PromptTemplate
from wizard_steps.road.state import WizardState, state_model_config, state_template

# --- the state's choices, as the deploy and chat steps use them ------------------------------------


def suggested_name(state: WizardState) -> str:
    """The saved deploy name, else the converted folder's name made into a valid one."""
    if state.deploy_name:
        return state.deploy_name
    raw = Path(state.converted_dir or "").name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")[:MAX_NAME].rstrip("-._")
    for candidate in (name, f"{name}-model"[:MAX_NAME], "my-model"):
        try:
            return validate_name(candidate)
        except WizardError:
            continue
    return "my-model"


def preview_json(name: str, version: int | str, template: PromptTemplate, config: ModelConfig) -> str:
    """The inference_model.json a deploy writes, with the same description deploy gives it."""
    record = InferenceModel(name, f"{name}, deployed by slmops", str(version), template, config)
    return json.dumps(record.to_json(), indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class DeployPlan:
    """What one press of Deploy runs."""

    route: str  # "sdk" (in this process) or "cli" (the foundry command)
    folder: Path
    name: str
    template: PromptTemplate
    config: ModelConfig
    template_source: str = "preset"  # "model": keep the folder's own chat template


def describe_result(event: Finished[DeployResult] | Finished[PlacedResult]) -> Group:
    """The figures of a finished deploy, as label/value rows (values wrap under themselves)."""
    done = event.result
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(ratio=1)
    rows: list[tuple[str, str | Text]]
    if isinstance(done, PlacedResult):
        heading = _("✓ Placed {name} in Foundry Local's cache.").format(name=done.name)
        rows = [(_("Listed"), done.listed_as), (_("Run it"), done.run_command)]
    else:
        heading = _("✓ Deployed {model} (version {version}) in {seconds} s.").format(
            model=done.model_id, version=done.version, seconds=number(done.duration_s, None))
        agrees = done.template_agrees
        rows = [(_("Loaded"), _("in {seconds} s").format(seconds=number(done.load_s, 2))
                 + f" · {done.precision or _('unknown precision')}"
                 + f" · {human_size(done.size_bytes)}"),
                (_("Proof"), f"{done.proof_prompt} → “{done.proof_reply}”"),
                (_("Template"), Text(" ".join(done.template_notes) or (_("agrees") if agrees else _("differs")),
                                     style="green" if agrees else "yellow"))]
        if done.tuned is not None:  # a folder never tuned here, tuned on its copy
            rows.append((_("Tuned"), describe(done.tuned)))
    for label, value in [*rows, (_("Folder"), str(event.path))]:
        grid.add_row(label, value)
    return Group(Text(heading, style="bold green"), grid)


class DeployScreen(StepScreen):
    STEP = "deploy"
    HELP = N_("Copies the converted folder into the Foundry Local cache under a name, as the next "
            "version of that name (name:version); earlier versions and other models stay. The "
            "copy gets the tutorial's inference_model.json (shown below), the chosen template as "
            "its chat template, and the generation settings in genai_config.json. The model is "
            "then registered, loaded and asked one short question as proof. A failed or cancelled "
            "deploy keeps nothing.\n\nWhere the foundry CLI is installed (Windows, macOS) the "
            "tutorial's CLI route is used instead: the folder goes under custom/<name> in "
            "Foundry's own cache and is checked with foundry cache ls.")
    BINDINGS = [
        Binding("d", "deploy", N_("Deploy")),
        Binding("escape", "cancel_run", N_("Cancel")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.route = "sdk"
        self.route_error: str | None = None
        self.name_error: str | None = None
        self.setup_error: str | None = None
        self.version: int | None = None
        self.template: PromptTemplate | None = None
        self.config: ModelConfig | None = None
        self.deployed: list[DeployedModel] | None = None
        self.result: Finished[DeployResult] | Finished[PlacedResult] | None = None
        self.running_plan: DeployPlan | None = None
        self.template_choice = False  # the folder's own chat template differs from the chosen one

    def compose_body(self) -> ComposeResult:
        yield Label(_("Deploy to Foundry Local"), classes="step-title")
        yield Static("", id="deploy-route", classes="hint")
        with Horizontal(id="deploy-name-row"):
            yield Label(_("Name"), id="deploy-name-label")
            yield Input(suggested_name(self.state), id="deploy-name", max_length=MAX_NAME + 16,
                        tooltip=_("Letters, digits, '-', '_' and '.'; every deploy of a name is "
                                  "its next version."))
            yield Label("", id="deploy-version")
        yield Label("", id="deploy-name-error", classes="error-line")
        with Collapsible(title="inference_model.json", id="deploy-json-box"):
            yield Static("", id="deploy-json")
        with Vertical(id="deploy-template-box"):
            yield Static("", id="deploy-template-note")
            # The saved choice is pressed as the buttons are made: a value set later posts a
            # change that could arrive after the user's own click and undo it.
            keep = self.state.template_source == "model"
            with RadioSet(id="deploy-template-source"):
                yield RadioButton("", value=not keep, id="deploy-template-preset")
                yield RadioButton(_("Keep the model's own chat template"), value=keep,
                                  id="deploy-template-model")
        yield RunPanel("deploy", prepare=self.prepare_run, start_label=_("Deploy"),
                       cancel_label=_("Cancel"))
        yield Label(_("Deployed models"), classes="section-title")
        yield DataTable(id="deployed-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#deployed-table", DataTable)
        table.add_columns("id", _("display name"), _("precision"), _("size"), _("path"))
        self.query_one("#deploy-json-box", Collapsible).collapsed = self.app.size.height < 40
        self.check_setup()
        self.name_changed()
        self.refresh_table()
        start = self.query_one("#deploy-start", Button)
        (self.query_one("#deploy-name") if start.disabled else start).focus()

    # --- what is to be deployed ---------------------------------------------------------------

    def check_setup(self) -> None:
        """Where the model goes, and whether the folder, template and settings can be used."""
        try:
            self.route = choose_backend()
            self.route_error = None
        except WizardError as exc:
            self.route_error = str(exc)
        try:
            check_model_folder(self.state.converted_dir or "")
            self.template = state_template(self.state)[0]
            self.config = state_model_config(self.state)
            self.setup_error = None
        except WizardError as exc:
            self.setup_error = str(exc) if self.state.converted_dir else \
                _("No converted model yet; go back to the Convert step.")
        route = Text()
        if self.route_error:
            route.append(self.route_error, style="bold red")
        elif self.route == "cli":
            route.append(_("The foundry CLI is installed, so the tutorial's CLI route is used: the "
                           "folder goes under custom/<name> in Foundry Local's own cache and is "
                           "checked with foundry cache ls."))
        else:
            route.append(_("Foundry Local SDK, in this process · cache") + " ")
            route.append(str(paths.foundry_cache_dir()), style="bold")
        if self.setup_error:
            route.append(f"\n{self.setup_error}", style="bold red")
        self.show_template_choice()
        self.query_one("#deploy-route", Static).update(route)

    def show_template_choice(self) -> None:
        """Where the model's own chat template and the chosen one build different prompts: say how in
        plain words, and let the user keep either (Foundry Local builds prompts from the folder's)."""

        box = self.query_one("#deploy-template-box")
        difference = None
        if self.template is not None and not self.setup_error:
            try:
                difference = template_diff.compare_with_folder(self.template, Path(self.state.converted_dir or ""))
            except (OSError, ValueError, WizardError):
                difference = None
        self.template_choice = difference is not None and not difference.agrees
        box.display = self.template_choice
        if not self.template_choice or self.template is None or difference is None:
            return
        folder = Path(self.state.converted_dir or "")
        label = template_diff.template_label(self.template, folder)
        said = " ".join(template_diff.explain(difference, label))
        self.query_one("#deploy-template-note", Static).update(
            Text(said + " " + _("Answers may differ. Which should Foundry Local use?"), style="yellow"))
        preset = self.query_one("#deploy-template-preset", RadioButton)
        preset.label = _("Use {label}").format(label=label)

    @on(RadioSet.Changed, "#deploy-template-source")
    def template_source_changed(self, event: RadioSet.Changed) -> None:
        self.state.template_source = "model" if event.pressed.id == "deploy-template-model" else "preset"
        self.state.save()

    @on(Input.Changed, "#deploy-name")
    def name_changed(self) -> None:
        name = self.query_one("#deploy-name", Input).value
        self.version = None
        try:
            validate_name(name)
            self.name_error = None
            self.version = 1 if self.route == "cli" else next_version(name)
        except WizardError as exc:
            self.name_error = exc.message
        self.query_one("#deploy-name-error", Label).update(self.name_error or "")
        self.query_one("#deploy-name-error").display = self.name_error is not None
        self.query_one("#deploy-version", Label).update(
            "" if self.version is None else
            f"→ {name}" if self.route == "cli" else f"→ {name}:{self.version}")
        box = self.query_one("#deploy-json-box", Collapsible)
        if self.version is not None and self.template and self.config and not self.setup_error:
            box.title = _("inference_model.json for {name} (version {version})").format(
                name=name, version=self.version)
            self.query_one("#deploy-json", Static).update(Syntax(
                preview_json(name, self.version, self.template, self.config), "json",
                word_wrap=True, background_color="default"))
        else:
            box.title = _("inference_model.json (once the name is valid)")
            self.query_one("#deploy-json", Static).update("")
        self.show_controls()

    def plan(self) -> DeployPlan | None:
        if self.running or self.route_error or self.setup_error or self.name_error:
            return None
        if self.template is None or self.config is None:
            return None
        return DeployPlan(self.route, Path(self.state.converted_dir or ""),
                          self.query_one("#deploy-name", Input).value, self.template, self.config,
                          self.state.template_source if self.template_choice else "preset")

    # --- navigation ---------------------------------------------------------------------------

    def blocked_reason(self) -> str | None:
        if self.running:
            return _("Deploying…")
        if self.result is not None:
            return None
        if self.deployed is None and self.state.deployed_id:
            return _("Reading the deployed models…")
        if self.state.deployed_id and any(m.id == self.state.deployed_id for m in self.deployed or []):
            return None
        return _("Deploy the model first.")

    def before_next(self) -> bool:
        if self.result is not None:
            self.state.deploy_name = self.result.result.name
        return True

    def show_controls(self) -> None:
        self.panel.set_ready(self.plan() is not None)
        self.query_one("#deploy-name", Input).disabled = self.running
        self.query_one("#deploy-template-source", RadioSet).disabled = self.running
        self.refresh_bindings()
        self.refresh_nav()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "deploy":
            return self.plan() is not None
        if action == "cancel_run":
            return self.running
        return super().check_action(action, parameters)

    # --- the deployed models ------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="quick")
    def refresh_table(self, select: str | None = None) -> None:
        try:
            found: list[DeployedModel] | str = list_deployed()
        except WizardError as exc:
            found = str(exc)
        self.app.call_from_thread(self.show_table, found, select)

    def show_table(self, found: list[DeployedModel] | str, select: str | None) -> None:
        if self.cancel.is_set():
            return
        table = self.query_one("#deployed-table", DataTable)
        table.clear()
        if isinstance(found, str):
            self.deployed = []
            table.border_subtitle = found
        else:
            self.deployed = found
            for model in sorted(found, key=lambda m: (sort_key(m.name), m.version)):
                table.add_row(model.id, model.display_name, model.precision or "?",
                              human_size(model.size_bytes), str(model.path), key=model.id)
            table.border_subtitle = "" if found else _("none yet")
            wanted = select or self.state.deployed_id
            if wanted and wanted in {m.id for m in found}:
                table.move_cursor(row=table.get_row_index(wanted))
        self.refresh_nav()

    # --- the run ------------------------------------------------------------------------------

    def action_deploy(self) -> None:
        self.panel.start()

    def action_cancel_run(self) -> None:
        self.panel.cancel()

    def prepare_run(self) -> RunFactory | None:
        plan = self.plan()
        if plan is None:
            return None
        self.result, self.running_plan = None, plan
        route = deploy_with_cli if plan.route == "cli" else deploy
        return lambda stop: route(plan.folder, plan.name, plan.template, plan.config, cancel=stop,
                                  template_source=plan.template_source)

    @on(RunPanel.Ended, "#deploy-run")
    def run_ended(self, message: RunPanel.Ended) -> None:
        plan = self.running_plan
        if isinstance(message.outcome, Finished) and plan is not None:
            event = message.outcome
            self.result = event
            self.state.deploy_name = plan.name
            done = event.result
            self.state.deployed_id = done.model_id if isinstance(done, DeployResult) else done.name
            self.state.save()
            self.panel.set_stage(_("Deployed"))
            self.panel.show_result(describe_result(event))
            self.refresh_table(select=self.state.deployed_id)
            self.name_changed()  # the next version is one more now
        self.show_controls()
