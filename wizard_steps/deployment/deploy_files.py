"""What a deployed model folder holds besides the converted model: the tutorial's
``inference_model.json``, the chosen prompt template as the folder's chat template, and the
generation settings in genai_config.json ``search``; plus deploy names and the staged copy.

Foundry Local builds the prompt from the folder's chat template and takes its generation defaults
from genai_config.json, and keeps inference_model.json as metadata only, so all three are written.
Every file is written atomically (temp file + ``os.replace``) and only ever into a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.conversion.convert import precision_in_config
from wizard_steps.core.errors import Cancelled, DeployError
from wizard_steps.core.events import LogLine, Progress
from wizard_steps.core.i18n import N_, _
from wizard_steps.model.model_source import folder_size, read_chat_template
from wizard_steps.prompt.template_diff import compare_with_folder, explain, template_label
from wizard_steps.prompt.templates import ModelConfig, PromptTemplate, chat_template_for
from wizard_steps.runtime.last_logits import keep_last_logits

INFERENCE_MODEL_JSON = "inference_model.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
GENAI_CONFIG = "genai_config.json"
TOP_KEYS = ("Name", "Description", "Version", "PromptTemplate", "ModelConfig")
MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}
_NAME_RULE = N_("Use letters, digits, '-', '_' and '.', starting with a letter or digit (e.g. smollm2-demo).")
_CHUNK = 8 * 1024 * 1024


def validate_name(name: str) -> str:
    """A deploy name as Foundry Local and every file system accept it; raises DeployError."""
    if not isinstance(name, str) or not name.strip():
        raise DeployError(_("No deploy name was given."), _("Type a name such as smollm2-demo."))
    if len(name) > MAX_NAME:
        raise DeployError(_("The name {start!r}... is {length} characters long; at most {most} are "
                            "allowed.").format(start=name[:20], length=len(name), most=MAX_NAME),
                          _("Choose a shorter name."))
    if not _NAME.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
        what = (_("The name {name!r} has characters that are not allowed ({characters}).") if bad
                else _("The name {name!r} must start with a letter or a digit."))
        raise DeployError(what.format(name=name, characters=" ".join(repr(c) for c in bad)), _(_NAME_RULE))
    if name.endswith(".") or name.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise DeployError(_("The name {name!r} cannot be a folder name on Windows.").format(name=name),
                          _("End it with a letter or digit and avoid CON, NUL, COM1 and the like."))
    return name


def check_model_folder(folder: str | os.PathLike[str]) -> Path:
    """A converted ONNX folder Foundry Local can register (it must hold genai_config.json)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DeployError(_("The model folder {path} does not exist.").format(path=path),
                          _("Convert the model first, or point to the converted folder."))
    if not (path / GENAI_CONFIG).is_file():
        raise DeployError(_("{path} has no {file}, so it is not a converted ONNX model folder that "
                            "Foundry Local can load.").format(path=path, file=GENAI_CONFIG),
                          _("Point to the conversion step's output folder (it holds model.onnx and "
                            "{file}).").format(file=GENAI_CONFIG))
    return path.resolve()


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(_("{path} does not exist.").format(path=path), _("Deploy the model again.")) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployError(_("{path} cannot be read as JSON ({error}).").format(path=path, error=exc),
                          _("Restore it from the converted folder, or deploy again.")) from None
    if not isinstance(data, dict):
        raise DeployError(_("{path} does not hold a JSON object.").format(path=path),
                          _("Deploy the model again."))
    return data


# --- inference_model.json -----------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceModel:
    """The tutorial's inference_model.json."""

    name: str
    description: str
    version: str
    template: PromptTemplate
    model_config: ModelConfig

    def to_json(self) -> dict[str, object]:
        return {"Name": self.name, "Description": self.description, "Version": self.version,
                "PromptTemplate": self.template.to_json(), "ModelConfig": self.model_config.to_json()}


def write_inference_model_json(folder: Path, name: str, description: str, version: str | int,
                               template: PromptTemplate, model_config: ModelConfig) -> Path:
    """Write ``folder/inference_model.json`` in exactly the tutorial's shape, atomically."""
    record = InferenceModel(validate_name(name), description, str(version), template.validate(),
                            model_config.validate())
    path = Path(folder) / INFERENCE_MODEL_JSON
    _write_json(path, record.to_json())
    return path


def read_inference_model_json(folder: Path) -> InferenceModel:
    data = _read_json(Path(folder) / INFERENCE_MODEL_JSON)
    try:
        template, config = data["PromptTemplate"], data["ModelConfig"]
        return InferenceModel(str(data["Name"]), str(data["Description"]), str(data["Version"]),
                              PromptTemplate(**{k: template[k] for k in PromptTemplate.__annotations__}),
                              ModelConfig(**{k: config[k] for k in ModelConfig.__annotations__}))
    except (KeyError, TypeError) as exc:
        raise DeployError(_("{file} in {folder} lacks the key {key}.").format(
                              file=INFERENCE_MODEL_JSON, folder=folder, key=exc),
                          _("Deploy the model again to rewrite it.")) from None


# --- the chat template and the generation settings ----------------------------------------------


TEMPLATE_SOURCES = ("preset", "model")  # the chosen template, or the model folder's own


@dataclass(frozen=True)
class TemplateReport:
    """How the chosen template compares with the folder's own chat template, in plain words."""

    agrees: bool
    notes: tuple[str, ...]


def check_template_source(source: str, folder: Path) -> str:
    """``preset`` or ``model``; ``model`` needs a chat template in the folder. Raises DeployError."""
    if source not in TEMPLATE_SOURCES:
        raise DeployError(_("The template source {source!r} is unknown.").format(source=source),
                          _("Choose model (keep the model's own chat template) or preset."))
    if source == "model" and read_chat_template(Path(folder)) is None:
        raise DeployError(_("The model folder has no chat template of its own to keep."),
                          _("Deploy with the chosen template instead (template source: preset)."))
    return source


def compare_template(template: PromptTemplate, folder: Path, source: str = "preset") -> TemplateReport:
    """Compare the template with the folder's own chat template (on conversations with and without
    a system prompt) and say what differs and which one Foundry Local will use."""

    label = template_label(template, Path(folder))
    difference = compare_with_folder(template, Path(folder))
    if difference is None:
        return TemplateReport(False, (_("The folder had no chat template; {label} is written as its "
                                        "chat template.").format(label=label),))
    if difference.agrees:
        return TemplateReport(True, (_("The model's own chat template builds the same prompts as "
                                       "{label}.").format(label=label),))
    said = list(explain(difference, label))
    if source == "model":
        said.append(_("Foundry Local uses the model's own chat template (kept); inference_model.json's "
                      "PromptTemplate is {label}, which Foundry keeps as metadata only. Answers may "
                      "differ from those the wizard's preview showed.").format(label=label))
    else:
        said.append(_("Answers may differ: Foundry Local now uses {label}, which replaced the model's "
                      "own chat template in the deployed copy. Choose the model's own template to "
                      "keep it.").format(label=label))
    return TemplateReport(False, tuple(said))


def apply_template_and_settings(folder: Path, template: PromptTemplate, model_config: ModelConfig,
                                source: str = "preset") -> TemplateReport:
    """Make the folder default to the chosen settings (genai_config.json ``search``) and talk in
    the chosen template: with ``preset``, its Jinja chat template replaces the folder's
    (chat_template.jinja, and tokenizer_config.json when it keeps one there); with ``model`` the
    folder's own stays. Returns the comparison made beforehand."""
    folder = Path(folder)
    genai = _read_json(folder / GENAI_CONFIG)
    model_config.validate(_context_of(genai))
    report = compare_template(template.validate(), folder, check_template_source(source, folder))
    if source == "preset":
        jinja = chat_template_for(template)
        atomic_write_text(folder / CHAT_TEMPLATE_FILE, jinja)
        tokenizer_config = folder / "tokenizer_config.json"
        if tokenizer_config.is_file():
            data = _read_json(tokenizer_config)
            if "chat_template" in data:
                data["chat_template"] = jinja
                _write_json(tokenizer_config, data)
    search = genai.get("search")
    if not isinstance(search, dict):
        search = {}
    genai["search"] = {**search, **model_config.to_genai_search()}
    _bound_context(genai, model_config.max_length)
    _write_json(folder / GENAI_CONFIG, genai)
    return report


def cut_to_last_logits(copy: Path) -> Iterator[LogLine]:
    """The copy's graph cut to compute the logits of the last position only (``last_logits``),
    said in the log when it was."""
    if keep_last_logits(copy):
        yield LogLine(_("The copy computes the logits of the prompt's last position only: "
                        "less memory for a long prompt, the same replies."))


def _context_of(genai: dict) -> int | None:
    model = genai.get("model")
    context = model.get("context_length") if isinstance(model, dict) else None
    return context if isinstance(context, int) and context > 0 else None


def context_length(folder: Path) -> int | None:
    """The context a converted folder's model allows (genai_config.json), None when it says none."""
    try:
        return _context_of(_read_json(Path(folder) / GENAI_CONFIG))
    except DeployError:
        return None


def _bound_context(genai: dict, tokens: int) -> None:
    """The context the deployed model allocates: ``max_length`` (prompt and reply together) is the
    most a conversation may hold, so the model's ``context_length`` comes down to it. Foundry Local
    and onnxruntime-genai size the key-value cache by these (with a shared buffer, for the whole
    length up front): the demo keeps 46 kB of fp32 cache per token, 377 MB for its 8192 tokens
    and 94 MB for 2048."""
    model = genai.get("model")
    if isinstance(model, dict):
        context = model.get("context_length")
        model["context_length"] = min(context, tokens) if isinstance(context, int) and context > 0 else tokens
    search = genai.setdefault("search", {})
    if isinstance(search, dict):
        search["max_length"] = tokens


def set_context_length(folder: Path, tokens: int) -> None:
    """Bound a converted folder's context to ``tokens`` (a copy's: deploy and the benchmarks)."""
    path = Path(folder) / GENAI_CONFIG
    genai = _read_json(path)
    _bound_context(genai, tokens)
    _write_json(path, genai)


# --- precision of a folder ----------------------------------------------------------------------

_PRECISION_IN_NAME = re.compile(r"(?:^|[-_.])(fp32|fp16|bf16|int8|int4)(?:$|[-_.])", re.I)


def detect_precision(folder: Path) -> str | None:
    """int4/int8/fp16/fp32 from the Olive config kept in the folder, else from folder names."""
    saved = precision_in_config(folder)
    if saved:
        return saved.lower()
    for part in (folder.name, folder.parent.name, folder.parent.parent.name):
        match = _PRECISION_IN_NAME.search(part)
        if match:
            return match.group(1).lower()
    return None


# --- the staged copy ----------------------------------------------------------------------------


def staged_copy(source: Path, target: Path, cancel: threading.Event | None = None,
                span: tuple[float, float] = (0.0, 1.0)) -> Generator[Progress, None, Path]:
    """Copy ``source`` into a fresh staging folder beside ``target``; yields Progress by bytes.
    Returns (as the generator's value) the staging folder; the caller renames it into place and
    removes it on failure. Raises Cancelled (after removing the staging folder) on cancel."""
    staging = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:8]}"
    total = max(folder_size(source), 1)
    done = 0
    low, high = span
    try:
        staging.mkdir(parents=True)
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                continue
            if path.is_dir():
                (staging / relative).mkdir(parents=True, exist_ok=True)
                continue
            with path.open("rb") as src, (staging / relative).open("xb") as dst:
                while chunk := src.read(_CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(_("The deployment was cancelled; nothing was kept."))
                    dst.write(chunk)
                    done += len(chunk)
                    yield Progress(_("Copying {file}").format(file=relative.as_posix()),
                                   low + (high - low) * done / total)
            shutil.copystat(path, staging / relative)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging
