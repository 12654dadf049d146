"""One way to open a model for chat, benchmark, quality and tune, whichever front end asks: a
converted folder through onnxruntime-genai in this process, or a deployed model through Foundry
Local. The runtimes are imported only when a model is opened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import _
from wizard_steps.deployment import deploy, deploy_files
from wizard_steps.deployment.deploy import list_deployed
from wizard_steps.deployment.engine_foundry import FoundryBackend
from wizard_steps.prompt import detection, templates
from wizard_steps.runtime.engine import GenaiBackend

if TYPE_CHECKING:
    from wizard_steps.prompt.templates import PromptTemplate
    from wizard_steps.runtime.engine import Backend


@dataclass(frozen=True)
class ModelTarget:
    """What is talked to: ``model_id`` of a deployed model (its folder in the Foundry cache), or
    a converted folder (``model_id`` None). ``note`` says why, when it is not the obvious one."""

    folder: Path
    model_id: str | None = None
    note: str = ""

    @property
    def deployed(self) -> bool:
        return self.model_id is not None

    @property
    def name(self) -> str:
        return self.model_id or self.folder.name


def resolve(target: str) -> ModelTarget:
    """A converted folder, or a deployed model name[:version] (its newest version when no version
    is given); raises WizardError with the models there are."""

    folder = Path(target).expanduser()
    if (folder / "genai_config.json").is_file():
        return ModelTarget(folder)
    deployed = deploy.list_deployed()
    matches = [m for m in deployed if m.id == target or m.name == target]
    if not matches:
        if folder.exists():
            raise WizardError(_("{target} is not a converted model folder (no genai_config.json).").format(
                                  target=target),
                              _("Convert it first: slmops convert MODEL --precision int4 --out DIR"))
        known = ", ".join(m.id for m in deployed) or _("none yet")
        raise WizardError(_("No converted folder or deployed model is called {target}.").format(target=target),
                          _("Deployed models: {known}.").format(known=known))
    chosen = max(matches, key=lambda m: m.version)
    return ModelTarget(Path(chosen.path), chosen.id)


def for_wizard(deployed_id: str | None, converted_dir: str | None) -> ModelTarget:
    """The wizard's model: the deployed one while Foundry Local still lists it, else the
    converted folder; raises WizardError when there is neither."""
    if deployed_id:
        for model in list_deployed():
            if model.id == deployed_id:
                return ModelTarget(Path(model.path), model.id)
    if not converted_dir:
        raise WizardError(_("There is no model to talk to."), _("Convert and deploy it first."))
    note = (_("{model} is not in the Foundry cache any more, so the converted folder answers.").format(
        model=deployed_id) if deployed_id else "")
    return ModelTarget(Path(converted_dir), None, note)


def template_for_folder(folder: Path) -> tuple[PromptTemplate, tuple[str, ...]]:
    """The template a converted or deployed folder is meant to be used with (its
    inference_model.json when deployed, else the preset detected from its tokenizer) and the
    preset's stop strings."""

    if (folder / "inference_model.json").is_file():
        model = deploy_files.read_inference_model_json(folder)
        preset = templates.PRESETS.get(detection.detect(folder).preset_key)
        return model.template, preset.stop if preset else ()
    preset = templates.get_preset(detection.detect(folder).preset_key)
    return preset.template, preset.stop


def open_backend(target: ModelTarget, template: PromptTemplate | None = None) -> Backend:
    """The streaming backend for ``target`` (its folder's own template unless one is given)."""
    if template is None:
        template = template_for_folder(target.folder)[0]
    if target.model_id is not None:
        return FoundryBackend(target.model_id, template)

    try:
        return GenaiBackend(target.folder, template)
    except ImportError as exc:  # e.g. Foundry Local's own runtime was loaded first in this process
        raise WizardError(_("onnxruntime-genai cannot be loaded here ({error}).").format(
                              error=str(exc).splitlines()[0][-60:]),
                          _("Restart slmops and open the Chat step first, or deploy the model.")) from None
