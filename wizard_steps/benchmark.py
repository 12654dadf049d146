"""The live benchmark: a plan of prompt lengths, run as an iterator of samples, then a summary
(median and p95 per length, peak memory, a leak verdict) and exports (JSON, CSV, Markdown)."""

from __future__ import annotations

import csv
import io
import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import psutil

from wizard_steps.engine import Backend, ReplyDone, ReplyOptions
from wizard_steps.errors import WizardError
from wizard_steps.events import Progress
from wizard_steps.templates import Conversation

LEAK_GROWTH_LIMIT = 0.05


class BenchmarkError(WizardError):
    """A benchmark plan is not valid."""


@dataclass(frozen=True)
class BenchPlan:
    lengths: tuple[int, ...] = (16, 128, 512, 1024)
    new_tokens: int = 64
    runs: int = 3
    warmup: int = 1

    def validate(self, context_length: int | None = None) -> BenchPlan:
        if not self.lengths or any(n < 8 for n in self.lengths):
            raise BenchmarkError("Prompt lengths must be 8 tokens or more.",
                                 "Use for example 16,128,512,1024.")
        if not 1 <= self.new_tokens <= 4096:
            raise BenchmarkError(f"Generation length {self.new_tokens} is out of range.",
                                 "Choose 1 to 4096 new tokens.")
        if not 1 <= self.runs <= 1000 or not 0 <= self.warmup <= 20:
            raise BenchmarkError("Runs must be 1-1000 and warm-up runs 0-20.",
                                 "Lower the number of runs.")
        if context_length and max(self.lengths) + self.new_tokens > context_length:
            raise BenchmarkError(
                f"The longest prompt ({max(self.lengths)}) plus {self.new_tokens} new tokens does "
                f"not fit the model's context of {context_length} tokens.",
                "Drop the longest length or generate fewer tokens.")
        return self


@dataclass(frozen=True)
class BenchSample:
    length: int  # the planned prompt length
    run: int
    warmup: bool
    prompt_tokens: int
    generated_tokens: int
    ttft_s: float
    prompt_tokens_per_s: float
    tokens_per_s: float
    latency_s: float
    rss_bytes: int
    cpu_percent: float


@dataclass(frozen=True)
class LengthSummary:
    length: int
    runs: int
    ttft_median_s: float
    ttft_p95_s: float
    prompt_tps_median: float
    tps_median: float
    tps_p95: float
    latency_median_s: float
    latency_p95_s: float


@dataclass(frozen=True)
class BenchSummary:
    backend: str
    model: str
    plan: BenchPlan
    per_length: tuple[LengthSummary, ...]
    peak_rss_bytes: int
    leak: LeakVerdict
    samples: tuple[BenchSample, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class LeakVerdict:
    runs: int
    growth: float | None  # fraction from the first 10 to the last 10 measured runs
    leak: bool | None  # None: too few runs to tell
    note: str


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else 0.0


def leak_verdict(rss: list[int], minimum_runs: int = 50) -> LeakVerdict:
    """Compare the median RSS of the first and last 10 runs (after warm-up)."""
    if len(rss) < minimum_runs:
        return LeakVerdict(len(rss), None, None,
                           f"{len(rss)} runs measured; at least {minimum_runs} are needed to judge a leak.")
    first, last = statistics.median(rss[:10]), statistics.median(rss[-10:])
    growth = (last - first) / first
    leak = growth >= LEAK_GROWTH_LIMIT
    return LeakVerdict(len(rss), growth, leak,
                       f"RSS {'grew' if growth >= 0 else 'fell'} {abs(growth) * 100:.1f} % over "
                       f"{len(rss)} runs (limit {LEAK_GROWTH_LIMIT * 100:.0f} %).")


def _source_text() -> str:
    return resources.files("wizard_steps").joinpath("data/bench_text.txt").read_text(encoding="utf-8")


def prompt_of_length(backend: Backend, length: int) -> Conversation:
    """A one-message conversation whose rendered prompt is about ``length`` tokens."""
    words = (_source_text().split() * 50)
    low, high = 1, len(words)
    best = Conversation(None, (("user", words[0]),))
    while low <= high:
        middle = (low + high) // 2
        candidate = Conversation(None, (("user", " ".join(words[:middle])),))
        if backend.count_tokens(candidate) <= length:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def run(backend: Backend, plan: BenchPlan, model_name: str = "",
        cancel: threading.Event | None = None) -> Iterator[BenchSample | Progress | BenchSummary]:
    """Warm up, then run every length ``plan.runs`` times; yields samples as they come and a
    summary at the end (also after a cancel, over what was measured)."""
    plan.validate(backend.context_length)
    process = psutil.Process()
    options = ReplyOptions(max_new_tokens=plan.new_tokens, min_new_tokens=plan.new_tokens)
    prompts = {n: prompt_of_length(backend, n) for n in plan.lengths}
    total = len(plan.lengths) * (plan.runs + plan.warmup)
    done = 0
    samples: list[BenchSample] = []
    for length in plan.lengths:
        for index in range(plan.warmup + plan.runs):
            if cancel is not None and cancel.is_set():
                break
            yield Progress(f"{length}-token prompt, run {index + 1}/{plan.warmup + plan.runs}",
                           done / total)
            process.cpu_percent(None)
            started = time.perf_counter()
            reply = None
            for event in backend.stream(prompts[length], options, cancel):
                if isinstance(event, ReplyDone):
                    reply = event
            latency = time.perf_counter() - started
            cpu = process.cpu_percent(None)
            done += 1
            if reply is None or reply.stats.finish_reason == "cancelled":
                break
            stats = reply.stats
            sample = BenchSample(length, index - plan.warmup + 1, index < plan.warmup,
                                 stats.prompt_tokens, stats.generated_tokens, stats.ttft_s,
                                 stats.prompt_tokens_per_s, stats.tokens_per_s, latency,
                                 process.memory_info().rss, cpu)
            samples.append(sample)
            yield sample
    yield summarize(backend.name, model_name, plan, samples)


def summarize(backend: str, model: str, plan: BenchPlan, samples: list[BenchSample]) -> BenchSummary:
    measured = [s for s in samples if not s.warmup]
    rows = []
    for length in plan.lengths:
        mine = [s for s in measured if s.length == length]
        if not mine:
            continue
        rows.append(LengthSummary(
            length, len(mine),
            statistics.median(s.ttft_s for s in mine), p95([s.ttft_s for s in mine]),
            statistics.median(s.prompt_tokens_per_s for s in mine),
            statistics.median(s.tokens_per_s for s in mine), p95([s.tokens_per_s for s in mine]),
            statistics.median(s.latency_s for s in mine), p95([s.latency_s for s in mine])))
    return BenchSummary(backend, model, plan, tuple(rows),
                        max((s.rss_bytes for s in samples), default=0),
                        leak_verdict([s.rss_bytes for s in measured]), tuple(samples))


# --- exports -------------------------------------------------------------------------------------


def to_json(summary: BenchSummary) -> str:
    return json.dumps(asdict(summary), indent=2)


def to_csv(summary: BenchSummary) -> str:
    out = io.StringIO()
    names = list(BenchSample.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for sample in summary.samples:
        writer.writerow(asdict(sample))
    return out.getvalue()


def to_markdown(summary: BenchSummary) -> str:
    lines = [f"# Benchmark: {summary.model or 'model'} ({summary.backend})", "",
             f"Plan: prompt lengths {', '.join(map(str, summary.plan.lengths))} tokens, "
             f"{summary.plan.new_tokens} new tokens, {summary.plan.runs} runs each after "
             f"{summary.plan.warmup} warm-up.", "",
             "| prompt tokens | runs | TTFT median (ms) | TTFT p95 (ms) | prompt tok/s | "
             "gen tok/s median | gen tok/s p95 | latency median (s) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in summary.per_length:
        lines.append(f"| {row.length} | {row.runs} | {row.ttft_median_s * 1000:.0f} | "
                     f"{row.ttft_p95_s * 1000:.0f} | {row.prompt_tps_median:.0f} | "
                     f"{row.tps_median:.1f} | {row.tps_p95:.1f} | {row.latency_median_s:.2f} |")
    lines += ["", f"Peak RSS: {summary.peak_rss_bytes / 1e6:.0f} MB. Memory: {summary.leak.note}", ""]
    return "\n".join(lines)


def export(summary: BenchSummary, path: Path) -> Path:
    """Write the report; the format follows the suffix (.json, .csv, .md)."""
    writers = {".json": to_json, ".csv": to_csv, ".md": to_markdown}
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise BenchmarkError(f"Cannot export to {path.name}.", "Use a .json, .csv or .md file name.")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(writer(summary), encoding="utf-8")
    tmp.replace(path)
    return path
