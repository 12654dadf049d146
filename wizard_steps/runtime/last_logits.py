"""A deployed copy whose graph computes the logits of the last position only, and the graph as it
was for the evaluation, which needs every position.

A graph as the builder writes it computes a vocabulary's worth of logits for every position it is
given (the demo: 49,152 floats, 196 kB per position, 100 MB for a 512-token prompt), but a runtime
that generates reads the last position's only. slmops' own engine feeds the prompt in pieces
(``engine.PREFILL_CHUNK``); Foundry Local's runtime feeds it whole and holds them all at its peak.
``keep_last_logits`` puts a Gather of the last position in front of the LM head, as
onnxruntime-genai's builder does with ``prune_lm_head``. Measured through Foundry Local on the
demo's default INT4 (benchmarks/kv_cache, 3 alternating rounds, each in a fresh process): the
model's memory 554 -> 457 MB at a 512-token prompt and 684 -> 458 MB at 1024, the prompt's time
x0.83 and x0.78, the same greedy tokens.

``all_logits`` gives a folder whose graph computes every position again: the folder itself, or a
temporary view of it (the weights hard-linked where the file system allows).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PREFIX = "/lm_head/slmops_last/"  # the names of what keep_last_logits adds
_INDEX, _AXES = PREFIX + "index", PREFIX + "axes"
_GATHER, _UNSQUEEZE, _LAST = PREFIX + "Gather", PREFIX + "Unsqueeze", PREFIX + "last"
_HEADS = ("MatMul", "MatMulNBits")  # the LM head, as onnxruntime-genai's builder writes it
_PASS_THROUGH = ("Cast", "Identity")  # between the head and the logits output (an FP16 graph's Cast)


def _graph_and_logits(folder: Path) -> tuple[Path, str]:
    decoder = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]["decoder"]
    return folder / decoder["filename"], decoder["outputs"]["logits"]


def _load(path: Path) -> Any:
    import onnx  # heavy: only when a copy is deployed or a pruned one is evaluated

    return onnx.load(str(path), load_external_data=False)  # the weights stay where they are


def keep_last_logits(folder: Path) -> bool:
    """Rewrite ``folder``'s graph (a deploy's own copy) so that it computes the logits of the last
    position only. True when it did; False, the file untouched, when the graph already does or its
    LM head is not the plain MatMul this knows how to cut (the copy then keeps every position: it
    costs memory, not correctness)."""
    import numpy as np
    from onnx import helper, numpy_helper

    try:
        path, logits = _graph_and_logits(Path(folder))
        model = _load(path)
    except Exception:  # no config, no graph, a graph onnx cannot parse: the runtime's load will say
        return False
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:  # Unsqueeze takes its axes as an input from opset 13
        return False
    output = next((o for o in graph.output if o.name == logits), None)
    dims = output.type.tensor_type.shape.dim if output is not None else []
    if len(dims) != 3 or dims[1].HasField("dim_value") or any(n.name.startswith(PREFIX) for n in graph.node):
        return False
    producers = {name: node for node in graph.node for name in node.output}
    head, between = producers.get(logits), []
    while head is not None and head.op_type in _PASS_THROUGH:
        between.append(head.output[0])
        head = producers.get(head.input[0])
    if head is None or head.op_type not in _HEADS:
        return False
    graph.initializer.extend([numpy_helper.from_array(np.array(-1, dtype=np.int64), _INDEX),
                              numpy_helper.from_array(np.array([1], dtype=np.int64), _AXES)])
    gather = helper.make_node("Gather", [head.input[0], _INDEX], [PREFIX + "gathered"], name=_GATHER, axis=1)
    unsqueeze = helper.make_node("Unsqueeze", [PREFIX + "gathered", _AXES], [_LAST], name=_UNSQUEEZE)
    head.input[0] = _LAST
    nodes = list(graph.node)
    at = nodes.index(head)
    del graph.node[:]
    graph.node.extend([*nodes[:at], gather, unsqueeze, *nodes[at:]])
    recorded = [info for info in graph.value_info if info.name not in (head.output[0], *between)]
    del graph.value_info[:]  # shapes recorded on the way to the logits: one position now, left to the runtime
    graph.value_info.extend(recorded)
    _set_positions(graph, logits, 1)
    try:
        _save(model, path)
    except Exception:  # a graph onnx cannot write back (over 2 GB inline): it keeps every position
        return False
    return True


def _set_positions(graph: Any, logits: str, positions: int | str) -> None:
    """The sequence dimension of the logits output: 1, or a name for any length."""
    for info in graph.output:
        if info.name == logits:
            dim = info.type.tensor_type.shape.dim[1]
            if isinstance(positions, int):
                dim.ClearField("dim_param")
                dim.dim_value = positions
            else:
                dim.ClearField("dim_value")
                dim.dim_param = positions


def _save(model: Any, path: Path) -> None:
    """Written beside, then moved over: a graph is never half-written."""
    import onnx

    handle, temporary = tempfile.mkstemp(prefix=".graph-", suffix=".onnx", dir=path.parent)
    os.close(handle)
    try:
        onnx.save(model, temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _link_or_copy(item: Path, to: Path) -> None:
    """A hard link (onnxruntime refuses weights behind a symbolic link that leads out of the
    model's folder), or a copy across file systems."""
    if item.is_dir():
        shutil.copytree(item, to)
        return
    try:
        os.link(item, to)
    except OSError:
        shutil.copy2(item, to)


@contextlib.contextmanager
def all_logits(folder: Path) -> Iterator[Path]:
    """``folder`` itself, or, where ``keep_last_logits`` cut its graph, a temporary folder whose
    graph computes every position again (its other files hard-linked to the folder's). Load the model
    inside the ``with``: the view is removed after it."""
    folder = Path(folder)
    try:
        path, logits = _graph_and_logits(folder)
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as graph_bytes:
            cut = graph_bytes.find(PREFIX.encode()) >= 0
    except (OSError, ValueError, KeyError, TypeError):
        cut = False
    if not cut:
        yield folder
        return
    model = _load(path)
    graph = model.graph
    gather = next(n for n in graph.node if n.name == _GATHER)
    for node in graph.node:
        node.input[:] = [gather.input[0] if name == _LAST else name for name in node.input]
    kept = [n for n in graph.node if not n.name.startswith(PREFIX)]
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [t for t in graph.initializer if not t.name.startswith(PREFIX)]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    _set_positions(graph, logits, "sequence_length")
    with tempfile.TemporaryDirectory(prefix="slmops-all-logits-") as view:
        for item in folder.iterdir():
            if item != path:
                _link_or_copy(item.resolve(), Path(view) / item.name)
        _save(model, Path(view) / path.name)
        yield Path(view)
