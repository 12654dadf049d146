"""A deployed copy's graph cut to the last position's logits (runtime.last_logits): the same last
row, a fraction of the memory in a runtime that feeds the prompt whole, and the whole graph back
for the evaluation. The deploy itself is tested in test_deploy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.genai_helpers import prompt_logits
from wizard_steps.runtime.last_logits import all_logits, keep_last_logits


def hand_graph(folder: Path, head: str = "MatMul", opset: int = 17) -> Path:
    """A graph as small as can be with an LM head: hidden states [batch, positions, 4] -> MatMul
    (a vocabulary of 6) -> Cast (as an FP16 graph ends) -> logits; with ``head`` "Add", a bias
    added after the MatMul, a shape this does not know how to cut."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir()
    weight = numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(4, 6) / 10, "lm_head.weight")
    nodes = [helper.make_node("MatMul", ["hidden", "lm_head.weight"], ["scores"], name="/lm_head/MatMul")]
    initializers = [weight]
    if head == "Add":
        initializers.append(numpy_helper.from_array(np.ones(6, dtype=np.float32), "lm_head.bias"))
        nodes.append(helper.make_node("Add", ["scores", "lm_head.bias"], ["logits"], name="/lm_head/Add"))
    else:
        nodes.append(helper.make_node("Cast", ["scores"], ["logits"], name="/lm_head/Cast", to=TensorProto.FLOAT))
    def tensor(name: str, width: int):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch_size", "sequence_length", width])

    graph = helper.make_graph(nodes, "hand", [tensor("hidden", 4)], [tensor("logits", 6)], initializers,
                              value_info=[tensor("scores", 6)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "genai_config.json").write_text(json.dumps(
        {"model": {"decoder": {"filename": "model.onnx", "outputs": {"logits": "logits"}}}}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def run(folder: Path, hidden: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"hidden": hidden})[0]


def test_the_cut_graph_gives_the_last_row_and_the_view_gives_every_row_back(tmp_path: Path) -> None:
    folder = hand_graph(tmp_path / "model")
    hidden = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    whole = run(folder, hidden)
    assert whole.shape == (2, 5, 6)
    assert keep_last_logits(folder) is True
    last = run(folder, hidden)
    assert last.shape == (2, 1, 6)
    np.testing.assert_array_equal(last[:, 0], whole[:, -1])
    cut = (folder / "model.onnx").read_bytes()
    assert keep_last_logits(folder) is False  # cut already: the file is left as it is
    assert (folder / "model.onnx").read_bytes() == cut
    with all_logits(folder) as view:
        assert view != folder and (view / "tokenizer.json").read_text() == "{}"
        np.testing.assert_array_equal(run(view, hidden), whole)
    assert not view.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["genai_config.json", "model.onnx", "tokenizer.json"]
    assert (folder / "model.onnx").read_bytes() == cut


def test_a_head_it_does_not_know_or_a_folder_it_cannot_read_is_left_untouched(tmp_path: Path) -> None:
    folder = hand_graph(tmp_path / "bias", head="Add")
    before = (folder / "model.onnx").read_bytes()
    assert keep_last_logits(folder) is False
    assert (folder / "model.onnx").read_bytes() == before
    with all_logits(folder) as view:
        assert view == folder  # nothing was cut: the folder itself
    (folder / "genai_config.json").write_text("{not json")
    assert keep_last_logits(folder) is False and (folder / "model.onnx").read_bytes() == before
    assert keep_last_logits(tmp_path / "missing") is False
    old = hand_graph(tmp_path / "opset-12", opset=12)  # Unsqueeze's axes were an attribute then
    before = (old / "model.onnx").read_bytes()
    assert keep_last_logits(old) is False and (old / "model.onnx").read_bytes() == before
    garbage = hand_graph(tmp_path / "garbage")
    (garbage / "model.onnx").write_bytes(b"this is not an ONNX model")
    assert keep_last_logits(garbage) is False  # the runtime's load says what is wrong, not this
    assert (garbage / "model.onnx").read_bytes() == b"this is not an ONNX model"


WHOLE_PROMPT_PROBE = """
import json, sys
import onnxruntime_genai as og

def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

model = og.Model(sys.argv[1])
def prompt(length):
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=length + 2)
    generator = og.Generator(model, params)
    generator.append_tokens([1] * length)  # the whole prompt in one piece, as Foundry Local's runtime feeds it
    generator.generate_next_token()
    return int(generator.get_next_tokens()[0])
prompt(16)  # loaded and warm
before = peak()
token = prompt(1024)
print(json.dumps({"growth": peak() - before, "token": token}))
"""


def test_a_whole_1024_token_prompt_holds_one_positions_logits_instead_of_all(
        tiny_converted, tmp_path: Path) -> None:
    """Memory, measured in a fresh process each (its own peak), so the same on every CPU: the
    folder as converted grows by at least a whole prompt's logits (1024 x the vocabulary's floats),
    the cut copy by less than half of that, and both choose the same next token."""
    source = tiny_converted("fp32")
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    assert keep_last_logits(copy) is True
    vocab = json.loads((source / "config.json").read_text())["vocab_size"]
    whole = 1024 * vocab * 4
    measured = {}
    for name, folder in (("converted", source), ("cut", copy)):
        done = subprocess.run([sys.executable, "-c", WHOLE_PROMPT_PROBE, str(folder)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        measured[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["converted"]["growth"] >= whole * 0.9, measured  # the probe sees the logits
    assert measured["cut"]["growth"] < whole / 2, measured
    assert measured["cut"]["token"] == measured["converted"]["token"]


def test_the_view_of_a_cut_folder_is_a_folder_onnxruntime_genai_loads_with_every_position(
        tiny_converted, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_converted("fp32"), copy)
    assert keep_last_logits(copy) is True
    ids = list(range(5, 45))

    last = prompt_logits(copy, ids)
    with all_logits(copy) as view:
        assert (view / "genai_config.json").read_bytes() == (copy / "genai_config.json").read_bytes()
        every = prompt_logits(view, ids)
    assert last.shape[1] == 1 and every.shape[1] == len(ids)
    np.testing.assert_allclose(every[0, -1], last[0, 0], atol=1e-4)
    assert not view.exists()
