"""Prompt template: the preset detected from the model folder, a live preview checked against the
tokenizer's chat template, a Custom template, and the generation settings, validated as you type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container, Grid, Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker

from tui.screens.base import StepScreen
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _
from wizard_steps.model import adapter
from wizard_steps.model.adapter import tokenizer_folder
from wizard_steps.prompt import template_diff, templates
from wizard_steps.prompt.detection import Detection, detect
from wizard_steps.prompt.generation import GenerationError, ModelConfig, model_config
from wizard_steps.prompt.template_diff import TemplateDifference
from wizard_steps.prompt.templates import PARTS, PRESETS, Preset, PromptTemplate

SETTINGS = ("max_length", "temperature", "top_p", "repetition_penalty")
SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]+\|>|</?[A-Za-z_]+>|\[/?INST\]|<</?SYS>>")
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
CONFIDENCE = {"high": N_("high"), "medium": N_("medium"), "low": N_("low")}


def escape(text: str) -> str:
    """A template part on one line: line breaks and tabs written as \\n and \\t."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def unescape(text: str) -> str:
    return re.sub(r"\\([nt\\])", lambda m: ESCAPES[m.group(1)], text)


def show_prompt(prompt: str) -> Text:
    """The raw prompt with its special tokens highlighted and each line break marked."""
    text = Text()
    for line in prompt.split("\n")[:-1] if prompt.endswith("\n") else prompt.split("\n"):
        text.append(line)
        text.append("↵\n", style="dim")
    text.highlight_regex(SPECIAL_TOKEN, "bold cyan")
    text.rstrip()
    return text


@dataclass(frozen=True)
class FolderFacts:
    """What the worker learns from the model folder: the detected preset, the context length, and
    the presets fitted to its tokenizer's special tokens (BOS/EOS)."""

    detection: Detection | None
    context_length: int | None
    error: str | None
    presets: dict[str, Preset] | None = None


class TemplateScreen(StepScreen):
    STEP = "template"
    HELP = N_("The prompt template turns a conversation into the exact text the model reads. The "
            "preset is detected from the tokenizer's chat template; the preview shows a sample "
            "conversation with every special token. Foundry Local builds its prompts from the "
            "folder's chat template, so the line under the preview says whether the two agree.\n\n"
            "Custom: four parts (system, user, assistant, prompt), each with {Content} once where "
            "the message goes; the prompt part is the last user turn plus the opening of the "
            "assistant's reply. Write line breaks as \\n.\n\n"
            "Generation settings are the defaults written into genai_config.json: max_length "
            "(prompt plus reply, in tokens), temperature (0 = greedy), top_p, repetition_penalty.")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    def __init__(self) -> None:
        super().__init__()
        self.facts: FolderFacts | None = None
        saved = self.state.template_key
        self.preset_key = saved if saved in PRESETS else "chatml"
        self.faults: dict[str, str] = {}
        self.config_errors: dict[str, str] = {}
        self.config: ModelConfig | None = None

    def compose_body(self) -> ComposeResult:
        yield Label(_("Prompt template"), classes="step-title")
        yield Static(_("Detecting the template from the model folder…"), id="template-detection",
                     classes="hint")
        with Container(id="template-columns"):
            with Vertical(id="template-choice"):
                with Horizontal(classes="template-row"):
                    yield Label(_("preset"), classes="field-label")
                    yield Select([(_(preset.name), key) for key, preset in PRESETS.items()],
                                 value=self.preset_key, allow_blank=False, id="template-preset")
                yield Static("", id="template-note", classes="hint")
                with Vertical(id="custom-fields"):
                    yield Static(Text(_("Each part holds {Content} once; write a line break as \\n.")),
                                 classes="hint")
                    for part in PARTS:
                        with Horizontal(classes="template-row"):
                            yield Label(part, classes="field-label")
                            yield Input(id=f"part-{part}", classes="part-input")
                        yield Static("", id=f"part-{part}-error", classes="error-line field-error")
            with Vertical(id="template-preview-pane"):
                yield Static("", id="template-preview")
                yield Static("", id="template-agreement")
        yield Label(_("Generation settings"), classes="section-title")
        yield Static(_("Defaults written to genai_config.json for onnxruntime-genai and Foundry "
                       "Local."), classes="hint")
        with Grid(id="generation-grid"):
            for name in SETTINGS:
                with Vertical(classes="generation-setting"):
                    yield Label(name)
                    yield Input(str(self.state.model_config.get(name, "")), id=f"gen-{name}",
                                classes="generation-input")
                    yield Static("", id=f"gen-{name}-error", classes="error-line field-error")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#template-preview").border_title = _("the sample conversation, as the model reads it")
        custom = self.state.custom_template if self.preset_key == "custom" else None
        self.fill_custom(PromptTemplate(**{part: str(custom.get(part, "")) for part in PARTS})
                         if custom else PRESETS["custom"].template)
        self.show_preset()
        self.check_settings()
        self.read_folder()
        self.query_one("#template-preset").focus()

    def blocked_reason(self) -> str | None:
        if self.facts is None:
            return _("Detecting the prompt template…")
        if self.faults:
            return _("Fix the template's {part} part first.").format(part=next(iter(self.faults)))
        if self.config_errors:
            return _("Fix {setting} first.").format(setting=next(iter(self.config_errors)))
        return None

    def before_next(self) -> bool:
        assert self.config is not None
        self.state.template_key = self.preset_key
        self.state.custom_template = (self.template().to_json() if self.preset_key == "custom"
                                      else None)
        self.state.model_config = self.config.to_json()
        return True

    # --- the model folder -------------------------------------------------------------------

    @property
    def folder(self) -> Path | None:
        return Path(self.state.model_dir) if self.state.model_dir else None

    @work(thread=True, exclusive=True, group="detect")
    def read_folder(self) -> None:
        try:
            if self.folder is None:
                raise WizardError(_("No model has been chosen yet."), _("Go back to the Model step."))
            info = adapter.inspect_model_or_adapter(self.folder)
            facts = FolderFacts(detect(info.path), info.max_position_embeddings or None,
                                None, {key: templates.preset_for_folder(key, info.path) for key in PRESETS})
        except WizardError as exc:
            facts = FolderFacts(None, None, str(exc))
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_facts, facts)

    def show_facts(self, facts: FolderFacts) -> None:
        self.facts = facts
        line = self.query_one("#template-detection", Static)
        if facts.detection is None:
            line.update(Text(_("Cannot read the model folder: {error}").format(error=facts.error), style="red"))
        else:
            found = facts.detection
            line.update(Text.assemble(
                (_("Detected: "), "bold"), (_(PRESETS[found.preset_key].name), "bold"),
                _(" ({confidence} confidence): {reason}.").format(
                    confidence=_(CONFIDENCE[found.confidence.value]), reason=found.reason)))
            if self.state.template_key not in PRESETS and found.preset_key != self.preset_key:
                self.preset_key = found.preset_key
                self.query_one("#template-preset", Select).value = found.preset_key
        self.check_settings()
        self.show_preset()

    # --- the template -----------------------------------------------------------------------

    def template(self) -> PromptTemplate:
        if self.preset_key != "custom":
            return self.preset(self.preset_key).template
        return PromptTemplate(**{part: unescape(self.query_one(f"#part-{part}", Input).value)
                                 for part in PARTS})

    def preset(self, key: str) -> Preset:
        """The preset, with the model's own BOS/EOS where its family writes them."""
        fitted = self.facts.presets if self.facts is not None else None
        return fitted[key] if fitted and key in fitted else PRESETS[key]

    def fill_custom(self, template: PromptTemplate) -> None:
        for part in PARTS:
            self.query_one(f"#part-{part}", Input).value = escape(getattr(template, part))

    @on(Select.Changed, "#template-preset")
    def preset_changed(self, event: Select.Changed) -> None:
        key = str(event.value)
        if key == self.preset_key:
            return
        if key == "custom":
            self.fill_custom(self.preset(self.preset_key).template)  # start from what was chosen
        self.preset_key = key
        self.show_preset()

    def show_preset(self) -> None:
        preset = PRESETS[self.preset_key]
        note = (_("Used by {families}.").format(families=", ".join(preset.families)) + " " + _(preset.note)
                if preset.families else _("Your own four parts, prefilled from the preset chosen before."))
        self.query_one("#template-note", Static).update(Text(note))
        self.query_one("#custom-fields").display = self.preset_key == "custom"
        self.show_template()

    @on(Input.Changed, ".part-input")
    def part_changed(self) -> None:
        if self.preset_key == "custom":
            self.show_template()

    def show_template(self) -> None:
        template = self.template()
        self.faults = {}
        if self.preset_key == "custom":
            for fault in templates.template_problems(template):
                part = fault.field or "prompt"
                self.faults[part] = " ".join(filter(None, [self.faults.get(part), fault.message]))
        for part in PARTS:
            error = self.query_one(f"#part-{part}-error", Static)
            error.update(Text(self.faults.get(part, "")))
            error.display = part in self.faults
        preview = self.query_one("#template-preview", Static)
        agreement = self.query_one("#template-agreement", Static)
        if self.faults:
            preview.update(Text(_("The preview appears when the template is valid."), style="dim"))
            agreement.update("")
        else:
            preview.update(show_prompt(templates.preview(template)))
            if self.facts is not None and self.facts.detection is not None:
                agreement.update(Text(_("Comparing with the tokenizer's chat template…"), style="dim"))
                self.compare(template)
        self.refresh_nav()

    @work(thread=True, exclusive=True, group="compare")
    def compare(self, template: PromptTemplate) -> None:
        assert self.folder is not None
        try:
            folder = tokenizer_folder(self.folder)
            result: TemplateDifference | str | None = template_diff.compare_with_folder(template, folder)
            label = template_diff.template_label(template, folder)
        except WizardError as exc:
            result, label = str(exc), ""
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_agreement, template, result, label)

    def show_agreement(self, template: PromptTemplate, result: TemplateDifference | str | None,
                       label: str) -> None:
        """Whether the folder's own chat template builds the same prompts, in plain words."""
        if self.faults or template != self.template():
            return  # the user changed the template since; a newer comparison is coming
        line = self.query_one("#template-agreement", Static)
        if isinstance(result, str):
            line.update(Text(f"! {result}", style="yellow"))
        elif result is None:
            line.update(Text("! " + _("The model folder has no chat template; the deploy step writes "
                                      "this one into the deployed copy."), style="yellow"))
        elif result.agrees:
            line.update(Text("✓ " + _("The model's own chat template builds the same prompts as "
                                      "{label}.").format(label=label), style="green"))
        else:
            said = [*template_diff.explain(result, label),
                    _("At the Deploy step you choose which one Foundry Local uses: the model's own or "
                      "this one.")]
            line.update(Text("≠ " + " ".join(said), style="yellow"))

    # --- generation settings ----------------------------------------------------------------

    @on(Input.Changed, ".generation-input")
    def setting_changed(self) -> None:
        self.check_settings()

    def check_settings(self) -> None:
        """Each setting alone (an error under each field), then all together against the context."""
        texts = {name: self.query_one(f"#gen-{name}", Input).value.strip() for name in SETTINGS}
        errors: dict[str, str] = {}
        for name, text in texts.items():
            try:
                model_config(context_length=None, **{name: text})  # the one setting alone
            except GenerationError as exc:
                errors[name] = str(exc)
        self.config = None
        if not errors:
            context = self.facts.context_length if self.facts else None
            try:
                self.config = model_config(context, **texts)
            except GenerationError as exc:
                errors[exc.field or "max_length"] = str(exc)
        self.config_errors = errors
        for name in SETTINGS:
            error = self.query_one(f"#gen-{name}-error", Static)
            error.update(Text(errors.get(name, "")))
            error.display = name in errors
        self.refresh_nav()
