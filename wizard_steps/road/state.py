"""The user's choices through the wizard, saved as they go so that a run can be resumed."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from wizard_steps.conversion.precision import Int4Settings
from wizard_steps.core import paths
from wizard_steps.core.errors import PlanError, WizardError
from wizard_steps.core.i18n import _
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import PromptTemplate, TemplateError, preset_for_folder
from wizard_steps.road.answers import Answers, save

ANSWERS_NAME = "wizard.toml"
_ANSWER_TEMPLATES = ("chatml", "phi3", "llama3", "mistral", "gemma")
STEPS = ("welcome", "prereqs", "model", "precision", "template", "convert", "deploy",
         "benchmark", "chat", "summary")


@dataclass
class WizardState:
    """Everything the steps decided; plain JSON types (and the INT4 settings, saved as a table of
    them) so that it saves as it is."""

    step: str = "welcome"
    completed: list[str] = field(default_factory=list)
    model_dir: str | None = None
    use_demo: bool = False
    precision: str = "int4"
    int4: Int4Settings = field(default_factory=Int4Settings)  # "auto" brings its own block size, symmetry
    template_key: str | None = None
    template_source: str = "preset"  # deploy: "preset" (the chosen template) or "model" (the folder's own)
    custom_template: dict[str, str] | None = None
    model_config: dict[str, float] = field(default_factory=lambda: {
        "max_length": 2048, "temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1})
    output_dir: str | None = None
    converted_dir: str | None = None
    deploy_name: str | None = None
    deployed_id: str | None = None
    bench_lengths: list[int] = field(default_factory=lambda: [16, 128, 512])
    bench_runs: int = 3
    bench_new_tokens: int = 64
    system_prompt: str = "You are a helpful assistant."
    bench_export_path: str | None = None
    bench_result: dict[str, object] | None = None  # medians and checklist verdict (benchmark.record)

    def complete(self, step: str) -> None:
        if step not in self.completed:
            self.completed.append(step)

    @property
    def last_completed(self) -> str | None:
        done = [s for s in STEPS if s in self.completed]
        return done[-1] if done else None

    def save(self, path: Path | None = None) -> Path:
        """Write atomically: a crash mid-write leaves the previous state intact."""
        path = path or paths.state_file()
        paths.ensure(path.parent)
        # a temporary name of its own per save: two wizards (two browser tabs) may save at once
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps({**asdict(self), "int4": self.int4.to_json()}, indent=2), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path | None = None) -> WizardState | None:
        """The saved state, or None when there is none or it cannot be read."""
        path = path or paths.state_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)} - {"int4"}
        values = {k: v for k, v in data.items() if k in known}
        # the INT4 settings: a table of their own, or (a state saved before it) flat int4_* keys
        table = data.get("int4", {k.removeprefix("int4_"): v for k, v in data.items() if k.startswith("int4_")})
        try:
            int4 = Int4Settings.from_json(table if isinstance(table, dict) else {"": table})
        except PlanError:
            return None
        defaults = cls()
        if not all(_fits(v, getattr(defaults, k)) for k, v in values.items()) or not all(
                isinstance(s, str) for s in values.get("completed", [])):
            return None  # hand-edited or damaged: a wrong type would crash a screen later
        try:
            state = cls(**values, int4=int4)
        except TypeError:
            return None
        return state if state.step in STEPS else None


def _fits(value: object, default: object) -> bool:
    """A loaded value has its field's type (a whole number may stand for a float)."""
    if default is None or isinstance(value, type(default)):
        return True
    return isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)


def state_template(state: WizardState) -> tuple[PromptTemplate, tuple[str, ...]]:
    """The chosen prompt template and its preset's stop strings; raises WizardError."""
    key = state.template_key or "chatml"
    preset = preset_for_folder(key, Path(state.model_dir) if state.model_dir else None)
    if key != "custom":
        return preset.template, preset.stop
    try:
        template = PromptTemplate(**(state.custom_template or {}))
    except TypeError:
        raise TemplateError(_("The saved Custom template is incomplete."),
                            _("Go back to the Template step and write its four parts.")) from None
    return template.validate(), preset.stop


def state_model_config(state: WizardState) -> ModelConfig:
    try:
        return ModelConfig(**state.model_config).validate()  # type: ignore[arg-type]
    except TypeError:
        raise WizardError(_("The saved generation settings cannot be read."),
                          _("Go back to the Template step and check them.")) from None


def state_answers(state: WizardState) -> Answers:
    """The wizard's choices as an answers file, so that ``slmops run --answers`` repeats the run
    (on this machine or thirty others: the output folder is left to each machine's default).
    A custom template has no key in answers files: the replay detects the template instead."""
    config = state.model_config
    preset = state.template_key if state.template_key in _ANSWER_TEMPLATES else "auto"
    return Answers(
        model="demo" if state.use_demo or not state.model_dir else state.model_dir,
        precision=state.precision, int4=state.int4,
        template=preset, template_source=state.template_source, max_length=int(config.get("max_length", 2048)),
        temperature=float(config.get("temperature", 0.7)), top_p=float(config.get("top_p", 0.9)),
        repetition_penalty=float(config.get("repetition_penalty", 1.1)),
        deploy_name=state.deploy_name or "", bench_lengths=list(state.bench_lengths),
        bench_runs=state.bench_runs, bench_new_tokens=state.bench_new_tokens)


def save_answers(state: WizardState) -> Path | None:
    """Write the answers file beside the state (config/wizard.toml); None before a model is chosen
    or when it cannot be written (the wizard goes on: the file is a convenience)."""
    if not (state.model_dir or state.use_demo):
        return None
    try:
        return save(state_answers(state), paths.ensure(paths.config_dir()) / ANSWERS_NAME)
    except (OSError, WizardError):
        return None
