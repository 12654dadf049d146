"""The answers file: every choice of the wizard in one TOML file, so that a run done once by hand
can be replayed unattended on thirty machines (``slmops run --answers wizard.toml``)."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from wizard_steps.conversion.precision import (
    ACCURACY_LEVELS,
    ALGORITHM_ORDER,
    BLOCK_SIZES,
    Int4Algorithm,
    Int4Settings,
    Precision,
    best_settings,
)
from wizard_steps.core.errors import PlanError, WizardError
from wizard_steps.core.i18n import _, current_language

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class AnswersError(WizardError):
    """The answers file has an unknown key or a bad value."""


# The INT4 settings sit in their own table ([int4]); files written before it used flat int4_* keys,
# which still load. Their allowed values come from wizard_steps.conversion.precision.
INT4_KEYS = {"algorithm": "str", "block_size": "int", "symmetric": "bool", "accuracy_level": "int",
             "quantize_embeddings": "bool"}
_FLAT_INT4 = {f"int4_{key}": key for key in INT4_KEYS}
_INT4_CHOICES: dict[str, tuple[object, ...]] = {
    "algorithm": tuple(a.value for a in ALGORITHM_ORDER), "block_size": BLOCK_SIZES,
    "accuracy_level": tuple(ACCURACY_LEVELS),
}
# precision = "auto": INT4 and INT8 measured on this machine (the comparison), the fastest that passes
# the checklist taken (wizard_steps.road.unattended.measured_choice); the default road
MEASURED = "auto"
PRECISIONS = (MEASURED, *(p.value for p in Precision))
_CHOICES: dict[str, tuple[object, ...]] = {
    "precision": PRECISIONS,
    **{f"int4.{key}": values for key, values in _INT4_CHOICES.items()},
    **{f"int4_{key}": values for key, values in _INT4_CHOICES.items()},
    "template": ("chatml", "phi3", "llama3", "mistral", "gemma", "auto"),
    "template_source": ("preset", "model"),
    "method": ("config", "auto-opt"),
    "lang": ("en", "tr"),
}
_RANGES: dict[str, tuple[float, float]] = {
    "max_length": (16, 131072), "temperature": (0.0, 2.0), "top_p": (0.01, 1.0),
    "repetition_penalty": (1.0, 2.0), "bench_runs": (1, 1000), "bench_new_tokens": (1, 4096),
}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int, "float": (int, float), "bool": bool, "str": str, "list[int]": list,
}


@dataclass(frozen=True)
class Answers:
    """Every choice; ``model`` is a folder (a model or a LoRA adapter) or "demo"."""

    model: str = "demo"
    base: str = ""  # a LoRA adapter's base folder, when its adapter_config.json names none found here
    precision: str = MEASURED  # or a Precision's value
    method: str = "config"
    template: str = "auto"
    template_source: str = "preset"  # the deployed chat template: the preset, or the model's own
    max_length: int = 2048
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    output_dir: str = ""
    deploy_name: str = ""
    bench_lengths: list[int] = field(default_factory=lambda: [16, 128, 512])
    bench_runs: int = 3
    bench_new_tokens: int = 64
    tune: bool = True  # the short thread tuning right after the conversion (false: as Olive wrote it)
    lang: str = field(default_factory=current_language)  # a file without it keeps the language in use
    # "auto" (precision.RECOMMENDED_INT4) is chosen by the model's architecture and brings its own
    # block size and symmetry; a named algorithm takes them from here
    int4: Int4Settings = field(default_factory=Int4Settings)


def _type_name(kind: object) -> str:
    return {"int": _("a whole number"), "float": _("a number"), "bool": _("true or false"),
            "str": _("a string"), "list[int]": _("a list of whole numbers")}.get(str(kind), str(kind))


def _check(key: str, value: object, kind: str) -> object:
    expected = _TYPES[kind]
    if (isinstance(value, bool) and kind in ("int", "float")) or not isinstance(value, expected):
        raise AnswersError(_("'{key}' must be {kind}, not {value!r}.").format(
                               key=key, kind=_type_name(kind), value=value),
                           _("Fix '{key}' in the answers file.").format(key=key))
    if kind == "list[int]" and isinstance(value, list) and (not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in value)):
        raise AnswersError(_("'{key}' must list whole numbers of 8 or more, not {value!r}.").format(
                               key=key, value=value),
                           _("For example: bench_lengths = [16, 128, 512]"))
    if key in _CHOICES and value not in _CHOICES[key]:
        allowed = ", ".join(map(str, _CHOICES[key]))
        raise AnswersError(_("'{key}' = {value!r} is not allowed; choose one of: {allowed}.").format(
                               key=key, value=value, allowed=allowed),
                           _("Fix '{key}' in the answers file.").format(key=key))
    if key in _RANGES and isinstance(value, (int, float)):  # every key with a range is a number (checked above)
        low, high = _RANGES[key]
        if not low <= float(value) <= high:
            raise AnswersError(_("'{key}' = {value!r} is out of range; allowed: {low} to {high}.").format(
                                   key=key, value=value, low=f"{low:g}", high=f"{high:g}"),
                               _("Fix '{key}' in the answers file.").format(key=key))
    return float(value) if kind == "float" and isinstance(value, (int, float)) else value


def parse(text: str, source: str | None = None) -> Answers:
    source = source or _("the answers file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnswersError(_("{source} is not valid TOML ({error}).").format(source=source, error=exc),
                           _("Fix the line it names.")) from None
    known = {f.name: str(f.type) for f in fields(Answers) if f.name != "int4"}
    values: dict[str, object] = {}
    int4: dict[str, object] = {}
    for key, value in data.items():
        if key == "int4" and isinstance(value, dict):
            for name, setting in value.items():
                if name not in INT4_KEYS:
                    raise AnswersError(
                        _("Unknown key '{key}' in {source}.").format(key=f"int4.{name}", source=source),
                        _("Known keys: {keys}.").format(keys=", ".join(INT4_KEYS)))
                int4[name] = _check(f"int4.{name}", setting, INT4_KEYS[name])
        elif key == "int4":
            raise AnswersError(_("'int4' must be a table of INT4 settings, not {value!r}.").format(value=value),
                               _("Write it as [int4] with algorithm = \"auto\" on the next line."))
        elif key in _FLAT_INT4:  # an answers file from before the [int4] table
            int4[_FLAT_INT4[key]] = _check(key, value, INT4_KEYS[_FLAT_INT4[key]])
        elif key not in known:
            raise AnswersError(_("Unknown key '{key}' in {source}.").format(key=key, source=source),
                               _("Known keys: {keys}.").format(keys=", ".join([*known, "int4"])))
        else:
            values[key] = _check(key, value, known[key])
    algorithm = int4.get("algorithm", Int4Algorithm.AUTO.value)
    if algorithm != Int4Algorithm.AUTO.value:  # a named algorithm starts from its best measured settings
        best = best_settings(Int4Algorithm(algorithm))
        int4.setdefault("block_size", best.block_size)
        int4.setdefault("symmetric", best.symmetric)
    try:
        settings = Int4Settings.from_json(int4)
    except PlanError as exc:
        raise AnswersError(exc.message, exc.hint) from None
    return Answers(**values, int4=settings)  # type: ignore[arg-type]  # each value checked against its field


def load(path: str | Path) -> Answers:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnswersError(_("The answers file {file} does not exist.").format(file=file),
                           _("Give the path of a wizard.toml written by slmops.")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnswersError(_("The answers file {file} cannot be read ({error}).").format(
            file=file, error=exc)) from None
    return parse(text, str(file))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def dump(answers: Answers) -> str:
    lines = ["# slmops answers file: replay with `slmops run --answers THIS_FILE`"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in asdict(answers).items() if key != "int4"]
    lines += ["", "[int4]  # block_size and symmetric count with a named algorithm; auto brings its own"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in answers.int4.to_json().items()]
    return "\n".join(lines) + "\n"


def save(answers: Answers, path: str | Path) -> Path:
    file = Path(path)
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(dump(answers), encoding="utf-8")
    tmp.replace(file)
    return file
