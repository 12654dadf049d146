"""The live benchmark: a plan of prompt lengths, run as an iterator of samples, then a summary
(median and p95 per length, peak memory, a leak verdict) and exports (JSON, CSV, Markdown)."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import psutil

from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import _, number, percent, using
from wizard_steps.prompt.templates import Conversation
from wizard_steps.runtime.engine import Backend, ReplyDone, ReplyOptions

LEAK_GROWTH_LIMIT = 0.05


class BenchmarkError(WizardError):
    """A benchmark plan is not valid."""


def parse_lengths(text: str, label: str) -> tuple[int, ...]:
    """Prompt lengths typed as "16,128,512"; ``label`` names the field in the error."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BenchmarkError(_("{label} {text!r} are not whole numbers separated by commas.").format(
            label=label, text=text), _("Write them like 16,128,512.")) from None


@dataclass(frozen=True)
class BenchPlan:
    lengths: tuple[int, ...] = (16, 128, 512, 1024)
    new_tokens: int = 64
    runs: int = 3
    warmup: int = 1

    def validate(self, context_length: int | None = None) -> BenchPlan:
        if not self.lengths or any(n < 8 for n in self.lengths):
            raise BenchmarkError(_("Prompt lengths must be 8 tokens or more."),
                                 _("Use for example 16,128,512,1024."))
        if not 1 <= self.new_tokens <= 4096:
            raise BenchmarkError(_("Generation length {tokens} is out of range.").format(tokens=self.new_tokens),
                                 _("Choose 1 to 4096 new tokens."))
        if not 1 <= self.runs <= 1000 or not 0 <= self.warmup <= 20:
            raise BenchmarkError(_("Runs must be 1-1000 and warm-up runs 0-20."),
                                 _("Lower the number of runs."))
        if context_length and max(self.lengths) + self.new_tokens > context_length:
            raise BenchmarkError(
                _("The longest prompt ({longest}) plus {tokens} new tokens does not fit the model's "
                  "context of {context} tokens.").format(longest=max(self.lengths), tokens=self.new_tokens,
                                                         context=context_length),
                _("Drop the longest length or generate fewer tokens."))
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
    rss_peak_bytes: int = 0  # the process's peak while prompts of this length ran: memory grows with the length


@dataclass(frozen=True)
class BenchSummary:
    backend: str
    model: str
    plan: BenchPlan
    per_length: tuple[LengthSummary, ...]
    peak_rss_bytes: int
    leak: LeakVerdict
    samples: tuple[BenchSample, ...] = field(repr=False, default=())
    base_rss_bytes: int = 0  # the process before the model was loaded (0: not known)

    @property
    def model_rss_bytes(self) -> int | None:
        """What the model and its runtime take: the process's peak less what it held before the
        load (the wizard's own Textual, Python and libraries are not the model's)."""
        return self.peak_rss_bytes - self.base_rss_bytes if self.base_rss_bytes else None


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
                           _("{runs} runs measured; at least {minimum} are needed to judge a leak.").format(
                               runs=len(rss), minimum=minimum_runs))
    first, last = statistics.median(rss[:10]), statistics.median(rss[-10:])
    growth = (last - first) / first
    leak = growth >= LEAK_GROWTH_LIMIT
    note = (_("RSS grew {growth} over {runs} runs (limit {limit}).") if growth >= 0 else
            _("RSS fell {growth} over {runs} runs (limit {limit})."))
    return LeakVerdict(len(rss), growth, leak, note.format(
        growth=percent(abs(growth) * 100, 1), runs=len(rss), limit=percent(LEAK_GROWTH_LIMIT * 100, 0)))


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


def release_free_heap() -> None:
    """Hand the allocator's free pages back to the system (glibc keeps them; Linux only), so that
    RSS measures the memory still in use."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def process_rss() -> int:
    """This process's resident memory in use now: taken before a model is loaded, it is what the
    model's figure leaves out. The free heap goes back first: after the deploy step had loaded and
    unloaded the model, 226 MB of it stayed resident and the benchmark screen read "model and
    runtime 56 MB" for a model that takes about 500."""
    release_free_heap()
    return int(psutil.Process().memory_info().rss)


def run(backend: Backend, plan: BenchPlan, model_name: str = "", cancel: threading.Event | None = None,
        base_rss: int = 0) -> Iterator[BenchSample | Progress | BenchSummary]:
    """Warm up, then run every length ``plan.runs`` times; yields samples as they come and a
    summary at the end (also after a cancel, over what was measured). ``base_rss``: the process's
    RSS before the backend was opened, for the model's own memory."""
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
            yield Progress(_("{length}-token prompt, run {run}/{runs}").format(
                length=length, run=index + 1, runs=plan.warmup + plan.runs), done / total)
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
    yield summarize(backend.name, model_name, plan, samples, base_rss)


def summarize(backend: str, model: str, plan: BenchPlan, samples: list[BenchSample],
              base_rss: int = 0) -> BenchSummary:
    measured = [s for s in samples if not s.warmup]
    rows = []
    for length in plan.lengths:
        mine = [s for s in measured if s.length == length]
        if not mine:
            continue
        peak = max(s.rss_bytes for s in samples if s.length == length)
        rows.append(LengthSummary(
            length, len(mine),
            statistics.median(s.ttft_s for s in mine), p95([s.ttft_s for s in mine]),
            statistics.median(s.prompt_tokens_per_s for s in mine),
            statistics.median(s.tokens_per_s for s in mine), p95([s.tokens_per_s for s in mine]),
            statistics.median(s.latency_s for s in mine), p95([s.latency_s for s in mine]), peak))
    return BenchSummary(backend, model, plan, tuple(rows),
                        max((s.rss_bytes for s in samples), default=0),
                        leak_verdict([s.rss_bytes for s in measured]), tuple(samples), base_rss)


# --- exports -------------------------------------------------------------------------------------


def to_json(summary: BenchSummary) -> str:
    """Machine output: the leak note is English whatever the language in use."""
    data = asdict(summary)
    data["model_rss_bytes"] = summary.model_rss_bytes
    with using("en"):
        data["leak"]["note"] = leak_verdict([s.rss_bytes for s in summary.samples if not s.warmup]).note
    return json.dumps(data, indent=2)


def to_csv(summary: BenchSummary) -> str:
    out = io.StringIO()
    names = list(BenchSample.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for sample in summary.samples:
        writer.writerow(asdict(sample))
    return out.getvalue()


def to_markdown(summary: BenchSummary) -> str:
    """The report for people, in the language in use (numbers with its decimal mark)."""
    plan = summary.plan
    lines = [_("# Benchmark: {model} ({backend})").format(model=summary.model or _("model"),
                                                          backend=summary.backend), "",
             _("Plan: prompt lengths {lengths} tokens, {tokens} new tokens, {runs} runs each after "
               "{warmup} warm-up.").format(lengths=", ".join(map(str, plan.lengths)),
                                           tokens=plan.new_tokens, runs=plan.runs, warmup=plan.warmup), "",
             _("| prompt tokens | runs | TTFT median (ms) | TTFT p95 (ms) | prompt tok/s | "
               "gen tok/s median | gen tok/s p95 | latency median (s) | peak RSS (MB) |"),
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in summary.per_length:
        lines.append(f"| {row.length} | {row.runs} | {number(row.ttft_median_s * 1000)} | "
                     f"{number(row.ttft_p95_s * 1000)} | {number(row.prompt_tps_median)} | "
                     f"{number(row.tps_median, 1)} | {number(row.tps_p95, 1)} | "
                     f"{number(row.latency_median_s, 2)} | {number(row.rss_peak_bytes / 1e6)} |")
    if summary.model_rss_bytes is not None:
        lines += ["", _("The model and its runtime: {model} MB (the process grew by that from before the "
                        "load).").format(model=number(summary.model_rss_bytes / 1e6))]
    lines += ["", _("Peak RSS of the whole process: {rss} MB. Memory: {note}").format(
        rss=number(summary.peak_rss_bytes / 1e6), note=summary.leak.note), ""]
    return "\n".join(lines)


def export(summary: BenchSummary, path: Path) -> Path:
    """Write the report; the format follows the suffix (.json, .csv, .md)."""
    writers = {".json": to_json, ".csv": to_csv, ".md": to_markdown}
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise BenchmarkError(_("Cannot export to {file}.").format(file=path.name),
                             _("Use a .json, .csv or .md file name."))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(writer(summary), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise BenchmarkError(_("Cannot write the report to {path} ({error}).").format(
                                 path=path, error=exc.strerror or exc),
                             _("Choose a folder that exists and that you can write to.")) from None
    return path


def record(summary: BenchSummary | None, checks: Sequence[object]) -> dict[str, object]:
    """A run's medians per prompt length and the checklist's verdict, in plain JSON types: what
    the wizard's state keeps for its summary. ``checks`` are quality checks (name, status)."""
    statuses = [(str(getattr(c, "name", "")), str(getattr(c, "status", ""))) for c in checks]
    failed = [name for name, status in statuses if status == "fail"]
    return {
        "backend": summary.backend if summary else None,
        "per_length": [{"length": r.length, "ttft_ms": round(r.ttft_median_s * 1000, 1),
                        "prompt_tps": round(r.prompt_tps_median, 1), "tps": round(r.tps_median, 1)}
                       for r in (summary.per_length if summary else ())],
        "checks": {"pass": sum(s == "pass" for _n, s in statuses), "fail": len(failed),
                   "skipped": sum(s == "skipped" for _n, s in statuses), "failed": failed},
    }
