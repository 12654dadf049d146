"""Which architectures QuaRot + GPTQ may take. Olive's QuaRot pass raises on some models and, on
others, rotates without an error into a model that computes something else (the conversion then
loads and generates, and only the answers show it). So the route is offered only for the
architectures in ``precision.QUAROT_ARCHITECTURES``, and these tests hold the list to the truth:
the rotation alone keeps the logits of a random model of each listed architecture and of no
other probed one; the whole route converts each listed one; any other is refused up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.genai_helpers import generate
from tests.reliability.helpers import make_tiny_hf_model
from wizard_steps.conversion import convert
from wizard_steps.conversion.convert import PlanError
from wizard_steps.conversion.precision import QUAROT_ARCHITECTURES, Int4Algorithm, Int4Settings, Precision
from wizard_steps.core.events import Finished

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

# model type -> (the architecture transformers saves, config keys the tiny shape needs)
PROBES: dict[str, tuple[str, dict[str, object]]] = {
    "llama": ("LlamaForCausalLM", {}),
    "mistral": ("MistralForCausalLM", {}),
    "qwen2": ("Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3ForCausalLM", {}),
    "phi3": ("Phi3ForCausalLM", {"original_max_position_embeddings": 2048}),
    "granite": ("GraniteForCausalLM", {}),
    "smollm3": ("SmolLM3ForCausalLM", {}),
    "ernie4_5": ("Ernie4_5ForCausalLM", {}),
    "gemma": ("GemmaForCausalLM", {}),
    "gemma2": ("Gemma2ForCausalLM", {}),
    "gemma3_text": ("Gemma3ForCausalLM", {"sliding_window": 16}),
    "phi": ("PhiForCausalLM", {}),
    "olmo": ("OlmoForCausalLM", {}),
    "nemotron": ("NemotronForCausalLM", {}),
}


def rotated_logits(source: Path, work: Path):
    """The source's and the QuaRot-rotated model's logits on one random sequence (fp32), or None
    for the rotated ones where Olive refuses the model."""
    import torch
    from olive.workflows import run as olive_run
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 49152, (1, 12), generator=torch.Generator().manual_seed(1))

    def logits(folder: Path):
        with torch.no_grad():
            return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(input_ids=ids).logits

    before = logits(source)
    try:
        olive_run({"input_model": {"type": "HfModel", "model_path": str(source)},
                   "passes": {convert.ROTATE_PASS: dict(convert.ROTATE_CONFIG)},
                   "output_dir": str(work / "out"), "cache_dir": str(work / "cache"), "log_severity_level": 3})
    except (ValueError, AttributeError):  # "Model uses LayerNorm", "Attribute model.norm not found", ...
        return before, None
    (rotated,) = {p.parent for p in (work / "out").rglob("config.json")}
    return before, logits(rotated)


@pytest.mark.parametrize("model_type", list(PROBES))
def test_quarot_keeps_the_logits_of_exactly_the_listed_architectures(
        model_type: str, demo_model: Path, tmp_path: Path) -> None:
    architecture, config = PROBES[model_type]
    source = make_tiny_hf_model(demo_model, tmp_path / "source", model_type, **config)
    assert json.loads((source / "config.json").read_text())["architectures"] == [architecture]
    before, after = rotated_logits(source, tmp_path)
    kept = after is not None and bool((after - before).abs().max() < 1e-4 * before.abs().max())
    if after is not None and not kept:  # what "changes what the model computes" means here
        assert (after.argmax(-1) == before.argmax(-1)).float().mean() < 0.5
    assert kept is (architecture in QUAROT_ARCHITECTURES), (
        f"{architecture}: rotation {'kept' if kept else 'did not keep'} the logits; update QUAROT_ARCHITECTURES")


def test_every_listed_architecture_is_probed() -> None:
    assert QUAROT_ARCHITECTURES <= {architecture for architecture, _ in PROBES.values()}


@pytest.mark.parametrize("model_type", [t for t, (a, _) in PROBES.items()
                                        if a in QUAROT_ARCHITECTURES and t != "llama"])  # llama: test_convert
def test_quarot_gptq_converts_each_listed_architecture(model_type: str, demo_model: Path, tmp_path: Path) -> None:
    config = PROBES[model_type][1]
    source = make_tiny_hf_model(demo_model, tmp_path / "source", model_type, **config)
    plan = convert.make_plan(source, tmp_path / "out", Precision.INT4,
                             int4=Int4Settings(algorithm=Int4Algorithm.QUAROT_GPTQ))
    events = list(convert.convert(replace(plan, tune=False)))  # the route's reach; tuning: test_tune.py
    assert isinstance(events[-1], Finished), events[-1]
    passes = json.loads((tmp_path / "out" / convert.OLIVE_CONFIG_NAME).read_text())["passes"]
    assert list(passes) == ["quarot", "gptq", "builder", "embeddings_int8"]
    assert passes["gptq"]["overrides"]  # the layers measured as most sensitive, at 8 bits
    assert generate(tmp_path / "out", new_tokens=8)[0] == 8


def test_an_architecture_quarot_breaks_is_refused_in_one_sentence_before_anything_is_written(
        demo_model: Path, tmp_path: Path) -> None:
    source = make_tiny_hf_model(demo_model, tmp_path / "gemma2", "gemma2")
    out = tmp_path / "out"
    with pytest.raises(PlanError, match="Gemma2ForCausalLM") as error:
        convert.make_plan(source, out, Precision.INT4, int4=Int4Settings(algorithm=Int4Algorithm.QUAROT_GPTQ))
    assert "\n" not in error.value.message and "k_quant_mixed" in error.value.hint
    assert not out.exists()
    # the model itself is fine: the recommended INT4 takes it, and INT8 goes unrotated
    assert convert.make_plan(source, out, Precision.INT4).int4.algorithm is Int4Algorithm.K_QUANT_MIXED
    int8 = convert.make_plan(source, out, Precision.INT8)
    assert not int8.rotated
    assert list(convert.olive_config(int8, out, tmp_path / "cache")["passes"]) == [
        "builder", "quantize_int8", "rename_logits"]
    command = [sys.executable, "-m", "tui", "convert", str(source), "--precision", "int4",
               "--int4-algo", "quarot_gptq", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "SLMOPS_HOME": str(tmp_path / "home"), "SLMOPS_LANG": "en"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "QuaRot + GPTQ is checked only for" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
