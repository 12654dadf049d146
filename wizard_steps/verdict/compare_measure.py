"""One candidate of a comparison measured on this machine: folder size, prompt and generation
speed per prompt length (threads set to the usable cores, or the folder's own tuned setting), the
perplexity ratio (with its interval), KL divergence and same-first-token share against the source
on the evaluation text, and the domain queries against the source.

The source model runs once per comparison (its results are cached, see source_model and
evaluation), so every candidate is judged against the same reference.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard_steps.core.checks import DEFAULT_SYSTEM
from wizard_steps.core.errors import Cancelled, WizardError
from wizard_steps.measurement import evaluation, tune
from wizard_steps.measurement.benchmark import prompt_of_length
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt import detection, templates
from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions
from wizard_steps.verdict import domain, fidelity
from wizard_steps.verdict.domain import source_replies

if TYPE_CHECKING:
    from wizard_steps.verdict.domain import DomainQuery

FIDELITY_TOLERANCE = 0.15  # the checklist's bounds
MIN_AGREEMENT = 0.5


@dataclass(frozen=True)
class Measurement:
    """The figures of one converted folder on this machine, and the checklist's verdicts on it."""

    size_bytes: int
    threads: int
    prompt_tps: dict[int, float]
    gen_tps: dict[int, float]
    perplexity: float
    source_perplexity: float
    agreement: float
    domain_total: int
    domain_answered: int
    source_answered: int
    domain_losses: int
    domain_passed: bool
    fidelity_passed: bool
    domain_evidence: str = ""
    fidelity_evidence: str = ""
    lengths: tuple[int, ...] = field(default=())
    ratio_high: float = 0.0  # the perplexity ratio's 95 % upper end (0.0: saved before it was measured)
    kl_mean: float = 0.0
    kl_p99: float = 0.0
    eval_tokens: int = 0

    @property
    def passed(self) -> bool:
        return self.domain_passed and self.fidelity_passed

    @property
    def ratio(self) -> float:
        return self.perplexity / self.source_perplexity

    @property
    def gen_tps_focus(self) -> float:
        """Generation speed at the first (shortest) length: the one the recommendation ranks by."""
        return self.gen_tps[min(self.gen_tps)] if self.gen_tps else 0.0

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        values = dict(data)
        for key in ("prompt_tps", "gen_tps"):
            values[key] = {int(k): float(v) for k, v in values[key].items()}
        values["lengths"] = tuple(values.get("lengths", ()))
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


class Source:
    """The source model as the comparison's yardstick, asked once and shared by every candidate."""

    def __init__(self, folder: Path, limit: int | None = None) -> None:
        self.folder = Path(folder)
        self.limit = limit  # evaluation windows (None: the whole evaluation text)
        self._replies: domain.SourceReplies | None = None
        self._reference: evaluation.Reference | None = None

    def replies(self, backend, queries, options, cancel):
        if self._replies is None:
            self._replies = source_replies(self.folder, backend, queries, options, DEFAULT_SYSTEM, cancel)
        return self._replies

    def reference(self, converted: Path, cancel):
        """The source's side of the evaluation (cached per machine: computed once for all candidates)."""

        if self._reference is None:
            windows = evaluation.check_pair(self.folder, converted, None)
            windows = windows[:self.limit] if self.limit is not None else windows
            self._reference = evaluation.reference(self.folder, windows, cancel=cancel)
        return self._reference


def setting_for(folder: Path):
    """The folder's own tuned setting, with every usable core where it leaves the thread count to
    onnxruntime (whose default ran the demo as if on one thread; see wizard_steps.measurement.tune)."""


    setting = tune.current_candidate(folder)
    return setting if setting.threads else replace(setting, threads=tune.usable_cpus())


def speeds(backend, lengths: tuple[int, ...], new_tokens: int, runs: int,
           cancel: threading.Event | None) -> tuple[dict[int, float], dict[int, float]]:
    """Median prompt and generation tokens/s per prompt length, after one warm-up reply."""

    options = ReplyOptions(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    prompt_tps: dict[int, float] = {}
    gen_tps: dict[int, float] = {}
    for position, length in enumerate(lengths):
        prompt = prompt_of_length(backend, length)
        samples = []
        for run in range(runs + (1 if position == 0 else 0)):
            done = next(e for e in backend.stream(prompt, options, cancel) if isinstance(e, ReplyDone))
            if done.stats.finish_reason == "cancelled":
                raise Cancelled("cancelled")
            if position == 0 and run == 0:
                continue  # warm-up
            samples.append(done.stats)
        prompt_tps[length] = statistics.median(s.prompt_tokens_per_s for s in samples)
        gen_tps[length] = statistics.median(s.tokens_per_s for s in samples)
    return prompt_tps, gen_tps


def measure(folder: Path, source: Source, lengths: tuple[int, ...] = (128, 512), new_tokens: int = 32,
            runs: int = 2, cancel: threading.Event | None = None,
            queries: Sequence[DomainQuery] | None = None) -> Measurement:
    """Every figure of one converted folder; raises WizardError when it cannot be measured."""
    folder = Path(folder)
    preset = templates.get_preset(detection.detect(folder).preset_key)
    setting = setting_for(folder)
    threads = setting.threads
    backend = GenaiBackend(folder, preset.template, overlay=setting.overlay())
    try:
        prompt_tps, gen_tps = speeds(backend, lengths, new_tokens, runs, cancel)
        options = ReplyOptions(max_new_tokens=64, temperature=0.0, stop=preset.stop)
        queries = tuple(queries or domain.demo_queries())
        replies = source.replies(backend, queries, options, cancel)
        checked = domain.check_domain_queries(backend, queries, options, DEFAULT_SYSTEM,
                                              cancel=cancel, source=replies)
    finally:
        backend.close()
    fid = fidelity.check_fidelity(source.folder, folder, reference=source.reference(folder, cancel),
                                  tolerance=FIDELITY_TOLERANCE, min_agreement=MIN_AGREEMENT,
                                  limit=source.limit, cancel=cancel)
    verdict, figures = checked.figures, fid.figures
    if verdict is None or figures is None:  # neither is skipped when given queries and both folders
        raise WizardError(checked.evidence if verdict is None else fid.evidence)
    result = figures.evaluation
    return Measurement(
        size_bytes=folder_size(folder), threads=threads, prompt_tps=prompt_tps, gen_tps=gen_tps,
        perplexity=result.perplexity, source_perplexity=result.source_perplexity, agreement=result.top1,
        ratio_high=result.ratio.high, kl_mean=result.kl_mean, kl_p99=result.kl_p99, eval_tokens=result.tokens,
        domain_total=len(queries), domain_answered=sum(r.passed for r in verdict.results),
        source_answered=verdict.source_answered, domain_losses=verdict.losses,
        domain_passed=bool(checked.passed), fidelity_passed=bool(fid.passed),
        domain_evidence=checked.evidence, fidelity_evidence=fid.evidence, lengths=tuple(lengths))


@dataclass(frozen=True)
class Row:
    """One finished candidate, measured on this machine (``error`` set when it could not be)."""

    candidate: str
    precision: str
    note: str
    folder: str
    reused: bool
    measurement: Measurement | None
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.measurement is not None and self.measurement.passed


@dataclass(frozen=True)
class Recommendation:
    """The fastest candidate that passes the checklist (None when none does), and why."""

    candidate: str | None
    reason: str
    rows: tuple[Row, ...]
    model: str
    cpu: str
