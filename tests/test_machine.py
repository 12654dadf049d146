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

from wizard_steps.measurement import machine
from wizard_steps.measurement.machine import Machine

ROOT = Path(__file__).resolve().parents[1]


XEON = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\n"
        "flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8 xsave\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu avx2\n")
EPYC_AVX2 = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse4_2 avx avx2 fma vaes\n"
ALDER_LAKE = "model name\t: 12th Gen Intel(R) Core(TM) i7-1260P\nflags\t\t: fpu avx2 avx_vnni\n"
OLD_XEON = "model name\t: Intel(R) Xeon(R) CPU E5-2670\nflags\t\t: fpu sse4_2 avx\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sha2 crc32\nCPU part\t: 0xd0c\n"


@pytest.mark.parametrize(("cpuinfo", "name", "flags"), [
    (XEON, "Intel(R) Xeon(R) Platinum 8480C", ("avx2", "avx512f", "avx512_vnni", "amx_int8")),
    (EPYC_AVX2, "AMD EPYC 7B12", ("avx2",)),
    (ALDER_LAKE, "12th Gen Intel(R) Core(TM) i7-1260P", ("avx2", "avx_vnni")),  # not avx512_vnni
    (OLD_XEON, "Intel(R) Xeon(R) CPU E5-2670", ()),
    (ARM, None, None),  # Arm's cpuinfo has Features, no model name and no x86 flags: not known
    (None, None, None),  # no /proc/cpuinfo (macOS, Windows)
], ids=["avx512-vnni-amx", "avx2-only", "avx-vnni", "no-avx2", "arm", "no-cpuinfo"])
def test_the_cpu_is_named_and_its_flags_are_the_kernel_deciding_ones(
        cpuinfo: str | None, name: str | None, flags: tuple[str, ...] | None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel's own words for this CPU, as /proc/cpuinfo gives them on each kind of machine
    file = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        file.write_text(cpuinfo)
    monkeypatch.setattr(machine, "Path", lambda path: file if str(path) == "/proc/cpuinfo" else Path(path))
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "some-arch")
    assert machine.cpu_flags() == (name or "some-arch", flags)


def test_this_machines_cpu_is_named_and_its_flags_are_known_ones() -> None:
    name, flags = machine.cpu_flags()
    assert name and name != "?"
    assert flags is None or set(flags) <= set(machine.KERNEL_FLAGS)


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


def test_the_demo_reads_its_weights_but_one_embedding_row_and_its_kv_cache_per_token(
        demo_int4: Path, demo_model: Path) -> None:
    read, total, kv = machine.bytes_per_token(demo_int4)
    stored = sum(p.stat().st_size for p in demo_int4.glob("model.onnx*"))
    config = json.loads((demo_model / "config.json").read_text())
    assert 0.9 * stored < total <= stored  # every initializer, once
    # the embedding table is gathered a row at a time: at least a 4-bit table's worth is not read
    table = config["vocab_size"] * config["hidden_size"]
    assert table // 2 < total - read and 0.3 * total < read
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
    # the model's own memory: more than its folder on disk (the weights are resident, plus the
    # runtime and the cache), less than the whole process (Python and the CLI come on top)
    from wizard_steps.model.model_source import folder_size

    assert folder_size(demo_int4) < data["model_rss_bytes"] < data["peak_rss_bytes"]


@pytest.mark.parametrize(("cpuinfo", "label"), [
    (XEON, "Intel(R) Xeon(R) Platinum 8480C (AVX-512 VNNI)"),
    (EPYC_AVX2, "AMD EPYC 7B12 (AVX2)"),
    (None, "some-arch"),  # flags not known: the name alone
], ids=["avx512-vnni", "avx2-only", "no-cpuinfo"])
def test_a_figures_cpu_label_names_the_kernels_too(cpuinfo: str | None, label: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same model name has come with AVX-512 one day and AVX2 only the next on one VM, and a
    quantized model's figures change with the kernels: a label without them would join the two."""
    file = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        file.write_text(cpuinfo)
    monkeypatch.setattr(machine, "Path", lambda path: file if str(path) == "/proc/cpuinfo" else Path(path))
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "some-arch" if cpuinfo is None else "x86_64")
    assert machine.cpu_name() == label
