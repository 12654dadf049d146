"""Real Olive conversions of the demo model, validated by generating with onnxruntime-genai."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tests.genai_helpers import generate
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Precision
from wizard_steps.core import paths
from wizard_steps.core.errors import ModelFolderError, PlanError
from wizard_steps.core.events import Failed, Finished, LogLine, Progress
from wizard_steps.model.model_source import folder_size

pytestmark = pytest.mark.slow


def test_int4_folder_loads_and_generates_twenty_tokens(demo_int4: Path) -> None:
    count, text = generate(demo_int4)
    assert count >= 20
    assert text.strip()


def test_int8_folder_loads_and_generates_twenty_tokens(demo_int8: Path) -> None:
    count, text = generate(demo_int8)  # its words depend on the CPU's int8 kernels: not asserted
    assert count >= 20
    assert text.strip()


def test_int8_graph_output_is_named_back_to_logits_by_olive_itself(demo_int8: Path) -> None:
    import onnx

    genai = json.loads((demo_int8 / "genai_config.json").read_text())
    graph = onnx.load(str(demo_int8 / genai["model"]["decoder"]["filename"]), load_external_data=False).graph
    assert genai["model"]["decoder"]["outputs"]["logits"] == "logits" == graph.output[0].name


def test_int8_and_the_default_int4_are_well_under_the_source(demo_model: Path, demo_int4: Path,
                                                           demo_int8: Path) -> None:
    source = folder_size(demo_model)
    assert folder_size(demo_int8) < source / 2 and folder_size(demo_int4) < source / 2


def test_int4_with_embeddings_is_smaller_than_int8_which_is_smaller_than_fp32(tiny_converted) -> None:
    """The smallest needs the embeddings quantized too: the tiny Llama, whose embeddings are most
    of it, shows it (the demo's default INT4 stores them at 8 bits, as INT8 does)."""
    sizes = [folder_size(tiny_converted(name)) for name in ("int4-rtn-embeddings", "int8", "fp32")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3, sizes


def test_output_holds_the_olive_config_to_rerun_by_hand(demo_int8: Path) -> None:
    config = json.loads((demo_int8 / convert.OLIVE_CONFIG_NAME).read_text())
    assert config["output_dir"] == str(demo_int8)
    assert list(config["passes"]) == ["quarot", "builder", "quantize_int8", "rename_logits"]  # a Llama
    assert config["passes"]["quantize_int8"]["bits"] == 8
    assert not (demo_int8 / "footprint.json").exists()


def test_a_folder_holds_the_same_conversion_only_for_the_same_model_and_passes(
        demo_model: Path, demo_int4: Path, demo_int8: Path, tiny_llama: Path) -> None:
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings

    def plan(model: Path, precision: Precision, int4: Int4Settings | None = None) -> convert.ConvertPlan:
        return convert.make_plan(model, demo_int4.parent / "not-written", precision, int4=int4)

    assert convert.converted_before(plan(demo_model, Precision.INT4), demo_int4)
    assert convert.converted_before(plan(demo_model, Precision.INT8), demo_int8)
    assert not convert.converted_before(plan(demo_model, Precision.INT8), demo_int4)
    rtn = Int4Settings(algorithm=Int4Algorithm.RTN)
    assert not convert.converted_before(plan(demo_model, Precision.INT4, rtn), demo_int4)
    assert not convert.converted_before(plan(tiny_llama, Precision.INT4), demo_int4)  # another model
    assert not convert.converted_before(plan(demo_model, Precision.INT4), demo_model)  # not converted


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
    """Cancelled as soon as Olive has started on the default road (the demo, QuaRot first): the
    child is stopped within a second, and nothing stays beside the target."""
    out = tmp_path / "cancelled"
    plan = convert.make_plan(demo_model, out, Precision.INT4)
    stop = threading.Event()
    events = []
    for event in convert.convert(plan, cancel=stop):
        events.append(event)
        if isinstance(event, LogLine):  # Olive's own first line: its process is running
            stop.set()
    assert isinstance(events[-1], Failed) and events[-1].cancelled
    assert not any(isinstance(e, Progress) and e.stage == "Weights rotated" for e in events)  # stopped early
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_auto_opt_progress_follows_the_builder_log(tiny_llama: Path, tmp_path: Path) -> None:
    plan = convert.make_plan(tiny_llama, tmp_path / "auto", Precision.INT4, method="auto-opt")
    # auto-opt cannot run Olive's QuaRot and Gptq passes: "auto" is k_quant_mixed there
    assert (plan.int4.algorithm.value, plan.int4.block_size) == ("k_quant_mixed", 16)
    events = list(convert.convert(plan))
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages.index("Reading layer 1/2") < stages.index("Reading layer 2/2")
    assert any(isinstance(e, LogLine) and "Reading layer" in e.text for e in events)
    assert isinstance(events[-1], Finished), events[-1]
    assert events[-1].result.method == "auto-opt"
    assert generate(events[-1].path, new_tokens=8)[0] == 8


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


# --- GPTQ: Olive's Gptq pass on a local calibration text, then the builder --------------------


def _gptq_plan(model: Path, out: Path, text: Path | None = None, algorithm: str = "gptq") -> convert.ConvertPlan:
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings

    return convert.make_plan(model, out, Precision.INT4, int4=Int4Settings(algorithm=Int4Algorithm(algorithm)),
                             calibration_text=text)


@pytest.mark.parametrize(("algorithm", "passes"), [
    ("gptq", ["gptq", "builder"]), ("quarot_gptq", ["quarot", "gptq", "builder", "embeddings_int8"])])
def test_gptq_counts_its_layers_and_its_saved_config_reruns_with_olive(
        tiny_llama: Path, tmp_path: Path, algorithm: str, passes: list[str]) -> None:
    import os
    import subprocess
    import sys

    from wizard_steps.conversion.calibration import default_text

    out = tmp_path / algorithm
    events = list(convert.convert(replace(_gptq_plan(tiny_llama, out, algorithm=algorithm), tune=False)))
    assert isinstance(events[-1], Finished), events[-1]
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert "GPTQ: layer 2/2 quantized" in stages
    assert ("Rotating the weights (QuaRot)" in stages) is (algorithm == "quarot_gptq")
    assert ("Measuring which layers lose most at 4 bits" in stages) is (algorithm == "quarot_gptq")
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.fraction is not None]
    assert fractions == sorted(fractions)
    assert generate(out, new_tokens=8)[0] == 8
    config = json.loads((out / convert.OLIVE_CONFIG_NAME).read_text())
    assert list(config["passes"]) == passes
    assert config["passes"]["gptq"]["damp_percent"] == convert.GPTQ_DAMPING == 0.1
    params = config["passes"]["gptq"]["data_config"]["load_dataset_config"]["params"]
    assert params["text_path"] == str(default_text())
    # what the measurement chose is written out, so the rerun below quantizes the same layers at 8 bits
    assert bool(config["passes"]["gptq"].get("overrides")) is (algorithm == "quarot_gptq")
    (out / "genai_config.json").unlink()  # the rerun must write it again
    command = [sys.executable, "-m", "olive", "run", "--config", str(out / convert.OLIVE_CONFIG_NAME)]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                           env={**os.environ, **convert.OLIVE_ENV})
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert all(f"Running pass {name}" in rerun.stdout + rerun.stderr for name in passes)
    assert generate(out, new_tokens=8)[0] == 8


@pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), ("", "holds 0 words"),
                                                  ("too short " * 5, "holds 10 words")])
def test_gptq_without_calibration_text_is_one_sentence_and_writes_nothing(
        tiny_llama: Path, tmp_path: Path, content: str | None, message: str) -> None:
    text = tmp_path / "calibration.txt"
    if content is not None:
        text.write_text(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(PlanError, match=message) as error:
        _gptq_plan(tiny_llama, tmp_path / "out", text)
    assert "\n" not in error.value.message and error.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cancelled_gptq_leaves_nothing(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "cancelled"
    stop = threading.Event()
    events = []
    for event in convert.convert(_gptq_plan(tiny_llama, out), cancel=stop):
        events.append(event)
        if isinstance(event, Progress) and event.stage.startswith("Calibrating"):
            stop.set()
    assert isinstance(events[-1], Failed) and events[-1].cancelled
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_default_int4_of_a_llama_is_quarot_gptq_asymmetric_at_block_32(
        demo_model: Path, demo_int4: Path) -> None:
    """The demo is a Llama, so the default road takes QuaRot + GPTQ, asymmetric, block 32, damping
    0.1, and the session's demo_int4 was converted with exactly that. How far it lands from the
    source depends on the CPU and the text: test_quality and benchmarks/eval_frontier.py measure it."""
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings

    plan = convert.make_plan(demo_model, demo_int4.parent / "not-written", Precision.INT4, int4=Int4Settings())
    assert (plan.int4.algorithm, plan.int4.block_size, plan.int4.symmetric) == \
        (Int4Algorithm.QUAROT_GPTQ, 32, False)
    assert convert.int4_in_config(demo_int4) == ("quarot_gptq", 32, False)
    passes = convert.saved_passes(demo_int4) or {}
    assert list(passes) == ["quarot", "gptq", "builder", "embeddings_int8"]
    assert passes["gptq"]["damp_percent"] == 0.1


def test_the_default_int4_keeps_its_most_sensitive_layers_and_its_embeddings_at_8_bits(
        demo_model: Path, demo_int4: Path, demo_int8: Path) -> None:
    """The layers the measurement chose are modules of the model, a share of its decoder's weights
    near SHARE, and q, k and v go together (the builder fuses them); the embeddings are stored at 8
    bits, which makes the INT4 smaller than the INT8."""
    import onnx
    from safetensors import safe_open

    from wizard_steps.conversion import sensitivity

    overrides = (convert.saved_passes(demo_int4) or {})["gptq"]["overrides"]
    with safe_open(str(demo_model / "model.safetensors"), "np") as weights:
        shapes = {key.removesuffix(".weight"): weights.get_slice(key).get_shape() for key in weights.keys()}
    decoder = {name: rows * cols for name, (rows, *rest) in shapes.items() for cols in rest
               if ".layers." in name and name.endswith("_proj")}
    assert set(overrides) <= set(decoder) and all(spec == {"bits": 8} for spec in overrides.values())
    share = sum(decoder[name] for name in overrides) / sum(decoder.values())
    assert sensitivity.SHARE <= share <= sensitivity.SHARE + 0.02, share
    for name in overrides:
        if name.endswith(("q_proj", "k_proj", "v_proj")):
            assert {name[:-6] + p + "_proj" for p in "qkv"} <= set(overrides)
    graph = onnx.load(str(demo_int4 / "model.onnx"), load_external_data=False).graph
    gathers = [n for n in graph.node if n.op_type.startswith("Gather") and "embed" in n.name]
    assert [n.op_type for n in gathers] == ["GatherBlockQuantized"]
    assert dict((a.name, a.i) for a in gathers[0].attribute)["bits"] == 8
    assert folder_size(demo_int4) < folder_size(demo_int8)


def test_the_quantizers_progress_bar_moves_the_progress_and_is_drawn_live() -> None:
    """k-quant draws its own bar with carriage returns while the builder saves: read as progress of
    that stage, never piled up in the log, and the log line glued to its last draw kept apart."""
    from wizard_steps.conversion.convert_log import LogProgress, is_live, split_live

    tracker = LogProgress(30, quantizer=True)
    lines = ["Running pass builder", "Reading layer 29", "Saving ONNX model",
             "Progress: [#                   ] 5.00%", "Progress: [##########          ] 50.00%",
             "Progress: [####################] 100.00%2026-11-26 08:25:24,799 neural_compressor INFO done"]
    fractions = [tracker.update(split_live(line)[0] or line).fraction for line in lines]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)  # it moves
    assert fractions[3] < fractions[5] - 0.3  # the bar spans a real share of the run
    assert [is_live(line) for line in lines] == [False] * 3 + [True] * 3
    bar, rest = split_live(lines[-1])
    assert bar == "Progress: [####################] 100.00%"
    assert rest.startswith("2026-11-26") and split_live("Reading layer 3") == ("", "Reading layer 3")


def test_int8_of_a_llama_is_rotated_first_and_its_saved_config_reruns_with_olive(
        tiny_llama: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "int8"
    plan = convert.make_plan(tiny_llama, out, Precision.INT8)
    assert plan.rotated
    events = list(convert.convert(replace(plan, tune=False)))
    assert isinstance(events[-1], Finished), events[-1]
    assert events[-1].result.rotated is True and events[-1].result.int4 is None
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages.index("Rotating the weights (QuaRot)") < stages.index("Weights rotated") < stages.index(
        "Reading layer 2/2")
    fractions = [e.fraction for e in events if isinstance(e, Progress) and e.fraction is not None]
    assert fractions == sorted(fractions)
    assert generate(out, new_tokens=8)[0] == 8
    config = json.loads((out / convert.OLIVE_CONFIG_NAME).read_text())
    assert list(config["passes"]) == ["quarot", "builder", "quantize_int8", "rename_logits"]
    assert config["passes"]["builder"]["precision"] == "fp32" and config["passes"]["quantize_int8"]["bits"] == 8
    assert convert.rotated_in_config(out) and convert.int4_in_config(out) is None
    (out / "genai_config.json").unlink()  # the rerun must write it again
    command = [sys.executable, "-m", "olive", "run", "--config", str(out / convert.OLIVE_CONFIG_NAME)]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                           env={**os.environ, **convert.OLIVE_ENV})
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "Running pass quarot" in rerun.stdout + rerun.stderr
    assert generate(out, new_tokens=8)[0] == 8

