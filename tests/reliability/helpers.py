"""Helpers of the reliability tests: a tiny Llama model that Olive converts in seconds, snapshots
of folders (names, sizes, mtimes) and the Foundry registry's bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from wizard_steps.core import paths
from wizard_steps.prompt import templates
from wizard_steps.road.state import WizardState
from wizard_steps.runtime.foundry import REGISTRY_FILE

CHATML = templates.get_preset("chatml").template

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "max_position_embeddings": 2048}


def make_tiny_model(demo: Path, target: Path, seed: int = 0, shape: dict[str, int] | None = None) -> Path:
    """A real Llama folder (config, safetensors, tokenizer) small enough to convert in seconds:
    the demo's config and tokenizer with 2 layers of width 64 and random weights. ``shape``
    overrides those sizes (benchmarks/quant_time.py builds a 0.4 B one the same way)."""
    import numpy as np
    from safetensors.numpy import save_file

    shape = {**TINY, **(shape or {})}
    config = json.loads((demo / "config.json").read_text(encoding="utf-8"))
    config.update(shape)
    hidden, inter, vocab = shape["hidden_size"], shape["intermediate_size"], config["vocab_size"]
    kv = shape["num_key_value_heads"] * shape["head_dim"]
    rng = np.random.default_rng(seed)

    def weight(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * 0.02).astype(np.float32)

    tensors = {"model.embed_tokens.weight": weight(vocab, hidden),
               "model.norm.weight": np.ones(hidden, np.float32)}
    for layer in range(shape["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        tensors.update({
            prefix + "self_attn.q_proj.weight": weight(hidden, hidden),
            prefix + "self_attn.k_proj.weight": weight(kv, hidden),
            prefix + "self_attn.v_proj.weight": weight(kv, hidden),
            prefix + "self_attn.o_proj.weight": weight(hidden, hidden),
            prefix + "mlp.gate_proj.weight": weight(inter, hidden),
            prefix + "mlp.up_proj.weight": weight(inter, hidden),
            prefix + "mlp.down_proj.weight": weight(hidden, inter),
            prefix + "input_layernorm.weight": np.ones(hidden, np.float32),
            prefix + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
        })
    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        shutil.copy2(demo / name, target / name)
    return target


def make_tiny_hf_model(demo: Path, target: Path, model_type: str, **config: object) -> Path:
    """A real folder of another architecture (transformers' own config and model classes, the
    ``TINY`` shape, random weights; norm weights and biases random too, so that a transform that
    mishandles them shows), with the demo's tokenizer. ``config`` overrides config keys."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = {**TINY, "vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                "tie_word_embeddings": True, **config}
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings), dtype=torch.float32)
    gemma_norm = model_type.startswith("gemma")  # Gemma's norms scale by 1 + weight: weights around 0
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name and parameter.dim() == 1:
                parameter.copy_((0.0 if gemma_norm else 1.0) + 0.3 * torch.randn_like(parameter))
            elif name.endswith(".bias"):
                parameter.copy_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(target)
    for name in TOKENIZER_FILES:
        shutil.copy2(demo / name, target / name)
    return target


def snapshot(*roots: Path) -> dict[str, tuple[int, int] | str]:
    """Every file's size and mtime and every folder's name under ``roots``: what "nothing was
    written or changed" is checked against."""
    found: dict[str, tuple[int, int] | str] = {}
    for root in roots:
        if not root.exists():
            found[str(root)] = "absent"
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.exists():
                found[str(path)] = "link"
            elif path.is_dir():
                found[str(path)] = "dir"
            else:
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def registry_bytes(cache: Path) -> bytes | None:
    path = cache / REGISTRY_FILE
    return path.read_bytes() if path.exists() else None


def registered_ids(cache: Path) -> list[str]:
    """The ids in the registry file, which must be valid JSON."""
    data = json.loads((cache / REGISTRY_FILE).read_text(encoding="utf-8"))
    return sorted(entry["model_info"]["id"] for entry in data["models"])


def converted_folder(root: Path, context_length: int = 2048) -> Path:
    """A converted folder's small files (no weights): enough for every check before loading."""
    folder = root / "converted"
    folder.mkdir(parents=True)
    (folder / "genai_config.json").write_text(json.dumps(
        {"model": {"type": "llama", "context_length": context_length,
                   "decoder": {"filename": "model.onnx"}}, "search": {"max_length": 2048}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (folder / "chat_template.jinja").write_text(templates.chat_template_for(CHATML))
    (folder / "model.onnx").write_bytes(b"weights")
    return folder


def seed_home(home: Path) -> None:
    """An earlier run: a saved state and one model registered in the Foundry cache."""
    WizardState(step="deploy", completed=["welcome", "prereqs", "model"]).save()
    cache = paths.foundry_cache_dir()
    earlier = converted_folder(cache / "slmops" / "earlier").rename(cache / "slmops" / "earlier" / "1")
    (cache / REGISTRY_FILE).write_text(json.dumps({"catalog_name": "local", "models": [{
        "model_info": {"id": "earlier:1", "name": "earlier", "version": 1, "alias": "earlier",
                       "displayName": "earlier v1", "task": "chat-completion"},
        "model_path": str(earlier)}], "version": 2}, indent=2))
