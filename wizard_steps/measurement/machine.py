"""What limits generation on this machine, measured here: the CPU and the vector units that decide
which 4- and 8-bit kernels onnxruntime runs, the memory read bandwidth, and the bytes a generated
token reads (the weights every MatMul uses, one row of each table a Gather reads, and the KV cache
so far). Bandwidth / bytes per token bounds generation speed; the benchmark shows its medians as
a fraction of that bound, so a slow machine is explained by numbers, not only reported.
"""

from __future__ import annotations

import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core.i18n import _, number, percent
from wizard_steps.measurement.tune import usable_cpus

ROW_READERS = {"Gather", "GatherBlockQuantized", "GroupQueryAttention"}  # a row per token (cos/sin caches too)
ONNX_BYTES = {1: 4, 10: 2, 16: 2, 2: 1, 3: 1, 6: 4, 7: 8, 11: 8}  # elem_type -> bytes (float, fp16, ...)
BANDWIDTH_BYTES = 256 << 20  # more than the last-level cache of the CPUs this runs on (96 MB at most)


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    flags: tuple[str, ...] | None  # the kernel-deciding ones (KERNEL_FLAGS); None: not known here
    read_gb_s: float  # memory read bandwidth over ``cores`` threads
    weight_bytes_per_token: int | None = None  # None: the folder's graph could not be read
    kv_bytes_per_cached_token: int | None = None
    arch: str = "x86_64"  # platform.machine()

    @property
    def kernels(self) -> str:
        """The fastest integer kernels this CPU can run, as onnxruntime's MLAS picks them."""
        return kernels_for(self.flags, self.arch)

    def bound(self, context_tokens: int) -> float | None:
        """The most tokens/s the memory allows with ``context_tokens`` in the KV cache."""
        if not self.weight_bytes_per_token or self.read_gb_s <= 0:
            return None
        per_token = self.weight_bytes_per_token + (self.kv_bytes_per_cached_token or 0) * context_tokens
        return self.read_gb_s * 1e9 / per_token

    def describe(self) -> str:
        """One line: the CPU, its kernels, the bandwidth (and why an older CPU is slower)."""
        line = _("This machine: {cpu} · {cores} cores · {kernels}").format(
            cpu=self.cpu, cores=self.cores, kernels=self.kernels)
        if self.read_gb_s > 0:
            line += " · " + _("memory read {bandwidth} GB/s").format(bandwidth=number(self.read_gb_s, 1))
        if self.kernels in ("AVX2", _("no AVX2")):
            line += " " + _("(no VNNI: onnxruntime's 4- and 8-bit kernels run slower here than on CPUs "
                            "with AVX-512 VNNI or AVX-VNNI, so figures from such machines do not apply)")
        return line

    def bound_for_run(self, length: int, new_tokens: int) -> float | None:
        """The bound over a benchmark run of ``length`` prompt tokens and ``new_tokens`` generated:
        on average half the new tokens are in the cache beside the prompt."""
        return self.bound(length + new_tokens // 2)

    def against(self, medians: dict[int, float], new_tokens: int) -> str:
        """Measured generation medians (prompt length -> tok/s) as fractions of the memory bound."""
        shares = []
        for length, speed in sorted(medians.items()):
            bound = self.bound_for_run(length, new_tokens)
            if bound:
                shares.append(_("{fraction} ({length} tokens)").format(
                    fraction=percent(100 * speed / bound), length=length))
        if not shares:
            return ""
        return _("Generation ran at {shares} of the speed this memory allows (at most {bound} tok/s: "
                 "{mb} MB read per token).").format(
            shares=", ".join(shares), mb=number((self.weight_bytes_per_token or 0) / 1e6),
            bound=number(self.bound(0) or 0))


KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def kernels_for(flags: tuple[str, ...] | None, arch: str) -> str:
    """The fastest integer kernels a CPU with these flags runs, as onnxruntime's MLAS picks them."""
    if arch.lower() in ("arm64", "aarch64"):
        return "Arm NEON"
    if flags is None:
        return _("kernels not known")
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "avx2" in flags:
        return "AVX2"
    return _("no AVX2")


def cpu_flags() -> tuple[str, tuple[str, ...] | None]:
    """The CPU's model name and its kernel-deciding flags, from /proc/cpuinfo (Linux); elsewhere
    the flags are not known (None)."""
    fallback = platform.processor() or platform.machine() or "?"
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fallback, None
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    name = next((value.strip() for key, value in fields if key.strip() == "model name"), "")
    flags = next((value.split() for key, value in fields if key.strip() == "flags"), None)
    return name or fallback, None if flags is None else tuple(f for f in KERNEL_FLAGS if f in flags)


def cpu_name() -> str:
    """The processor's model name and the kernels it runs, e.g. "AMD EPYC (AVX2)": what a reader
    needs to weigh a figure measured here. The name alone is not enough: this VM's "AMD EPYC"
    listed AVX-512 VNNI on 2026-12-01 and AVX2 only on 2026-12-02, and a quantized model's figures
    and answers change with the kernels. A comparison saved under another label is measured again."""
    name, flags = cpu_flags()
    return name if flags is None else f"{name} ({kernels_for(flags, platform.machine())})"


def read_bandwidth(n_bytes: int, threads: int, runs: int = 5) -> float:
    """Best bytes/s of summing an array of ``n_bytes`` split over ``threads`` threads (numpy
    releases the GIL in the sum), after one pass that brings it in."""
    import numpy as np

    data = np.ones(max(n_bytes // 8, threads), dtype=np.float64)
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

    graph = onnx.load(str(Path(folder) / "model.onnx"), load_external_data=False).graph
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


def measure(folder: Path | None = None, threads: int | None = None) -> Machine:
    """This machine's CPU, kernels and read bandwidth (under a second; 0 where there is no memory
    for the probe), and the bytes a token of the converted ``folder`` reads (None where its graph
    cannot be read)."""

    cores = threads or usable_cpus()
    name, flags = cpu_flags()
    weights = kv = None
    if folder is not None and (Path(folder) / "model.onnx").is_file():
        try:
            weights, _total, kv = bytes_per_token(Path(folder))
        except Exception:  # a graph onnx cannot parse: the bandwidth still stands
            weights = kv = None
    try:
        gb_s = read_bandwidth(BANDWIDTH_BYTES, cores) / 1e9
    except MemoryError:  # no room for the probe beside the model: no bound rather than a failed run
        gb_s = 0.0
    return Machine(name, cores, flags, round(gb_s, 2), weights, kv, platform.machine())
