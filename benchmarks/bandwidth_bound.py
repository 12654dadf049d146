"""How close generation is to this machine's memory limit: each generated token reads every weight
that a MatMul uses (an embedding Gather reads one row) plus the KV cache so far, so read bandwidth
/ bytes per token bounds tokens/s. Prints the bandwidth (numpy sums over 2 threads, at the
model's own working-set size, which a large L3 may hold, and at 1 GiB, which no cache holds), the
bytes per token, and the tuned generation speed as a fraction of each bound.

    .venv/bin/python benchmarks/bandwidth_bound.py [FOLDER] [--lengths 16,128,512,1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROW_READERS = {"Gather", "GatherBlockQuantized", "GroupQueryAttention"}  # read a row per token (cos/sin caches)
ONNX_BYTES = {1: 4, 10: 2, 16: 2, 2: 1, 3: 1, 6: 4, 7: 8, 11: 8}  # elem_type -> bytes (float, fp16, ...)


def cpu_line() -> str:
    """The CPU model name and the flags that decide which kernels run."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    name = next((value.strip() for key, value in fields if key.strip() == "model name"), "?")
    flags = next((value.split() for key, value in fields if key.strip() == "flags"), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return f"{name}; flags: " + " ".join(f for f in wanted if f in flags)


def read_bandwidth(n_bytes: int, threads: int, runs: int = 7) -> float:
    """Best bytes/s of summing an array of ``n_bytes`` split over ``threads`` threads (numpy
    releases the GIL in the sum), after one pass that brings it in."""
    import numpy as np

    data = np.ones(n_bytes // 8, dtype=np.float64)
    parts = np.array_split(data, threads)

    def one_pass() -> float:
        workers = [threading.Thread(target=np.sum, args=(part,)) for part in parts]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return data.nbytes / (time.perf_counter() - started)

    one_pass()
    return max(one_pass() for _ in range(runs))


def bytes_per_token(folder: Path) -> tuple[int, int, int]:
    """(weight bytes a token reads, all weight bytes, KV cache bytes per cached token) from the
    graph: initializers feeding anything but a Gather count whole, Gather tables one row."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    graph = model.graph
    sizes: dict[str, tuple[int, int]] = {}  # name -> (bytes, rows)
    for init in graph.initializer:
        size = ExternalDataInfo(init).length if uses_external_data(init) else len(init.raw_data)
        if not size:
            count = 1
            for dim in init.dims:
                count *= dim
            size = count * ONNX_BYTES.get(init.data_type, 4)
        sizes[init.name] = (int(size), int(init.dims[0]) if init.dims else 1)
    users: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            if name in sizes:
                users.setdefault(name, set()).add(node.op_type)
    read = 0
    for name, (size, rows) in sizes.items():
        ops = users.get(name, set())
        read += size // max(rows, 1) if ops and ops <= ROW_READERS else size
    kv = 0
    for value in graph.input:
        if value.name.startswith("past_key_values."):
            shape = value.type.tensor_type.shape.dim
            kv += shape[1].dim_value * shape[3].dim_value * ONNX_BYTES.get(value.type.tensor_type.elem_type, 4)
    return read, sum(s for s, _ in sizes.values()), kv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--lengths", default="16,128,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from benchmarks.engine_overhead import make_demo_int4
    from wizard_steps import tune
    from wizard_steps.benchmark import prompt_of_length
    from wizard_steps.engine import GenaiBackend, ReplyDone, ReplyOptions
    from wizard_steps.templates import get_preset

    threads = tune.usable_cpus()
    folder = Path(args.folder) if args.folder else make_demo_int4()
    weights, total, kv = bytes_per_token(folder)
    near = read_bandwidth(max(weights, 1 << 20), threads)
    far = read_bandwidth(1 << 30, threads)
    print(cpu_line())
    print(f"{folder}: weights {total / 1e6:.1f} MB, read per token {weights / 1e6:.1f} MB "
          f"(+ {kv / 1e3:.1f} kB of KV cache per cached token)")
    print(f"read bandwidth, {threads} threads: {near / 1e9:.1f} GB/s over {weights / 1e6:.0f} MB "
          f"(the model's size), {far / 1e9:.1f} GB/s over 1 GiB")
    backend = GenaiBackend(folder, get_preset("chatml").template,
                           overlay=tune.Candidate(threads).overlay())
    options = ReplyOptions(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    for length in (int(n) for n in args.lengths.split(",")):
        prompt = prompt_of_length(backend, length)
        speeds = []
        for run in range(args.runs + 1):
            done = next(e for e in backend.stream(prompt, options) if isinstance(e, ReplyDone))
            if run:
                speeds.append(done.stats.tokens_per_s)
        speed = statistics.median(speeds)
        per_token = weights + kv * (length + args.tokens // 2)
        bound_near, bound_far = near / per_token, far / per_token
        print(f"{length:5d} tokens: generation {speed:6.1f} tok/s ({threads} threads); bound "
              f"{bound_near:6.0f} tok/s at model-size bandwidth ({speed / bound_near:.0%}), "
              f"{bound_far:6.0f} at 1 GiB bandwidth ({speed / bound_far:.0%})", flush=True)


if __name__ == "__main__":
    main()
