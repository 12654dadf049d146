"""LoRA adapters: read, matched with their base, refused in one sentence when they do not fit, and
merged by Olive's own pass into a converted model that really differs from the base's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_model_source import write_safetensors
from tui.cli import main
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Precision
from wizard_steps.core.errors import ModelFolderError, PlanError
from wizard_steps.core.events import Finished, Progress
from wizard_steps.model import adapter
from wizard_steps.prompt import detection

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def build_base(folder: Path, demo: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A tiny random Llama with the demo's tokenizer (so it converts and generates like a real one)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=hidden // 4, max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in _TOKENIZER_FILES:
        shutil.copy(demo / name, folder / name)
    return folder


def build_lora(base: Path, folder: Path, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A random LoRA with non-zero B matrices (peft's default B is zero: no change at all)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, demo_model: Path) -> tuple[Path, Path]:
    """(base, adapter): a tiny random base and a LoRA trained on it, named by its local path."""
    root = tmp_path_factory.mktemp("lora")
    base = build_base(root / "tiny-base", demo_model)
    return base, build_lora(base, root / "tiny-lora")


def copy_adapter(source: Path, tmp_path: Path, **config: object) -> Path:
    folder = tmp_path / "my-lora"
    shutil.copytree(source, folder)
    if config:
        file = folder / adapter.ADAPTER_CONFIG
        file.write_text(json.dumps({**json.loads(file.read_text()), **config}))
    return folder


def test_adapter_config_is_read_and_the_base_found_where_it_names_it(tiny: tuple[Path, Path]) -> None:
    base, lora = tiny
    info = adapter.inspect_adapter(lora)
    assert (info.rank, info.alpha, info.target_modules) == (4, 8.0, ("q_proj", "v_proj"))
    assert info.base.path == base and info.base_found_by == "config"
    assert info.num_parameters == 2 * ((4 * 64 + 64 * 4) + (4 * 64 + 32 * 4))  # q: 64 out, v: 32 out
    text = adapter.describe(info)
    assert "rank 4" in text and "q_proj, v_proj" in text and str(base) in text


def test_the_model_step_takes_an_adapter_folder_as_a_model_of_its_base_shape(tiny: tuple[Path, Path]) -> None:
    base, lora = tiny
    info = adapter.inspect_model_or_adapter(lora)
    assert info.adapter is not None and info.adapter.base.path == base
    assert info.path == lora and info.name == "tiny-lora"
    assert (info.architecture, info.num_layers, info.hidden_size) == ("LlamaForCausalLM", 2, 64)
    assert info.chat_template and "<|im_start|>" in info.chat_template


def test_base_given_on_the_command_line_wins(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    base, lora = tiny
    folder = copy_adapter(lora, tmp_path, base_model_name_or_path="HuggingFaceTB/SmolLM2-135M")
    info = adapter.inspect_adapter(folder, base=base)
    assert info.base.path == base and info.base_found_by == "given"


def test_an_adapter_made_on_the_demo_finds_the_prepared_demo(tiny: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             demo_model: Path, session_home: Path) -> None:
    monkeypatch.setenv("SLMOPS_HOME", str(session_home))  # where demo_model is prepared
    folder = copy_adapter(tiny[1], tmp_path, base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(ModelFolderError, match="another size"):  # found, then checked: 64 is not 576
        adapter.inspect_adapter(folder)


def _fake_base(tmp_path: Path, demo: Path, architecture: str, keys: dict[str, list[int]]) -> Path:
    """A base folder with a real safetensors header and no weights worth loading: enough for
    every check the wizard makes before anything slow."""
    folder = tmp_path / f"base-{architecture}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "architectures": [architecture], "model_type": "x", "num_hidden_layers": 2, "hidden_size": 64,
        "vocab_size": 49152, "max_position_embeddings": 512, "eos_token_id": 2}))
    write_safetensors(folder / "model.safetensors", keys)
    shutil.copy(demo / "tokenizer.json", folder / "tokenizer.json")
    return folder


def _phi3_base(tmp_path: Path, demo: Path) -> Path:
    return _fake_base(tmp_path, demo, "Phi3ForCausalLM", {
        f"model.layers.{i}.self_attn.{name}.weight": [64, 64] for i in range(2)
        for name in ("qkv_proj", "o_proj")})


def _wide_base(tmp_path: Path, demo: Path) -> Path:
    return _fake_base(tmp_path, demo, "LlamaForCausalLM", {
        f"model.layers.{i}.self_attn.{name}.weight": [96, 96] for i in range(2)
        for name in ("q_proj", "v_proj")})


BAD_ADAPTERS = {
    # id: (damage(adapter folder, tmp_path, demo) -> extra CLI args, expected words)
    "base-missing": (lambda f, t, d: _set(f, base_model_name_or_path=str(t / "gone")), "does not exist here"),
    "base-unnamed": (lambda f, t, d: _set(f, base_model_name_or_path=None), "does not say which base"),
    "hub-id": (lambda f, t, d: _set(f, base_model_name_or_path="someone/llama-7b"), "Hugging Face Hub name"),
    "other-architecture": (lambda f, t, d: ["--base", str(_phi3_base(t, d))], "does not have: q_proj, v_proj."),
    "other-size": (lambda f, t, d: ["--base", str(_wide_base(t, d))], "another size"),
    "declared-architecture": (lambda f, t, d: _set(f, auto_mapping={"base_model_class": "Qwen2ForCausalLM"}),
                              "trained on a Qwen2ForCausalLM model"),
    "broken-config": (lambda f, t, d: (f / "adapter_config.json").write_text("{r: 4"), "not valid JSON"),
    "missing-target": (lambda f, t, d: _set(f, target_modules=["q_proj", "gate_projx"]), "gate_projx"),
    "not-lora": (lambda f, t, d: _set(f, peft_type="IA3"), "only LoRA"),
    "zero-byte-weights": (lambda f, t, d: (f / "adapter_model.safetensors").write_bytes(b""), "empty (0 bytes)"),
    "truncated-weights": (lambda f, t, d: _truncate(f / "adapter_model.safetensors"), "damaged or truncated"),
    "no-weights": (lambda f, t, d: (f / "adapter_model.safetensors").unlink(), "no adapter weights"),
    "base-is-adapter": (lambda f, t, d: ["--base", str(shutil.copytree(f, t / "other-lora"))],
                        "is itself an adapter"),
}


def _set(folder: Path, **values: object) -> None:
    file = folder / adapter.ADAPTER_CONFIG
    file.write_text(json.dumps({**json.loads(file.read_text()), **values}))


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 100])


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(BAD_ADAPTERS))
def test_bad_adapter_is_one_sentence_exit_2_and_nothing_written(
        case: str, tiny: tuple[Path, Path], tmp_path: Path, demo_model: Path, capsys) -> None:
    damage, words = BAD_ADAPTERS[case]
    folder = copy_adapter(tiny[1], tmp_path)
    extra = damage(folder, tmp_path, demo_model)
    extra = extra if isinstance(extra, list) else []  # the extra command-line arguments, if any
    before = _snapshot(folder, tiny[0])
    out = tmp_path / "out"
    code = main(["convert", str(folder), "--precision", "fp32", "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    assert _snapshot(folder, tiny[0]) == before  # neither the adapter nor the base is touched


def test_base_for_a_whole_model_is_refused(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="only for a LoRA adapter"):
        convert.make_plan(tiny[0], tmp_path / "out", Precision.FP32, base=tiny[0])


def test_output_inside_the_base_folder_is_refused(tiny: tuple[Path, Path]) -> None:
    with pytest.raises(PlanError) as refused:
        convert.make_plan(tiny[1], tiny[0] / "onnx", Precision.FP32)
    assert refused.value.message == "The output folder must not be inside the model folder."
    assert "elsewhere" in refused.value.hint
    assert not (tiny[0] / "onnx").exists()


def test_the_saved_olive_config_merges_with_olives_own_pass(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    base, lora = tiny
    plan = convert.make_plan(lora, tmp_path / "out", Precision.INT4)
    config = convert.olive_config(plan, tmp_path / "out", tmp_path / "cache")
    assert config["input_model"] == {"type": "HfModel", "model_path": str(base), "adapter_path": str(lora)}
    assert list(config["passes"]) == ["merge", "quarot", "gptq", "builder", "embeddings_int8"]  # a Llama: auto
    # picks QuaRot + GPTQ, which rotates and calibrates the merged model
    assert config["passes"]["merge"] == {"type": "MergeAdapterWeights"}
    assert convert.default_output_dir(plan.model, Precision.INT4).name == "tiny-lora-int4-onnx"


def _run(plan: convert.ConvertPlan) -> Finished:
    events = list(convert.convert(plan))
    final = events[-1]
    assert isinstance(final, Finished), final
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages.index("Merging the adapter into the base model (torch)") < stages.index("Reading layer 1/2")
    return final


def _logits(folder: Path, ids: list[int]):
    import numpy as np
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    return np.asarray(generator.get_output("logits")).reshape(len(ids), -1)


def _torch_logits(folder: Path, ids: list[int]):
    import torch

    from wizard_steps.model.adapter import load_causal_lm

    _tokenizer, model, _ = load_causal_lm(folder)
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].numpy()


def _run_plain(plan: convert.ConvertPlan) -> Path:
    final = list(convert.convert(plan))[-1]
    assert isinstance(final, Finished), final
    return final.path


@pytest.fixture(scope="module")
def converted(tiny: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Finished, Path]:
    """The tiny adapter merged and converted to FP32 by Olive, and its base converted alone."""
    base, lora = tiny
    root = tmp_path_factory.mktemp("converted")
    merged = _run(convert.make_plan(lora, root / "merged", Precision.FP32))
    return merged, _run_plain(convert.make_plan(base, root / "base-onnx", Precision.FP32))


@pytest.mark.slow
def test_adapter_converts_end_to_end_and_changes_what_the_model_computes(
        tiny: tuple[Path, Path], converted: tuple[Finished, Path]) -> None:
    import numpy as np

    from tests.genai_helpers import generate

    base, lora = tiny
    merged, plain = converted
    assert merged.result.adapter == str(lora) and merged.result.base == str(base)
    count, _text = generate(merged.path, new_tokens=8)
    assert count == 8
    ids = [1, 504, 3458, 282, 4649, 314, 2]
    merged_logits, base_logits = _logits(merged.path, ids), _logits(plain, ids)
    assert np.abs(merged_logits - base_logits).max() > 1e-3  # the adapter changed the weights
    # and it changed them as peft does: the ONNX model is the fine-tune, merged in torch
    np.testing.assert_allclose(merged_logits, _torch_logits(lora, ids), atol=2e-3)
    np.testing.assert_allclose(base_logits, _torch_logits(base, ids), atol=2e-3)
    rerun = json.loads((merged.path / convert.OLIVE_CONFIG_NAME).read_text())
    assert rerun["input_model"]["adapter_path"] == str(lora) and "merge" in rerun["passes"]


WINDOWS = 4  # of the evaluation text: the same windows for the adapter, its merge and its base


@pytest.mark.slow
def test_fidelity_is_measured_against_base_plus_adapter(tiny: tuple[Path, Path],
                                                         converted: tuple[Finished, Path]) -> None:
    from wizard_steps.verdict.fidelity import check_fidelity

    base, lora = tiny
    check = check_fidelity(lora, converted[0].path, limit=WINDOWS)
    assert check.passed, check.evidence
    source, merged = check.figures.source_perplexity, check.figures.converted_perplexity
    assert abs(merged / source - 1) < 1e-3  # FP32: the fine-tune itself, not the base
    base_perplexity = check.figures.base_perplexity
    # and the fine-tune is not the base (a random model: both near the vocabulary size, apart by 0.6 %)
    assert base_perplexity != pytest.approx(source, rel=1e-4)
    assert "the base alone has perplexity" in check.evidence
    base_alone = check_fidelity(base, converted[1], limit=WINDOWS).figures.source_perplexity
    assert base_alone == pytest.approx(base_perplexity, rel=1e-4)


def test_the_template_is_detected_from_the_bases_tokenizer(tiny: tuple[Path, Path]) -> None:

    assert detection.detect(tiny[1]).preset_key == detection.detect(tiny[0]).preset_key == "chatml"


async def test_model_step_shows_rank_targets_and_base_at_80x24(tiny: tuple[Path, Path]) -> None:
    from textual.widgets import Button, Input, Static

    from tests.tui.helpers import assert_fits, wait_for, wait_idle
    from tui.app import SlmopsApp
    from wizard_steps.road.state import WizardState

    base, lora = tiny
    app = SlmopsApp(WizardState(), start="model")
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#model-path", Input).value = str(lora)
        await wait_for(pilot, lambda: not app.screen.query_one("#next", Button).disabled,
                       "Next to accept the adapter folder")
        await wait_idle(pilot)
        info = str(app.screen.query_one("#model-info", Static).render())
        assert "rank 4" in info and "q_proj, v_proj" in info and str(base) in info
        assert_fits(app)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.STEP == "precision", "the precision step")
    assert app.state.model_dir == str(lora)


def test_the_summary_names_the_base_beside_the_adapter(tiny: tuple[Path, Path]) -> None:
    from tui.screens.summary import done_text
    from wizard_steps.road.state import WizardState

    base, lora = tiny
    lines = done_text(WizardState(model_dir=str(lora))).plain.splitlines()
    assert str(lora) in lines[0] and lines[1].startswith("Base model") and str(base) in lines[1]
