"""A LoRA adapter as fine-tuning writes it (PEFT's adapter_config.json + adapter_model.safetensors):
read it, find its base model as a local folder, check that the two fit, and plan the merge.

Every check reads JSON and safetensors headers only (no torch), so a wrong base or a damaged
adapter is one sentence before anything slow runs. The merge itself is Olive's own
MergeAdapterWeights pass (so ``olive run --config`` repeats it); the fidelity child merges in
torch with ``load_causal_lm``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from wizard_steps.core import paths
from wizard_steps.core.errors import ModelFolderError
from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import _
from wizard_steps.model.model_source import (
    AdapterInfo,
    ModelInfo,
    check_folder,
    demo_is_ready,
    inspect_model,
    safetensors_header,
)

ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MERGE_PASS = "merge"
DEMO_NAME = "smollm2-135m-instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<part>lora_A|lora_B)(?:\.[\w-]+)?\.weight$")


def is_adapter_folder(path: str | os.PathLike[str]) -> bool:
    """A folder holding adapter_config.json (a PEFT adapter) rather than a whole model."""
    folder = Path(path).expanduser()
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()


def _read_adapter_config(folder: Path) -> dict[str, Any]:
    file = folder / ADAPTER_CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(_("adapter_config.json in {folder} is not valid JSON ({error}).").format(
                                   folder=folder, error=exc),
                               _("Save the adapter again with model.save_pretrained(folder).")) from None
    except OSError as exc:
        raise ModelFolderError(_("adapter_config.json in {folder} cannot be read ({error}).").format(
                                   folder=folder, error=exc.strerror),
                               _("Check the file's permissions.")) from None
    if not isinstance(config, dict):
        raise ModelFolderError(_("adapter_config.json in {folder} does not hold a JSON object.").format(
                                   folder=folder),
                               _("Save the adapter again with model.save_pretrained(folder)."))
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise ModelFolderError(_("The adapter is of type {kind}; only LoRA adapters can be merged here.").format(
                                   kind=peft_type or _("unknown")),
                               _("Train a LoRA adapter, or merge it yourself and give the merged folder."))
    rank, targets = config.get("r"), config.get("target_modules")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ModelFolderError(_("adapter_config.json gives no valid rank 'r' ({value!r}).").format(value=rank),
                               _("Save the adapter again with model.save_pretrained(folder)."))
    if not targets or not (isinstance(targets, str) or (
            isinstance(targets, list) and all(isinstance(t, str) for t in targets))):
        raise ModelFolderError(_("adapter_config.json names no target modules."),
                               _("Save the adapter again with model.save_pretrained(folder)."))
    return config


def _weights(folder: Path) -> tuple[Path, dict[str, list[int]]]:
    """The adapter's weight file and, for safetensors, the LoRA tensors' shapes by key."""
    file = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if file is None:
        raise ModelFolderError(_("{folder} has no adapter weights (adapter_model.safetensors).").format(
                                   folder=folder),
                               _("Save the adapter with model.save_pretrained(folder)."))
    if file.stat().st_size == 0:
        raise ModelFolderError(_("The adapter weights {file} are empty (0 bytes).").format(file=file.name),
                               _("Copy the adapter again, or save it again with model.save_pretrained(folder)."))
    if file.suffix != ".safetensors":
        return file, {}
    header = safetensors_header(file)
    shapes = {key: list(t["shape"]) for key, t in header.items() if key != "__metadata__"}
    if not any(_LORA_KEY.match(key) for key in shapes):
        raise ModelFolderError(_("The adapter weights {file} hold no LoRA tensors.").format(file=file.name),
                               _("Save the adapter again with model.save_pretrained(folder)."))
    return file, shapes


def _base_from_config(declared: str | None, folder: Path) -> tuple[Path, str]:
    """The base named in adapter_config.json as a local folder, or one sentence saying why not."""
    how_to = _("Give the base model's local folder with --base DIR, or write that folder into "
               "base_model_name_or_path in adapter_config.json.")
    if not declared:
        raise ModelFolderError(_("adapter_config.json does not say which base model the adapter was "
                                 "trained on."), how_to)
    candidate = Path(declared).expanduser()
    for place in ([candidate] if candidate.is_absolute() else [candidate, folder / candidate,
                                                               folder.parent / candidate]):
        if (place / "config.json").is_file():
            return place.resolve(), "config"
    if candidate.name.lower() == DEMO_NAME:
        if demo_is_ready():
            return paths.demo_model_dir(), "demo"
        raise ModelFolderError(_("The adapter was trained on {name}, the demo model, which is not prepared "
                                 "yet.").format(name=declared),
                               _("Choose “Use the demo model” once (or run slmops demo), then try again."))
    if _HUB_ID.match(declared) and not candidate.exists():
        raise ModelFolderError(_("The adapter's base model is {name}, a Hugging Face Hub name; slmops works "
                                 "offline and needs the base as a local folder.").format(name=declared), how_to)
    raise ModelFolderError(_("The adapter's base model folder {path} does not exist here.").format(path=declared),
                           how_to)


def _module_names(base: ModelInfo) -> dict[str, list[int]]:
    """The base's weight shapes by module name (safetensors headers; empty for .bin weights)."""
    shapes: dict[str, list[int]] = {}
    for name in base.weight_files:
        if name.endswith(".safetensors"):
            for key, tensor in safetensors_header(base.path / name).items():
                if key.endswith(".weight"):
                    shapes[key.removesuffix(".weight")] = list(tensor["shape"])
    return shapes


def _check_fit(config: dict[str, Any], lora: dict[str, list[int]], base: ModelInfo) -> None:
    """Architecture, target modules and every LoRA matrix's size against the base's weights."""
    trained_on = (config.get("auto_mapping") or {}).get("base_model_class")
    if trained_on and trained_on != base.architecture:
        raise ModelFolderError(_("The adapter was trained on a {trained} model, but the base {base} is "
                                 "{architecture}.").format(trained=trained_on, base=base.name,
                                                           architecture=base.architecture),
                               _("Give the base model the adapter was trained on with --base DIR."))
    modules = _module_names(base)
    if not modules:
        return  # .bin weights: their shapes cannot be read without torch
    targets = config["target_modules"]
    if isinstance(targets, str):
        found = targets == "all-linear" or any(re.fullmatch(targets, m) for m in modules)
        missing = [] if found else [targets]
    else:
        missing = [t for t in targets if not any(m == t or m.endswith("." + t) for m in modules)]
    if not missing:  # every target exists somewhere; then every adapted module must too
        missing = [m["module"] for key in lora if (m := _LORA_KEY.match(key)) and m["module"] not in modules]
    if missing:
        raise ModelFolderError(_("The adapter changes modules the base {base} does not have: {modules}.").format(
                                   base=base.name, modules=", ".join(sorted(set(missing))[:3])),
                               _("Give the base model the adapter was trained on with --base DIR."))
    for key, shape in lora.items():
        match = _LORA_KEY.match(key)
        if not match or len(shape) != 2 or len(modules[match["module"]]) != 2:
            continue
        out_features, in_features = modules[match["module"]]
        fits = shape[1] == in_features if match["part"] == "lora_A" else shape[0] == out_features
        if not fits:
            raise ModelFolderError(
                _("The adapter was trained on a model of another size: {module} is {base_shape} in the base "
                  "{base}, the adapter's {part} is {shape}.").format(
                    module=match["module"], base_shape="x".join(map(str, modules[match["module"]])),
                    base=base.name, part=match["part"], shape="x".join(map(str, shape))),
                _("Give the base model the adapter was trained on with --base DIR."))


def inspect_adapter(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> AdapterInfo:
    """Check an adapter folder and its base (``base``, else the one its config names, else the
    demo when it was trained on it); raises ModelFolderError with one sentence."""
    folder = check_folder(path)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelFolderError(_("{folder} has no adapter_config.json, so it is not a LoRA adapter.").format(
                                   folder=folder),
                               _("Point to the folder the fine-tuning saved the adapter in."))
    config = _read_adapter_config(folder)
    file, lora = _weights(folder)
    declared = config.get("base_model_name_or_path")
    declared = declared if isinstance(declared, str) and declared.strip() else None
    if base is not None:
        base_path, found_by = check_folder(base), "given"
    else:
        base_path, found_by = _base_from_config(declared, folder)
    if (base_path / ADAPTER_CONFIG).is_file() and not (base_path / "config.json").is_file():
        raise ModelFolderError(_("The base {path} is itself an adapter.").format(path=base_path),
                               _("Give the full base model folder (with config.json) as the base."))
    base_info = inspect_model(base_path)
    _check_fit(config, lora, base_info)
    targets = config["target_modules"]
    alpha = config.get("lora_alpha", config["r"])
    return AdapterInfo(
        path=folder, base=base_info, base_found_by=found_by, declared_base=declared, rank=config["r"],
        alpha=float(alpha) if isinstance(alpha, (int, float)) else float(config["r"]),
        target_modules=(targets,) if isinstance(targets, str) else tuple(sorted(targets)),
        weights_file=file.name, size_bytes=file.stat().st_size,
        num_parameters=sum(_count(shape) for shape in lora.values()),
        use_dora=bool(config.get("use_dora")))


def _count(shape: list[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def as_model(adapter: AdapterInfo) -> ModelInfo:
    """The model the wizard converts: the base's shape and tokenizer, named after the adapter
    and carrying it, so the usual steps (precision, template, convert) take it as it is."""
    return dataclasses.replace(adapter.base, path=adapter.path,
                               size_bytes=adapter.base.size_bytes + adapter.size_bytes, adapter=adapter)


def inspect_model_or_adapter(path: str | os.PathLike[str],
                             base: str | os.PathLike[str] | None = None) -> ModelInfo:
    """A model folder as it is, or an adapter folder merged onto its base (``base`` only for
    adapters: a whole model has no base)."""
    if is_adapter_folder(path):
        return as_model(inspect_adapter(path, base))
    if base is not None:
        raise ModelFolderError(_("--base is only for a LoRA adapter folder, and {path} is a whole model.").format(
                                   path=path),
                               _("Leave out --base, or point to the adapter folder."))
    return inspect_model(path)


def tokenizer_folder(folder: str | Path) -> Path:
    """Where a folder's tokenizer and chat template are read from: for an adapter, its base's
    (the merged model is saved with the base's tokenizer files); unchanged for anything else."""
    folder = Path(folder)
    if not is_adapter_folder(folder):
        return folder
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        declared = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        return _base_from_config(declared if isinstance(declared, str) else None, folder)[0]
    except (OSError, ValueError, ModelFolderError):
        return folder  # the model step says what is wrong; here, no tokenizer is all it means


def olive_input_model(adapter: AdapterInfo) -> dict[str, object]:
    """Olive's HfModel with the adapter: the MergeAdapterWeights pass merges it into the base."""
    return {"type": "HfModel", "model_path": str(adapter.base.path), "adapter_path": str(adapter.path)}


def merge_pass() -> dict[str, object]:
    return {MERGE_PASS: {"type": "MergeAdapterWeights"}}


class MergeProgress:
    """Olive's log with the merge pass first: shown as its own stage, then the usual tracker
    (which counts passes and must not see the merge as the builder)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def update(self, line: str) -> Progress | None:
        if f"Running pass {MERGE_PASS}:" in line:
            return Progress(_("Merging the adapter into the base model (torch)"), 0.01)
        if f"Pass {MERGE_PASS}:" in line and "finished" in line:
            return Progress(_("Adapter merged"), 0.02)
        return self.inner.update(line)


def describe(adapter: AdapterInfo) -> str:
    """Two plain lines for the model step: what the adapter is and which base it goes on."""
    targets = ", ".join(adapter.target_modules[:4]) + (" …" if len(adapter.target_modules) > 4 else "")
    found = {"given": _("given"), "config": _("from adapter_config.json"), "demo": _("the demo model")}
    return (_("LoRA adapter · rank {rank} · alpha {alpha} · targets {targets}").format(
                rank=adapter.rank, alpha=f"{adapter.alpha:g}", targets=targets) + "\n"
            + _("base: {base} ({how}) · merged into it before converting").format(
                base=adapter.base.path, how=found[adapter.base_found_by]))


def load_causal_lm(folder: str | Path, text: str | None = None,
                   windows: list[list[int]] | None = None) -> tuple[Any, Any, float | None]:
    """Tokenizer and fp32 torch model of a model folder, or of base + adapter merged (the
    fine-tuned model as trained); for an adapter, also the base's own perplexity on ``text``, or
    over the token ``windows`` of the evaluation (what fine-tuning changed). For the fidelity child
    process: imports torch."""
    import torch  # heavy: only in the child process that runs the source model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not is_adapter_folder(folder):
        return (AutoTokenizer.from_pretrained(str(folder)),
                AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32), None)
    from peft import PeftModel

    adapter = inspect_adapter(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter.base.path))
    base = AutoModelForCausalLM.from_pretrained(str(adapter.base.path), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter.path))
    model.eval()
    base_perplexity = None
    with torch.inference_mode(), model.disable_adapter():
        if windows:  # the mean of the windows' mean losses, as wizard_steps.measurement.evaluation averages them
            losses = [float(model(torch.tensor([w]), labels=torch.tensor([w])).loss) for w in windows]
            base_perplexity = math.exp(sum(losses) / len(losses))
        elif text:
            ids = tokenizer(text, return_tensors="pt").input_ids
            base_perplexity = float(torch.exp(model(ids, labels=ids).loss))
    return tokenizer, model.merge_and_unload(), base_perplexity
