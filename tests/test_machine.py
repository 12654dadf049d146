"""What limits generation here: the CPU's kernel flags, the memory read bandwidth, the bytes a
generated token reads from the converted graph, and the bound they give. Real measurements on
this machine; the assertions hold on any CPU (no figure is expected, only relations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard_steps import machine
from wizard_steps.machine import Machine

ROOT = Path(__file__).resolve().parents[1]


def test_the_cpu_is_named_and_its_flags_are_the_kernel_deciding_ones() -> None:
    name, flags = machine.cpu_flags()
    assert name and name != "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "flags" in cpuinfo.read_text():  # x86 Linux: the kernel's own flags, not guessed
        assert flags is not None and set(flags) <= set(machine.KERNEL_FLAGS)
        reported = next(line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                        if line.startswith("flags"))
        assert all(flag in reported for flag in flags)
        assert ("avx2" in flags) is ("avx2" in reported)


def test_read_bandwidth_is_measured_with_one_thread_and_with_two() -> None:
    for threads in (1, 2):
        assert machine.read_bandwidth(64 << 20, threads, runs=3) > 1e8  # any machine reads over 0.1 GB/s


def test_a_token_reads_every_matmul_weight_but_one_row_of_a_gathered_table(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.ones((1000, 16), np.float32), "table")  # 64 kB, a row 64 B
    weight = numpy_helper.from_array(np.ones((16, 8), np.float32), "weight")  # 512 B
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]),
         helper.make_node("MatMul", ["rows", "weight"], ["out"])],
        "probe", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1]),
                  helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, [1, 2, "past", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8])], [table, weight])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    assert machine.bytes_per_token(tmp_path) == (64 + 512, 64_000 + 512, 2 * 4 * 4)


def test_the_demo_reads_most_of_its_weights_and_its_kv_cache_per_token(demo_int4: Path, demo_model: Path) -> None:
    read, total, kv = machine.bytes_per_token(demo_int4)
    stored = sum(p.stat().st_size for p in demo_int4.glob("model.onnx*"))
    assert 0.9 * stored < total <= stored and 0.5 * total < read <= total  # every initializer, once
    config = json.loads((demo_model / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    assert kv == config["num_hidden_layers"] * 2 * config["num_key_value_heads"] * head_dim * 4  # fp32 K and V


def test_the_bound_and_what_the_lines_say() -> None:
    avx2 = Machine("Some CPU", 2, ("avx2",), 12.0, 120_000_000, 40_000)
    assert avx2.bound(0) == pytest.approx(100.0)
    assert avx2.bound(1000) == pytest.approx(12e9 / 160e6)  # the KV cache read grows with the context
    assert avx2.kernels == "AVX2" and "no VNNI" in avx2.describe()
    vnni = Machine("Other CPU", 2, ("avx2", "avx512f", "avx512_vnni"), 12.0, 120_000_000, 40_000)
    assert vnni.kernels == "AVX-512 VNNI" and "no VNNI" not in vnni.describe()
    line = avx2.against({16: 50.0, 512: 40.0}, 64)  # judged at the prompt plus half the new tokens
    share = round(100 * 50.0 / avx2.bound(16 + 32))
    assert f"{share} % (16 tokens)" in line and "at most 100 tok/s" in line and "120 MB read per token" in line
    unknown = Machine("Some CPU", 2, ("avx2",), 12.0)
    assert unknown.bound(0) is None and unknown.against({16: 50.0}, 64) == ""
    arm = Machine("Apple M2", 8, None, 60.0, arch="arm64")  # no /proc/cpuinfo, and no x86 flags to lack
    assert arm.kernels == "Arm NEON" and "no VNNI" not in arm.describe()
    windows = Machine("Intel64 Family 6", 4, None, 20.0, arch="AMD64")
    assert windows.kernels == "kernels not known" and "no VNNI" not in windows.describe()


@pytest.mark.slow
def test_slmops_bench_reports_the_machine_and_the_bound(demo_int4: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tui", "bench", str(demo_int4), "--lengths", "16,64", "--runs", "1",
               "--new-tokens", "16", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "SLMOPS_HOME": str(tmp_path / "home"), "SLMOPS_LANG": "en"})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    found = data["machine"]
    assert found["cpu"] == machine.cpu_flags()[0] and found["read_gb_s"] > 0.1
    assert found["weight_bytes_per_token"] == machine.bytes_per_token(demo_int4)[0]
    bounds = found["memory_bound_tok_s"]
    assert set(bounds) == {"16", "64"} and bounds["16"] > bounds["64"] > 0  # a longer context reads more
