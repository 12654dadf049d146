"""The benchmark step's whole measurement, as one chain the wizard shows: the benchmark's samples
and summary, then what limits the speed on this machine, then the quality checklist one item at a
time (its domain queries judged against the source). A stop ends it between any two events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import _
from wizard_steps.measurement import benchmark, machine
from wizard_steps.measurement.benchmark import BenchPlan, BenchSample, BenchSummary
from wizard_steps.measurement.machine import Machine
from wizard_steps.runtime.engine import Backend
from wizard_steps.verdict import quality
from wizard_steps.verdict.quality import QualityCheck

CHECKS = (quality.DOMAIN, quality.FORMAT, quality.MEMORY, quality.LENGTHS, quality.EDGES, quality.FIDELITY)


@dataclass(frozen=True)
class Checkup:
    """One run: a benchmark plan (None: the checklist only), then the checklist."""

    plan: BenchPlan | None
    source: str | None  # the HF folder fidelity compares with
    fidelity: bool  # False: the user switched the (slow) comparison off
    converted: str | None
    model_name: str
    queries: tuple[quality.DomainQuery, ...] = ()
    eval_windows: int | None = None  # fidelity on the first windows of the evaluation text only


@dataclass(frozen=True)
class CheckStarted:
    """The checklist item now running (the first; each verdict names the next)."""

    name: str


CheckupEvent = BenchSample | Progress | BenchSummary | Machine | CheckStarted | QualityCheck[Any]


def run_checkup(job: Checkup, open_backend: Callable[[], Backend],
                stop: threading.Event) -> Iterator[CheckupEvent]:
    """The benchmark's samples and summary, the machine, then the checklist, one check at a time."""
    before = benchmark.process_rss()
    backend = open_backend()
    try:
        summary = None
        if job.plan is not None:
            for event in benchmark.run(backend, job.plan, job.model_name, cancel=stop, base_rss=before):
                yield event
                if isinstance(event, BenchSummary):
                    summary = event
        if stop.is_set():
            return
        if summary is not None and summary.per_length:  # what limits the speed here (~1 s)
            yield machine.measure(getattr(backend, "folder", None))
        yield CheckStarted(CHECKS[0])
        rss_samples = None if summary is None else [s.rss_bytes for s in summary.samples]
        tokens_per_s = None if summary is None else {r.length: r.tps_median for r in summary.per_length}
        for check in quality.iter_checklist(
                backend, queries=job.queries or quality.demo_queries(), cancel=stop,
                source=job.source, run_fidelity=job.fidelity,  # domain queries: judged against the source
                converted=job.converted, eval_windows=job.eval_windows,
                rss_samples=rss_samples, tokens_per_s=tokens_per_s):
            if check.name == quality.FIDELITY and not job.fidelity:
                check = quality.skipped(check.name, _("Not run: “Compare with the source” is "
                                                      "switched off."))
            elif stop.is_set():  # cut short: not a verdict
                check = quality.skipped(check.name, _("Stopped before it finished."))
            yield check
    finally:
        backend.close()
