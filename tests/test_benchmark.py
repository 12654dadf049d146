"""The benchmark: live samples, a summary with every field, exports that parse back."""

from __future__ import annotations

import csv
import ctypes
import json
import sys
from pathlib import Path

import psutil
import pytest

from wizard_steps.core.events import Progress
from wizard_steps.measurement import benchmark
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import GenaiBackend


@pytest.fixture(scope="module")
def summary(demo_int4: Path) -> benchmark.BenchSummary:
    backend = GenaiBackend(demo_int4, get_preset("chatml").template)
    plan = benchmark.BenchPlan(lengths=(16, 128), new_tokens=8, runs=2, warmup=1)
    events = list(benchmark.run(backend, plan, model_name="demo-int4"))
    assert any(isinstance(e, Progress) for e in events)
    assert sum(isinstance(e, benchmark.BenchSample) for e in events) == 6
    final = events[-1]
    assert isinstance(final, benchmark.BenchSummary)
    return final


@pytest.mark.slow
def test_summary_has_every_field_per_length(summary: benchmark.BenchSummary) -> None:
    assert [row.length for row in summary.per_length] == [16, 128]
    for row in summary.per_length:
        assert row.runs == 2
        assert 0 < row.ttft_median_s <= row.ttft_p95_s
        assert row.tps_median > 0 and row.prompt_tps_median > 0 and row.latency_median_s > 0
    assert summary.peak_rss_bytes > 50_000_000
    assert summary.leak.leak is None and "at least 50" in summary.leak.note
    # memory at each length: the peak of that length's runs, the whole run's peak among them
    for row in summary.per_length:
        assert row.rss_peak_bytes == max(s.rss_bytes for s in summary.samples if s.length == row.length)
    assert max(row.rss_peak_bytes for row in summary.per_length) == summary.peak_rss_bytes


@pytest.mark.slow
def test_prompts_have_about_the_planned_length(summary: benchmark.BenchSummary) -> None:
    for sample in summary.samples:
        assert sample.length * 0.9 <= sample.prompt_tokens <= sample.length
        assert sample.generated_tokens == 8


@pytest.mark.slow
def test_exports_parse_back(summary: benchmark.BenchSummary, tmp_path: Path) -> None:
    data = json.loads(benchmark.export(summary, tmp_path / "r.json").read_text())
    assert data["per_length"][0]["length"] == 16 and len(data["samples"]) == 6
    assert data["per_length"][1]["rss_peak_bytes"] == summary.per_length[1].rss_peak_bytes > 0
    rows = list(csv.DictReader((benchmark.export(summary, tmp_path / "r.csv")).open()))
    assert len(rows) == 6 and float(rows[0]["ttft_s"]) > 0
    markdown = benchmark.export(summary, tmp_path / "r.md").read_text()
    assert "| 128 | 2 |" in markdown and "Peak RSS" in markdown and "peak RSS (MB) |" in markdown


def test_unknown_export_format_is_refused(tmp_path: Path) -> None:
    empty = benchmark.summarize("x", "m", benchmark.BenchPlan(), [])
    with pytest.raises(benchmark.BenchmarkError, match="Cannot export"):
        benchmark.export(empty, tmp_path / "r.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_leak_verdict_flags_growth_and_passes_a_flat_line() -> None:
    flat = benchmark.leak_verdict([100_000_000 + (i % 3) * 1000 for i in range(60)])
    growing = benchmark.leak_verdict([100_000_000 + i * 500_000 for i in range(60)])
    assert flat.leak is False and growing.leak is True and growing.growth > 0.05


def test_plan_that_does_not_fit_the_context_is_refused() -> None:
    with pytest.raises(benchmark.BenchmarkError, match="does not fit"):
        benchmark.BenchPlan(lengths=(16, 2048), new_tokens=64).validate(context_length=2048)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_the_baseline_leaves_out_memory_the_allocator_kept_after_a_model_went_away() -> None:
    """What an earlier load and unload freed but glibc kept (the deploy step's check, before the
    benchmark) is not in the baseline, so it is not taken from the model's figure."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 << 10) for _ in range(1600)]  # 100 MB in blocks below mmap's threshold
    keep = libc.malloc(64 << 10)  # above them: freeing them leaves no free top for free() to trim
    for block in blocks:
        ctypes.memset(block, 1, 64 << 10)
    for block in blocks:
        libc.free(block)
    raw = psutil.Process().memory_info().rss
    assert benchmark.process_rss() < raw - 50_000_000
    libc.free(keep)
