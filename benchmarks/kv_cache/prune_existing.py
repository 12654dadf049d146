"""prune_existing.py SRC DST: a copy of a converted folder whose graph computes only the last
position's logits (what the builder's prune_lm_head=true does: Gather(axis=1, index -1) +
Unsqueeze(axis 1) in front of the LM head). Weights are shared by symlink (model.onnx is rewritten)."""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

src, dst = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(dst, exist_ok=True)
m = onnx.load(os.path.join(src, "model.onnx"), load_external_data=False)
head = next(n for n in m.graph.node if "logits" in n.output)
x = head.input[0]
m.graph.initializer.extend([numpy_helper.from_array(np.array(-1, dtype=np.int64), "/lm_head/prune/idx"),
                            numpy_helper.from_array(np.array([1], dtype=np.int64), "/lm_head/prune/axes")])
g = helper.make_node("Gather", [x, "/lm_head/prune/idx"], ["/lm_head/prune/gathered"], name="/lm_head/prune/Gather", axis=1)
u = helper.make_node("Unsqueeze", ["/lm_head/prune/gathered", "/lm_head/prune/axes"], ["/lm_head/prune/last"],
                     name="/lm_head/prune/Unsqueeze")
head.input[0] = "/lm_head/prune/last"
nodes = list(m.graph.node)
i = nodes.index(head)
del m.graph.node[:]
m.graph.node.extend([*nodes[:i], g, u, *nodes[i:]])
out = next(o for o in m.graph.output if o.name == "logits")
out.type.tensor_type.shape.dim[1].ClearField("dim_param")
out.type.tensor_type.shape.dim[1].dim_value = 1
onnx.save(m, os.path.join(dst, "model.onnx"))
for f in os.listdir(src):
    if f != "model.onnx" and not os.path.exists(os.path.join(dst, f)):
        os.symlink(os.path.join(src, f), os.path.join(dst, f))
