"""Real Olive conversions of the demo model, validated by generating with onnxruntime-genai."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.genai_helpers import generate
from wizard_steps import convert, paths
from wizard_steps.errors import ModelFolderError, PlanError
from wizard_steps.events import Failed, Finished, LogLine, Progress
from wizard_steps.model_source import folder_size
from wizard_steps.precision import Precision

pytestmark = pytest.mark.slow


def test_int4_folder_loads_and_generates_twenty_tokens(demo_int4: Path) -> None:
    count, text = generate(demo_int4)
    assert count >= 20
    assert text.strip()


def test_int8_folder_loads_and_generates_twenty_tokens(demo_int8: Path) -> None:
    count, text = generate(demo_int8)  # its words depend on the CPU's int8 kernels: not asserted
    assert count >= 20
    assert text.strip()


def test_int8_genai_config_names_the_renamed_logits_output(demo_int8: Path) -> None:
    genai = json.loads((demo_int8 / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["outputs"]["logits"] != "logits"


def test_int4_is_smaller_than_int8_which_is_smaller_than_the_source(
    demo_model: Path, demo_int4: Path, demo_int8: Path
) -> None:
    assert folder_size(demo_int4) < folder_size(demo_int8) < folder_size(demo_model)


def test_output_holds_the_olive_config_to_rerun_by_hand(demo_int8: Path) -> None:
    config = json.loads((demo_int8 / convert.OLIVE_CONFIG_NAME).read_text())
    assert config["output_dir"] == str(demo_int8)
    assert config["passes"]["quantize_int8"]["bits"] == 8
    assert not (demo_int8 / "footprint.json").exists()


def test_olive_run_cache_is_cleaned_after_conversion(demo_int4: Path, demo_int8: Path) -> None:
    leftovers = [p for p in paths.olive_cache_dir().iterdir() if p.name != "rerun"]
    assert leftovers == []


def test_bad_model_path_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ModelFolderError, match="does not exist"):
        convert.make_plan(tmp_path / "missing", out, Precision.INT4)
    assert not out.exists()


def test_existing_output_folder_is_refused_and_untouched(demo_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(PlanError, match="already exists"):
        convert.make_plan(demo_model, out, Precision.INT4)
    assert (out / "mine.txt").read_text() == "keep me"


def test_fp16_on_cpu_is_refused_with_the_reason(demo_model: Path, tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="FP16 on the CPU"):
        convert.make_plan(demo_model, tmp_path / "out", Precision.FP16)


def test_output_inside_the_model_folder_is_refused(demo_model: Path) -> None:
    with pytest.raises(PlanError, match="inside the model folder"):
        convert.make_plan(demo_model, demo_model / "onnx", Precision.INT4)


def test_cancelled_conversion_leaves_no_output_folder(demo_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cancelled"
    plan = convert.make_plan(demo_model, out, Precision.INT4)
    stop = threading.Event()
    events = []
    for event in convert.convert(plan, cancel=stop):
        events.append(event)
        if isinstance(event, Progress) and event.stage.startswith("Reading layer"):
            stop.set()
    assert isinstance(events[-1], Failed) and events[-1].cancelled
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_progress_follows_the_builder_log(demo_model: Path, tmp_path: Path) -> None:
    plan = convert.make_plan(demo_model, tmp_path / "auto", Precision.INT4, method="auto-opt")
    events = list(convert.convert(plan))
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.fraction is not None]
    assert fractions == sorted(fractions)
    assert any(isinstance(e, LogLine) and "Reading layer" in e.text for e in events)
    assert isinstance(events[-1], Finished), events[-1]
    assert events[-1].details["method"] == "auto-opt"
    assert generate(events[-1].path, new_tokens=20)[0] == 20


def test_olive_failure_is_one_sentence_and_leaves_nothing(demo_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in demo_model.iterdir():
        (broken / item.name).symlink_to(item)
    (broken / "config.json").unlink()
    config = json.loads((demo_model / "config.json").read_text())
    config["num_attention_heads"] = 7  # hidden size 576 is not divisible: the builder fails
    (broken / "config.json").write_text(json.dumps(config))
    out = tmp_path / "never"
    final = list(convert.convert(convert.make_plan(broken, out, Precision.INT4)))[-1]
    assert isinstance(final, Failed)
    assert "\n" not in final.reason and final.reason
    assert final.log_path is not None and final.log_path.is_file()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]
