"""The tutorial's route where the ``foundry`` CLI is installed (Windows, macOS): the model folder
with its inference_model.json under ``<foundry cache>/custom/<name>/``, checked with
``foundry cache ls``. The folder gets the same chat template and settings as an SDK deploy."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core.errors import Cancelled, DeployError, WizardError
from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress
from wizard_steps.core.i18n import _
from wizard_steps.deployment.deploy_files import (
    apply_template_and_settings,
    check_model_folder,
    check_template_source,
    cut_to_last_logits,
    staged_copy,
    validate_name,
    write_inference_model_json,
)
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt.templates import ModelConfig, PromptTemplate
from wizard_steps.runtime.foundry import SDK_HINT, sdk_available

CUSTOM_DIR = "custom"
_TIMEOUT_S = 120
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def foundry_executable() -> str | None:
    return shutil.which("foundry")


def choose_backend() -> str:
    """"cli" where the ``foundry`` CLI is on PATH, else "sdk" where foundry-local-sdk is
    installed; raises DeployError when neither is there."""
    if foundry_executable():
        return "cli"
    if sdk_available():
        return "sdk"
    raise DeployError(_("Neither the foundry CLI nor the Foundry Local SDK is installed."),
                      _("Install Foundry Local (winget install Microsoft.FoundryLocal), or {hint}").format(
                          hint=_(SDK_HINT)))


def run_foundry(*args: str, executable: str | None = None) -> str:
    """Run ``foundry ARGS`` and return its output without colour codes; raises DeployError."""
    exe = executable or foundry_executable()
    if exe is None:
        raise DeployError(_("The foundry CLI is not on PATH."),
                          _("Install Foundry Local, or deploy through the SDK instead."))
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    except subprocess.TimeoutExpired:
        raise DeployError(_("`foundry {args}` did not answer within {seconds} s.").format(
                              args=" ".join(args), seconds=_TIMEOUT_S),
                          _("Check that the Foundry Local service starts (foundry service status).")) from None
    except OSError as exc:
        raise DeployError(_("`foundry {args}` could not run ({error}).").format(
                              args=" ".join(args), error=exc.strerror or exc),
                          _("Reinstall Foundry Local.")) from None
    output = _ANSI.sub("", done.stdout or "")
    if done.returncode != 0:
        last = next((line for line in reversed(((done.stderr or "") + output).splitlines())
                     if line.strip()), _("exit code {code}").format(code=done.returncode))
        raise DeployError(_("`foundry {args}` failed: {error}").format(args=" ".join(args), error=last.strip()),
                          _("Run it in a terminal to see the whole message."))
    return output


def cache_location(executable: str | None = None) -> Path:
    """The Foundry cache from ``foundry cache location`` ("Cache directory path: DIR")."""
    output = run_foundry("cache", "location", executable=executable)
    match = re.search(r"Cache directory path:\s*(.+)", output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    raw = match.group(1).strip() if match else (lines[-1] if lines else "")
    path = Path(raw.strip("'\"")).expanduser()
    if not raw or not path.is_absolute():
        raise DeployError(_("`foundry cache location` gave no folder ({output!r}).").format(
                              output=output.strip()[:80]),
                          _("Run it in a terminal and check the Foundry Local installation."))
    return path


def cache_list(executable: str | None = None) -> list[str]:
    """The model lines of ``foundry cache ls`` (header and blank lines left out)."""
    output = run_foundry("cache", "ls", executable=executable)
    skip = ("models cached on device", "alias", "no models cached")
    return [line.strip() for line in output.splitlines()
            if line.strip() and not line.strip().lower().startswith(skip)
            and set(line.strip()) - set("-─—_=· ")]


def listed(name: str, lines: list[str]) -> str | None:
    """The ``cache ls`` line that names this model, if any (custom models may show as
    "Model was not found in catalog<name>", the name glued to the text)."""
    pattern = re.compile(rf"(?:^|\s|catalog){re.escape(name)}(?::\d+)?(?:\s|$)")
    return next((line for line in lines if pattern.search(line)), None)


@dataclass(frozen=True)
class PlacedResult:
    """A model folder placed in the foundry CLI's cache and listed by ``foundry cache ls``."""

    name: str
    path: str
    cache_dir: str
    listed_as: str
    size_bytes: int
    run_command: str

    def to_json(self) -> dict[str, object]:
        return dict(vars(self))


def deploy_with_cli(folder: Path | str, name: str, template: PromptTemplate,
                    model_config: ModelConfig, description: str = "", version: str = "1",
                    cancel: threading.Event | None = None, replace: bool = False,
                    executable: str | None = None,
                    template_source: str = "preset") -> Iterator[Event[PlacedResult]]:
    """Place the model under ``<cache>/custom/<name>/`` and check that ``foundry cache ls``
    lists it. Yields Progress and LogLine, then Finished(path, PlacedResult) or Failed."""
    try:
        source = check_model_folder(folder)
        validate_name(name)
        template.validate()
        model_config.validate()
        check_template_source(template_source, source)
        yield Progress(_("Asking foundry where its cache is"), 0.0)
        cache = cache_location(executable)
        target = cache / CUSTOM_DIR / name
        if target.exists() and not replace:
            raise DeployError(_("A model named {name} is already in the Foundry cache ({folder}).").format(
                                  name=name, folder=target),
                              _("Choose another name, or ask to replace it."))
        target.parent.mkdir(parents=True, exist_ok=True)
    except WizardError as exc:
        yield Failed(str(exc))
        return
    except OSError as exc:
        yield Failed(_("The Foundry cache cannot be written ({error}).").format(error=exc.strerror or exc))
        return
    staging = old = None
    placed = False
    try:
        staging = yield from staged_copy(source, target, cancel, (0.05, 0.8))
        yield Progress(_("Writing inference_model.json, the chat template and the settings"), 0.82)
        write_inference_model_json(staging, name, description or f"{name}, deployed by slmops",
                                   version, template, model_config)
        for note in apply_template_and_settings(staging, template, model_config,
                                                template_source).notes:
            yield LogLine(note)
        yield from cut_to_last_logits(staging)
        if cancel is not None and cancel.is_set():
            raise Cancelled(_("The deployment was cancelled; nothing was kept."))
        if target.exists():
            old = target.with_name(f".{name}.old-{os.getpid()}")
            os.replace(target, old)
        os.rename(staging, target)
        placed, staging = True, None
        yield Progress(_("Checking with foundry cache ls"), 0.9)
        line = listed(name, cache_list(executable))
        if line is None:
            raise DeployError(_("`foundry cache ls` does not list {name} after it was placed in {folder}.").format(
                                  name=name, folder=target),
                              _("Run foundry cache ls in a terminal to see why."))
        yield LogLine(f"foundry cache ls: {line}")
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if placed:
            shutil.rmtree(target, ignore_errors=True)
        if old is not None:
            with contextlib.suppress(OSError):
                os.replace(old, target)
        if not isinstance(exc, Exception):  # GeneratorExit, KeyboardInterrupt
            raise
        cancelled = isinstance(exc, Cancelled)
        yield Failed(_("The deployment was cancelled; nothing was kept.") if cancelled else
                     str(exc) if isinstance(exc, WizardError) else
                     _("Placing the model in the Foundry cache failed ({error}).").format(error=exc),
                     cancelled=cancelled)
        return
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    yield Progress(_("Deployed"), 1.0)
    yield Finished(target, PlacedResult(name, str(target), str(cache), line, folder_size(target),
                                        f"foundry model run {name}"))
