"""Deployment to Foundry Local: a copy of the converted folder in the Foundry cache, with the
tutorial's inference_model.json, the chosen chat template and generation settings, registered in
the LOCAL catalog as ``<name>:<version>``, loaded, and proven by one short answer.

Layout: ``<cache>/slmops/<name>/<version>/``; every deploy of a name makes the next version and
never touches earlier versions, other models or the user's converted folder. A failed or cancelled
deploy removes its copy and leaves the registry file byte for byte as it was.

``deploy_with_cli`` (in ``foundry_cli``) is the tutorial's route where the ``foundry`` CLI is
installed (Windows, macOS); ``choose_backend`` picks between the two.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from wizard_steps.conversion.precision import human_size
from wizard_steps.core import paths
from wizard_steps.core.errors import Cancelled, DeployError, WizardError
from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress, R
from wizard_steps.core.i18n import N_, _
from wizard_steps.deployment.deploy_files import (
    TEMPLATE_SOURCES,
    InferenceModel,
    apply_template_and_settings,
    check_model_folder,
    check_template_source,
    context_length,
    cut_to_last_logits,
    detect_precision,
    read_inference_model_json,
    staged_copy,
    validate_name,
    write_inference_model_json,
)
from wizard_steps.deployment.foundry_cli import choose_backend, deploy_with_cli
from wizard_steps.measurement.tune_quick import QuickTune, describe, needs_tuning, quick
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt.templates import ModelConfig, PromptTemplate
from wizard_steps.runtime.foundry import REGISTRY_FILE, SDK_HINT, FoundryChat, FoundryRuntime, Usage, sdk_available

__all__ = ["TEMPLATE_SOURCES", "DeployedModel", "InferenceModel", "check_request", "choose_backend",
           "deploy", "deploy_with_cli", "finish",
           "list_deployed", "read_inference_model_json", "undeploy", "validate_name",
           "write_inference_model_json"]

MANAGED_DIR = "slmops"
PROOF_PROMPT = "Say hello."  # sent to the model: stays English
PROOF_TOKENS = 16
CANCELLED = N_("The deployment was cancelled; nothing was kept.")  # shown with _()


@dataclass(frozen=True)
class DeployedModel:
    """One registration in a Foundry cache, as ``foundry cache ls`` shows it."""

    id: str
    name: str
    version: int
    display_name: str
    path: Path
    precision: str | None
    size_bytes: int
    managed: bool  # its files are slmops' copy (undeploy removes them)


def _cache(cache_dir: Path | str | None) -> Path:
    return Path(cache_dir or paths.foundry_cache_dir()).expanduser().resolve()


def _entries(cache: Path) -> list[dict]:
    path = cache / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployError(_("The Foundry registry {path} cannot be read ({error}).").format(path=path, error=exc),
                          _("Restore it from a backup, or remove it and deploy again.")) from None
    models = data.get("models") if isinstance(data, dict) else None
    return [m for m in models or [] if isinstance(m, dict) and isinstance(m.get("model_info"), dict)]


def list_deployed(cache_dir: Path | str | None = None) -> list[DeployedModel]:
    """Every model registered in the cache, read from its registry file and folders (fast: the
    native runtime is not started)."""
    cache = _cache(cache_dir)
    managed_root = cache / MANAGED_DIR
    found = []
    for entry in _entries(cache):
        info = entry["model_info"]
        model_id = str(info.get("id", ""))
        name, _, version = model_id.partition(":")
        path = Path(str(entry.get("model_path", "")))
        props = info.get("stringProperties") if isinstance(info.get("stringProperties"), dict) else {}
        exists = path.is_dir()
        found.append(DeployedModel(
            model_id, str(info.get("name") or name), int(info.get("version") or version or 0),
            str(info.get("displayName") or props.get("display_name") or name), path,
            detect_precision(path) if exists else None, folder_size(path) if exists else 0,
            managed_root in path.parents))
    return sorted(found, key=lambda m: (m.name.lower(), m.version))


def next_version(name: str, cache_dir: Path | str | None = None) -> int:
    """One more than any version of ``name`` registered or present on disk."""
    cache = _cache(cache_dir)
    versions = [m.version for m in list_deployed(cache) if m.name == name]
    folder = cache / MANAGED_DIR / name
    if folder.is_dir():
        versions += [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
    return max(versions, default=0) + 1


def _check_writable(cache: Path) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".slmops-probe-", dir=cache)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise DeployError(_("The Foundry cache folder {cache} cannot be written ({error}).").format(
                              cache=cache, error=exc.strerror or exc),
                          _("Choose a folder you can write to, or fix its permissions.")) from None


class _Registry:
    """The registry file's bytes before a deploy, to put back exactly if the deploy fails."""

    def __init__(self, cache: Path) -> None:
        self.path, self.lock = cache / REGISTRY_FILE, cache / REGISTRY_FILE.replace(".json", ".lock")
        self.before = self.path.read_bytes() if self.path.exists() else None
        self.lock_existed = self.lock.exists()

    @staticmethod
    def _ids(data: bytes | None) -> set[str] | None:
        """The model ids in the registry's bytes; None when they cannot be read."""
        try:
            return {str(m["model_info"]["id"]) for m in json.loads(data)["models"]} if data else set()
        except (ValueError, KeyError, TypeError):
            return None

    def restore(self, ours: str | None = None) -> None:
        """Put the bytes back, unless another process registered or removed a model meanwhile:
        then the file, from which ``ours`` is already unregistered, stays as it is."""
        now = self.path.read_bytes() if self.path.exists() else None
        if now == self.before:
            return
        now_ids = self._ids(now)
        if now_ids is not None and now_ids - ({ours} if ours else set()) != self._ids(self.before):
            return
        if self.before is None:
            self.path.unlink(missing_ok=True)
            if not self.lock_existed:
                self.lock.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(f".{self.path.name}.restore")
        tmp.write_bytes(self.before)
        os.replace(tmp, self.path)


def finish(events: Iterator[Event[R]]) -> Finished[R]:
    """Drive a deploy to its end; raises DeployError (or Cancelled) instead of yielding Failed."""
    try:
        for event in events:
            if isinstance(event, Failed):
                raise (Cancelled if event.cancelled else DeployError)(event.reason)
            if isinstance(event, Finished):
                return event
        raise DeployError(_("The deployment ended without a result."))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def check_request(folder: Path | str, name: str, template: PromptTemplate, model_config: ModelConfig,
                  template_source: str = "preset") -> Path:
    """Every part of a deploy request the user typed (folder, name, template, settings, template
    source), checked before anything runs; raises WizardError. Returns the folder, resolved."""
    source = check_model_folder(folder)
    validate_name(name)
    template.validate()
    model_config.validate(context_length(source))  # max_length is the context the copy allocates
    check_template_source(template_source, source)
    return source


@dataclass(frozen=True)
class DeployResult:
    """A model registered with Foundry Local through its SDK, loaded, and shown to answer: its id
    and version, where it lives, how long the load took, the proof prompt and reply, whether the
    chosen template agrees with the folder's own (and how it differs), and the short tuning of the
    copy (None when the folder was tuned before, or tuning was off)."""

    model_id: str
    name: str
    version: int
    display_name: str
    path: str
    cache_dir: str
    size_bytes: int
    precision: str | None
    load_s: float
    proof_prompt: str
    proof_reply: str
    first_reply_s: float
    proof_usage: Usage | None
    template_agrees: bool
    template_notes: tuple[str, ...]
    template_source: str
    duration_s: float
    tuned: QuickTune | None = None

    def to_json(self) -> dict[str, object]:
        data = {k: v for k, v in vars(self).items() if k not in ("proof_usage", "tuned")}
        data["template_notes"] = list(self.template_notes)
        data["proof_usage"] = asdict(self.proof_usage) if self.proof_usage is not None else None
        if self.tuned is not None:
            data["tuned"] = self.tuned.to_json()
        return data


def deploy(folder: Path | str, name: str, template: PromptTemplate, model_config: ModelConfig,
           cache_dir: Path | str | None = None, description: str = "",
           cancel: threading.Event | None = None, display_name: str | None = None,
           keep_loaded: bool = False, template_source: str = "preset",
           tune: bool = True) -> Iterator[Event[DeployResult]]:
    """Deploy a converted folder through the Foundry Local SDK as the next version of ``name``.
    ``template_source`` "preset" writes ``template`` as the copy's chat template, "model" keeps the
    folder's own. With ``tune``, a folder never tuned on this machine gets the default road's short
    tuning on its copy (the user's folder stays as it is). The copy's graph computes the logits of
    the last position only (``last_logits``: a long prompt's memory). Yields Progress and LogLine, then
    Finished(path, DeployResult) or Failed."""
    started = time.monotonic()
    try:
        source = check_request(folder, name, template, model_config, template_source)
        if not sdk_available():
            raise DeployError(_("The Foundry Local SDK (foundry-local-sdk) is not installed."), _(SDK_HINT))
        cache = _cache(cache_dir)
        _check_writable(cache)
        version = next_version(name, cache)
    except WizardError as exc:
        yield Failed(str(exc))
        return
    model_id, target = f"{name}:{version}", cache / MANAGED_DIR / name / str(version)
    display = display_name or f"{name} v{version}"
    registry = _Registry(cache)
    created = [p for p in (cache / MANAGED_DIR, target.parent) if not p.exists()]
    runtime: FoundryRuntime | None = None
    chat: FoundryChat | None = None
    registered = placed = False
    staging = None
    try:
        yield Progress(_("Copying the model into the Foundry cache as {model}").format(model=model_id), 0.0)
        staging = yield from staged_copy(source, target, cancel, (0.0, 0.6))
        yield Progress(_("Writing inference_model.json, the chat template and the settings"), 0.62)
        write_inference_model_json(staging, name, description or f"{name}, deployed by slmops",  # file
                                   version, template, model_config)
        report = apply_template_and_settings(staging, template, model_config, template_source)
        for note in report.notes:
            yield LogLine(note)
        yield from cut_to_last_logits(staging)
        _raise_if(cancel)
        tuned = (yield from _tune_copy(staging, template, cancel)) if tune else None
        _raise_if(cancel)
        try:
            os.rename(staging, target)  # fails if another deploy took this version meanwhile
        except OSError:
            if not target.exists():
                raise
            raise DeployError(_("Another deployment took {model_id} at the same time.").format(
                model_id=model_id), _("Deploy again: it becomes the next version.")) from None
        placed, staging = True, None
        yield LogLine(_("Copied {size} to {folder}").format(size=human_size(folder_size(target)), folder=target))
        _raise_if(cancel)
        yield Progress(_("Registering {model} in the local catalog").format(model=model_id), 0.7)
        runtime = FoundryRuntime.open(cache)
        runtime.register(target, model_id, display)
        registered = True
        _raise_if(cancel)
        yield Progress(_("Loading the model"), 0.75)
        chat = FoundryChat(runtime, model_id)
        yield LogLine(_("Loaded {model} in {seconds} s").format(model=model_id, seconds=f"{chat.load_s:.2f}"))
        _raise_if(cancel)
        yield Progress(_("Asking it: {prompt}").format(prompt=PROOF_PROMPT), 0.85)
        proof = chat.reply(PROOF_PROMPT, max_output_tokens=PROOF_TOKENS, do_sample=False)
        _raise_if(cancel)
        if not proof.text.strip():
            raise DeployError(_("{model} loaded but answered {prompt!r} with no text.").format(
                                  model=model_id, prompt=PROOF_PROMPT),
                              _("Check the chat template and the conversion's validation output."))
        yield LogLine(_("Reply: {text}").format(text=proof.text.strip()))
        chat.close(unload=not keep_loaded)
    except BaseException as exc:
        # Undo before reporting: a caller may stop at Failed and never resume this generator.
        _undo(runtime, chat, model_id if registered else None,
              [p for p in (staging, target if placed else None) if p], created, registry)
        if not isinstance(exc, Exception):  # GeneratorExit, KeyboardInterrupt
            raise
        yield _failure(exc)
        return
    size = folder_size(target)
    yield Progress(_("Deployed"), 1.0)
    yield Finished(target, DeployResult(
        model_id=model_id, name=name, version=version, display_name=display, path=str(target),
        cache_dir=str(cache), size_bytes=size, precision=detect_precision(target), load_s=round(chat.load_s, 3),
        proof_prompt=PROOF_PROMPT, proof_reply=proof.text.strip(),
        first_reply_s=round(proof.first_token_s or proof.total_s, 3), proof_usage=proof.usage,
        template_agrees=report.agrees, template_notes=tuple(report.notes), template_source=template_source,
        duration_s=round(time.monotonic() - started, 1), tuned=tuned))


def _tune_copy(staging: Path, template: PromptTemplate,
               cancel: threading.Event | None) -> Generator[Progress | LogLine, None, QuickTune | None]:
    """The default road's short tuning on the deployed copy of a folder that was never tuned
    here (converted with --no-tune, elsewhere, or by hand); what it did, None if it did not run."""
    if not needs_tuning(staging):
        return None
    tuned = yield from quick(staging, cancel=cancel, template=template, at=0.65)
    if not tuned.cancelled:
        yield LogLine(_("The deployed copy is {line}; your converted folder is left as it was.").format(
            line=describe(tuned)))
    return tuned


def _failure(exc: Exception) -> Failed:
    if isinstance(exc, Cancelled):
        return Failed(_(CANCELLED), cancelled=True)
    if isinstance(exc, WizardError):
        return Failed(str(exc))
    if isinstance(exc, OSError):
        return Failed(_("Writing the deployed copy failed ({error}).").format(error=exc.strerror or exc))
    return Failed(_("The deployment failed: {error}").format(error=f"{type(exc).__name__}: {exc}").splitlines()[0])


def _raise_if(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(_(CANCELLED))


def _undo(runtime: FoundryRuntime | None, chat: FoundryChat | None, model_id: str | None,
          folders: list[Path], created: list[Path], registry: _Registry) -> None:
    """Put everything back as it was: unload, unregister, remove the copy, restore the registry."""
    with contextlib.suppress(Exception):
        if chat is not None:
            chat.close(unload=True)
    if runtime is not None and model_id is not None:
        with contextlib.suppress(Exception):
            runtime.unregister(model_id)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    for folder in reversed(created):  # the name's and slmops' folders, when this deploy made them
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        registry.restore(model_id)


def undeploy(name_or_id: str, cache_dir: Path | str | None = None) -> list[str]:
    """Remove one version (``name:3``) or every version of a name: its registration and, when
    the files are slmops' copy, its folder. Other models stay. Returns the ids removed."""
    name, _colon, version = name_or_id.partition(":")
    validate_name(name)
    if version and not version.isdigit():
        raise DeployError(_("{name!r} has no whole-number version after the colon.").format(name=name_or_id),
                          _("Write it as name:3, or give the name alone to remove every version."))
    cache = _cache(cache_dir)
    matches = [m for m in list_deployed(cache)
               if m.name == name and (not version or m.version == int(version))]
    if not matches:
        raise DeployError(_("No deployed model {name} is registered in {cache}.").format(
                              name=name_or_id, cache=cache),
                          _("List the deployed models to see their names and versions."))
    runtime = FoundryRuntime.open(cache)
    for model in matches:
        runtime.unregister(model.id)
        if model.managed:
            shutil.rmtree(model.path, ignore_errors=True)
    parent = cache / MANAGED_DIR / name
    with contextlib.suppress(OSError):
        parent.rmdir()  # only when no version is left
    return [m.id for m in matches]
