"""Compare precisions on this machine: convert the user's own model to each candidate (each into
its own folder, reusing a folder that already holds the same conversion), then measure each one
here: size, prompt and generation speed, perplexity and greedy agreement against the source, and
the domain queries against the source. Recommends the fastest candidate that passes.

Figures from another machine do not travel (int8/int4 kernels differ by instruction set), so the
precision step shows estimates until this comparison has run, then the measured table.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wizard_steps.conversion import convert
from wizard_steps.conversion.convert import ConvertResult
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision, best_settings
from wizard_steps.core import paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress
from wizard_steps.core.i18n import _
from wizard_steps.measurement.machine import cpu_name
from wizard_steps.model.adapter import inspect_model_or_adapter as inspect_model
from wizard_steps.model.model_source import ModelInfo
from wizard_steps.verdict.compare_measure import Measurement, Recommendation, Row, Source, measure
from wizard_steps.verdict.compare_report import recommendation_reason, why_not
from wizard_steps.verdict.domain import DomainQuery

RESULT_NAME = "comparison.json"


class CompareError(WizardError):
    """The comparison cannot start as asked (unknown candidate, unwritable folder...)."""


@dataclass(frozen=True)
class Candidate:
    """One way to convert: a precision and, for INT4, the builder's settings."""

    name: str
    precision: Precision
    int4: Int4Settings = field(default_factory=Int4Settings)
    note: str = ""


def candidates() -> dict[str, Candidate]:
    """Every candidate by name: int4 (the wizard's default INT4), int4-<algorithm> for each INT4
    algorithm, int4-rtn-emb (RTN with the embeddings quantized: the smallest), int8, fp32."""
    found = {"int4": Candidate("int4", Precision.INT4, Int4Settings(),
                               _("the wizard's INT4 (chosen by the model's architecture)"))}
    for algorithm in (a for a in Int4Algorithm if a is not Int4Algorithm.AUTO):
        name = f"int4-{algorithm.value.replace('_', '-')}"
        settings = best_settings(algorithm)
        found[name] = Candidate(name, Precision.INT4, settings,
                                _("INT4, {algorithm}").format(algorithm=algorithm.value)
                                if settings == Int4Settings(algorithm=algorithm) else
                                _("INT4, {algorithm}, block {block}, {symmetry}").format(
                                    algorithm=algorithm.value, block=settings.block_size,
                                    symmetry=_("symmetric") if settings.symmetric else _("asymmetric")))
    found["int4-rtn-emb"] = Candidate("int4-rtn-emb", Precision.INT4,
                                      Int4Settings(algorithm=Int4Algorithm.RTN, quantize_embeddings=True),
                                      _("INT4, RTN, embeddings quantized too (the smallest)"))
    found["int8"] = Candidate("int8", Precision.INT8, note=_("INT8 (8-bit weights)"))
    found["fp32"] = Candidate("fp32", Precision.FP32, note=_("FP32 (exact, the largest)"))
    return found


DEFAULT_CANDIDATES = ("int4", "int4-rtn", "int8", "fp32")
AUTO_CANDIDATES = ("int4", "int8")  # what the precision step measures on its own before it chooses

# The precision step measures on its own only when the estimate fits this budget (a workshop's
# laptop should not be held for half an hour by a 1B model): beyond it, the button remains.
MEASURE_BUDGET_S = 600.0
# Seconds the demo (134.5 M parameters) took on 2 cores (AMD EPYC, AVX-512 VNNI), compare()'s
# defaults, nothing else running (benchmarks/measure_time.py): each conversion, the source's side
# (its evaluation logits and replies, once per comparison) and each candidate's measurement.
DEMO_PARAMETERS = 134_515_008
# A fresh home took 444 s in all; with the folders and the source's side already there, 166 s.
# The INT4 conversion then took 71 s; with the sensitivity measurement and 8-bit layers it took
# 144 s (benchmarks/eval_frontier.py, 2026-12-02; 126 s without the measurement, GPTQ itself
# 92-97 s both times), so a fresh home now needs about 517 s.
DEMO_SECONDS = {"convert-int4": 144.0, "convert-int8": 36.0, "source": 165.0, "measure": 83.0}


def estimate_seconds(model: ModelInfo, chosen: Sequence[Candidate]) -> float:
    """How long compare() should take for this model on a machine like the one above: the demo's
    measured times, scaled by the number of parameters (an estimate; conversions already made
    cost nothing)."""
    total = DEMO_SECONDS["source"]
    for candidate in chosen:
        if find_existing(model, candidate) is None:
            total += DEMO_SECONDS.get(f"convert-{candidate.precision.value}", DEMO_SECONDS["convert-int4"])
        total += DEMO_SECONDS["measure"]
    return total * model.num_parameters / DEMO_PARAMETERS


def parse_candidates(text: str | Sequence[str]) -> tuple[Candidate, ...]:
    """``int4,int8`` (or a list of names) as candidates, in order, without repeats."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in dict.fromkeys(names) if n]
    known = candidates()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CompareError(_("Precision {name} is unknown.").format(name=repr(unknown[0])) if unknown
                           else _("No precision was given to compare."),
                           _("Choose from {names}.").format(names=", ".join(known)))
    return tuple(known[n] for n in names)


# --- folders ---------------------------------------------------------------------------------------


def compare_root(model: ModelInfo) -> Path:
    """Where a model's candidates and its saved comparison live."""
    return paths.data_dir() / "compare" / model.name


def _planned(model: ModelInfo, candidate: Candidate, out: Path):
    return convert.make_plan(model.path, out, candidate.precision, int4=candidate.int4)


def identity(model: ModelInfo, candidate: Candidate) -> str:
    probe = _planned(model, candidate, compare_root(model) / ".probe-not-written")
    return convert.conversion_identity(convert.olive_config(probe, probe.output_dir, paths.olive_cache_dir()))


def find_existing(model: ModelInfo, candidate: Candidate) -> Path | None:
    """A converted folder (the wizard's models or an earlier comparison) made with the same passes
    from the same model; it is read, never written."""
    probe = _planned(model, candidate, compare_root(model) / ".probe-not-written")
    return convert.find_converted(probe, (compare_root(model), paths.models_dir()))


def new_folder(model: ModelInfo, candidate: Candidate) -> Path:
    """A free folder name for a new conversion, named after the settings."""
    key = hashlib.sha256(identity(model, candidate).encode()).hexdigest()[:8]
    root, index = compare_root(model), 1
    while (root / f"{candidate.name}-{key}{'' if index == 1 else f'-{index}'}").exists():
        index += 1
    return root / f"{candidate.name}-{key}{'' if index == 1 else f'-{index}'}"


def check_writable(folder: Path) -> None:
    """Refuse up front a folder (or its nearest existing parent) that cannot be written."""
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise CompareError(_("{folder} cannot be written.").format(folder=folder),
                           _("Check its permissions, or set SLMOPS_HOME to a folder you can write."))


# --- events and the run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateEvent:
    """What one candidate's conversion or measurement reports (LogLine, Progress, Finished, Failed)."""

    candidate: str
    index: int
    total: int
    event: Event


CompareEvent = CandidateEvent | Row | Recommendation | Failed | Progress


def recommend(rows: Sequence[Row], model: str) -> Recommendation:
    passing = [(r, r.measurement) for r in rows if r.passed and r.measurement is not None]
    best = max(passing, key=lambda pair: pair[1].gen_tps_focus)[0] if passing else None
    return Recommendation(best.candidate if best else None, recommendation_reason(best, rows),
                          tuple(rows), model, cpu_name())


def compare(model_dir: str | Path, chosen: Sequence[Candidate], cancel: threading.Event | None = None,
            lengths: tuple[int, ...] = (128, 512), new_tokens: int = 32, runs: int = 2,
            queries: Sequence[DomainQuery] | None = None,
            eval_windows: int | None = None) -> Iterator[CompareEvent]:
    """Convert (or reuse) and measure each candidate in turn; a Row as each one finishes, then a
    Recommendation (also saved for the precision step). A cancel stops at once with Failed."""

    model = inspect_model(model_dir)
    root = compare_root(model)
    check_writable(root)
    source = Source(model.path, eval_windows)
    rows: list[Row] = []
    total = len(chosen)
    for index, candidate in enumerate(chosen):
        def wrap(event: Event, name: str = candidate.name, at: int = index) -> CandidateEvent:
            return CandidateEvent(name, at, total, event)

        yield Progress(_("{name}: converting or finding a folder").format(name=candidate.name), index / total)
        folder = find_existing(model, candidate)
        reused = folder is not None
        if folder is not None:
            yield wrap(Progress(_("Reusing {folder}: converted earlier with the same settings").format(
                folder=folder), 1.0))
            yield wrap(Finished(folder, ConvertResult.found(folder)))
        else:
            paths.ensure(root)
            final: Event | None = None
            for event in convert.convert(_planned(model, candidate, new_folder(model, candidate)), cancel):
                yield wrap(event)
                final = event if isinstance(event, (Finished, Failed)) else final
            if isinstance(final, Failed) and (final.cancelled or (cancel is not None and cancel.is_set())):
                yield Failed(_("The comparison was cancelled; finished folders are kept for next time."),
                             final.log_path, cancelled=True)
                return
            if not isinstance(final, Finished):
                reason = final.reason if isinstance(final, Failed) else _("the conversion gave no result")
                rows.append(Row(candidate.name, candidate.precision.value, candidate.note, "", False, None,
                                reason))
                yield rows[-1]
                continue
            folder = final.path
        yield wrap(Progress(_("Measuring on this machine"), None))
        try:
            measured = measure(folder, source, lengths, new_tokens, runs, cancel, queries)
        except WizardError as exc:
            if cancel is not None and cancel.is_set():
                yield Failed(_("The comparison was cancelled; finished folders are kept for next time."),
                             cancelled=True)
                return
            rows.append(Row(candidate.name, candidate.precision.value, candidate.note, str(folder), reused,
                            None, exc.message))
            yield rows[-1]
            continue
        if cancel is not None and cancel.is_set():
            yield Failed(_("The comparison was cancelled; finished folders are kept for next time."),
                         cancelled=True)
            return
        rows.append(Row(candidate.name, candidate.precision.value, candidate.note, str(folder), reused, measured))
        yield rows[-1]
    result = recommend(rows, str(model.path))
    save(result, paths.ensure(root) / RESULT_NAME)
    yield Progress(_("Done"), 1.0)
    yield result


def as_step(events: Iterable[CompareEvent], say: Callable[[str], None]) -> Iterator[Event[Recommendation]]:
    """A comparison as one long step for a terminal: each candidate's progress under its name, one
    line (``say``) per measured candidate, then Finished with the recommendation (its path: the
    model's folder), or the comparison's Failed."""
    for event in events:
        if isinstance(event, CandidateEvent):
            inner = event.event
            if isinstance(inner, Progress):
                yield Progress(f"{event.candidate}: {inner.stage}", inner.fraction)
            elif isinstance(inner, LogLine):
                yield inner
        elif isinstance(event, Row):
            say(_("{name}: measured ({verdict})").format(
                name=event.candidate, verdict=_("passes") if event.passed else why_not(event)))
        elif isinstance(event, Recommendation):
            yield Finished(Path(event.model), event)
        else:
            yield event


def chosen_folder(result: Recommendation | None, model: ModelInfo) -> Path | None:
    """The folder of the recommended candidate, while a folder holding that same conversion is still
    there (the comparison's, or any the wizard made). ``result`` is this CPU's: a fresh comparison,
    or ``load_saved``'s, which reads no other CPU's."""
    if result is None or result.candidate is None:
        return None
    known = candidates().get(result.candidate)
    return find_existing(model, known) if known is not None else None


# --- the saved result ------------------------------------------------------------------------------


def to_dict(result: Recommendation) -> dict[str, object]:
    return {"model": result.model, "cpu": result.cpu, "recommended": result.candidate,
            "reason": result.reason, "rows": [asdict(r) for r in result.rows]}


def from_dict(data: dict) -> Recommendation:
    rows = tuple(Row(**{**r, "measurement": Measurement.from_dict(r["measurement"]) if r["measurement"]
                        else None}) for r in data["rows"])
    return Recommendation(data["recommended"], data["reason"], rows, data["model"], data["cpu"])


def save(result: Recommendation, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_dict(result), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_saved(model_dir: str | Path) -> Recommendation | None:
    """The last comparison saved for this model folder on this CPU (``cpu_name``: its kernels
    included), or None: none yet, unreadable, or measured on another CPU, whose speeds and kept
    answers say nothing of this one's."""
    try:
        model = inspect_model(model_dir)
        data = json.loads((compare_root(model) / RESULT_NAME).read_text(encoding="utf-8"))
        result = from_dict(data)
    except (WizardError, OSError, ValueError, KeyError, TypeError):
        return None
    return result if Path(result.model) == model.path and result.cpu == cpu_name() else None
