"""Mixed precision by measured sensitivity: the linear layers that lose most at 4 bits go to 8.

Measured on the model GPTQ is about to quantize (after QuaRot's rotation) and on the calibration
text, never on the evaluation text that judges the result. Every linear layer of the decoder is
rounded to GPTQ's 4-bit grid (same block size and symmetry); the KL divergence of that model from
the unrounded one is taken over the text, and its gradient gives, for each unit (a layer's q, k and
v together, since the builder fuses them into one MatMul; o; gate; up; down), how much divergence
the unit would give back at 8 bits: a first-order estimate that costs one forward and one backward
pass. On the demo it ranks the units as rounding each one alone and measuring does (Spearman 0.78
over 88 units, the same top five), for a hundredth of the time.

The most sensitive units, up to ``SHARE`` of the decoder's weights, are named in Olive's Gptq
``overrides`` at 8 bits, so the saved olive_config.json repeats the very same model.

Runs inside the Olive worker, where torch and transformers are already imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SHARE = 0.2  # of the decoder's linear weights, at 8 bits (benchmarks/eval_frontier.py, docs/quantization.md)
SHARE_VARIABLE = "SLMOPS_INT4_8BIT_SHARE"  # another share, for benchmarks/eval_frontier.py's rows (0: none)


def share() -> float:
    """The share of the decoder's weights put at 8 bits: SHARE, or the benchmarks' own."""
    try:
        value = float(os.environ.get(SHARE_VARIABLE, SHARE))
    except ValueError:
        return SHARE
    return min(max(value, 0.0), 1.0)
TOKENS = 512  # of the calibration text: one window
HIGH_BITS = 8
ANNOUNCE = "Measuring each layer's sensitivity to 4 bits on the calibration text"  # the worker's log line
_FUSED = ("q_proj", "k_proj", "v_proj")  # quantized as one MatMul by the builder: they share a precision


@dataclass(frozen=True)
class Unit:
    """Modules that share one precision, with their weights' count and the estimated KL divergence
    they give back at 8 bits (larger: more sensitive)."""

    name: str
    modules: tuple[str, ...]
    numel: int
    gain: float


def fake_quantize(weight: torch.Tensor, bits: int, block: int, symmetric: bool) -> torch.Tensor:
    """Round to the block-wise grid GPTQ and the builder use (blocks along the input dimension)."""
    import torch

    rows, cols = weight.shape
    if cols % block:
        return weight
    blocks = weight.reshape(rows, cols // block, block)
    if symmetric:
        top = 2 ** (bits - 1)
        scale = (blocks.abs().amax(-1, keepdim=True) / (top - 1)).clamp(min=1e-12)
        return (torch.round(blocks / scale).clamp(-top, top - 1) * scale).reshape(rows, cols)
    top = 2 ** bits - 1
    low = blocks.amin(-1, keepdim=True).clamp(max=0)
    high = blocks.amax(-1, keepdim=True).clamp(min=0)
    scale = ((high - low) / top).clamp(min=1e-12)
    zero = torch.round(-low / scale).clamp(0, top)
    return ((torch.round(blocks / scale) + zero).clamp(0, top) - zero).mul(scale).reshape(rows, cols)


def decoder_units(model: Any) -> dict[str, list[tuple[str, Any]]]:
    """Each decoder layer's linear modules, grouped as the builder quantizes them."""
    import torch

    units: dict[str, list[tuple[str, Any]]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".layers." not in name:
            continue
        prefix, _, leaf = name.rpartition(".")
        key = f"{prefix}.qkv" if leaf in _FUSED else name
        units.setdefault(key, []).append((name, module))
    return units


def rank(model: Any, input_ids: torch.Tensor, block: int, symmetric: bool, bits: int = 4) -> list[Unit]:
    """The decoder's units, most sensitive first."""
    import torch

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        reference = torch.log_softmax(model(input_ids).logits[0].float(), -1)
    units = decoder_units(model)
    lost = {}
    for members in units.values():
        for _name, module in members:
            rounded = fake_quantize(module.weight.data, bits, block, symmetric)
            lost[module] = module.weight.data - rounded
            module.weight.data = rounded
            module.weight.requires_grad_(True)
    rounded_logp = torch.log_softmax(model(input_ids).logits[0].float(), -1)
    divergence = (reference.exp() * (reference - rounded_logp)).sum(-1).mean()
    divergence.backward()
    ranked = []
    for key, members in units.items():
        # moving the weights back by what rounding lost changes the divergence by grad . lost
        change = sum(float((module.weight.grad * lost[module]).sum()) for _name, module in members)
        ranked.append(Unit(key, tuple(name for name, _module in members),
                           sum(module.weight.numel() for _name, module in members), -change))
    return sorted(ranked, key=lambda unit: -unit.gain)


def choose(ranked: list[Unit], share: float = SHARE) -> list[Unit]:
    """The most sensitive units, until ``share`` of the weights is reached."""
    budget = share * sum(unit.numel for unit in ranked)
    chosen, used = [], 0
    for unit in ranked:
        if used >= budget or unit.gain <= 0:
            break
        chosen.append(unit)
        used += unit.numel
    return chosen


def overrides(chosen: list[Unit]) -> dict[str, dict[str, int]]:
    """Olive's Gptq overrides for the chosen units."""
    return {name: {"bits": HIGH_BITS} for unit in chosen for name in unit.modules}


def measure(model_dir: str | os.PathLike[str], text_path: str | os.PathLike[str], block: int, symmetric: bool,
            fraction: float | None = None, tokens: int = TOKENS) -> tuple[list[Unit], list[Unit]]:
    """Rank the units of the model in ``model_dir`` on the text's first ``tokens`` tokens; returns
    (all units ranked, the chosen ones: ``fraction`` of the weights, else ``share()``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    text = Path(text_path).read_text(encoding="utf-8")
    input_ids = tokenizer(text, return_tensors="pt").input_ids[:, :tokens]
    ranked = rank(model, input_ids, block, symmetric)
    return ranked, choose(ranked, share() if fraction is None else fraction)
