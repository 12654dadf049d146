"""The tutorial's quality checklist, made executable: each item is a function that returns a
``QualityCheck`` (passed, failed, or skipped with a note) with the evidence behind the verdict.

The checks take what they judge as plain data (replies, RSS samples, tokens/s per prompt length)
or a generation backend, so the benchmark, the TUI and the CLI feed them the same way. Given the
source model, the domain queries and fidelity judge the converted model against it (run with
torch in a child process, wizard_steps.measurement.source_model): a verdict that holds on every CPU.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard_steps.core.checks import (  # noqa: F401  (re-exported: the checklist's vocabulary)
    DEFAULT_SYSTEM,
    DOMAIN,
    EDGES,
    FIDELITY,
    FIDELITY_QUESTIONS,
    FORMAT,
    LENGTHS,
    MEMORY,
    CheckFailed,
    QualityCheck,
    QualityError,
    data_file,
    fidelity_text,
    skipped,
)
from wizard_steps.core.checks import clip as _clip
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _, percent
from wizard_steps.core.i18n import number as _number
from wizard_steps.runtime.engine import Backend, ReplyOptions
from wizard_steps.verdict import fidelity
from wizard_steps.verdict.domain import (  # noqa: F401  (re-exported: the checklist's vocabulary)
    DEFAULT_OPTIONS,
    LOST_SHARE,
    DomainQuery,
    DomainVerdict,
    QueryResult,
    SourceReplies,
    allowed_losses,
    ask,
    check_domain_queries,
    demo_queries,
    load_queries,
    parse_queries,
    source_replies,
)

# --- each item's figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatProblem:
    index: int
    reply: str
    problem: str


@dataclass(frozen=True)
class FormatFigures:
    problems: tuple[FormatProblem, ...]


@dataclass(frozen=True)
class MemoryFigures:
    start_bytes: float  # medians of byte counts: x.5 when the window is even
    end_bytes: float
    growth: float
    samples: int
    max_growth: float


@dataclass(frozen=True)
class LengthFigures:
    tokens_per_s: dict[int, float]
    ratio: float
    min_ratio: float


@dataclass(frozen=True)
class EdgeOutcome:
    case: str
    outcome: str  # answered, refused or crashed (English, marked for translation)
    detail: str


@dataclass(frozen=True)
class EdgeCases:
    cases: tuple[EdgeOutcome, ...]


# --- response format ----------------------------------------------------------------------------

_SCHEMA_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_SCHEMA_KEYS = {"type", "required", "properties", "items", "additionalProperties"}
_SCHEMA_NOTES = {"$schema", "$id", "title", "description", "examples", "default"}


def _check_schema(schema: object, at: str | None = None) -> None:
    at = at or _("The schema")
    if not isinstance(schema, dict):
        raise QualityError(_("{at} is not a JSON object.").format(at=at),
                           _('Write a schema such as {"type": "object", "required": ["answer"]}.'))
    unknown = sorted(set(schema) - _SCHEMA_KEYS - _SCHEMA_NOTES)
    if unknown:
        raise QualityError(_("{at} uses {key!r}, which this check does not support.").format(
                               at=at, key=unknown[0]),
                           _("Use only type, required, properties, items and additionalProperties."))
    types = schema.get("type", [])
    for name in types if isinstance(types, list) else [types]:
        if name not in _SCHEMA_TYPES:
            raise QualityError(_("{at} has an unknown type {name!r}.").format(at=at, name=name),
                               _("Use one of {types}.").format(types=", ".join(_SCHEMA_TYPES)))
    required, properties = schema.get("required", []), schema.get("properties", {})
    if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
        raise QualityError(_('{at} has a "required" that is not a list of key names.').format(at=at),
                           _('Write e.g. "required": ["answer"].'))
    if not isinstance(properties, dict):
        raise QualityError(_('{at} has "properties" that are not an object.').format(at=at),
                           _('Write e.g. "properties": {"answer": {"type": "string"}}.'))
    for key, sub in properties.items():
        _check_schema(sub, _("The schema of property {key!r}").format(key=key))
    if "items" in schema:
        _check_schema(schema["items"], _("The schema of the array items"))


def _json_type(value: object) -> str:
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (list, "array"), (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def schema_problem(value: object, schema: Mapping[str, Any], at: str | None = None) -> str:
    """Why ``value`` does not fit the schema (type/required/properties/items), or '' when it fits."""
    at = at or _("the reply")
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        kind = _json_type(value)
        if not any(n == kind or (n == "number" and kind == "integer") for n in names):
            problem = (_("{at} is an {kind}, not {types}") if kind[0] in "aeiou"
                       else _("{at} is a {kind}, not {types}"))
            return problem.format(at=at, kind=kind, types=_(" or ").join(names))
    if isinstance(value, dict):
        missing = [key for key in schema.get("required") or [] if key not in value]
        if missing:
            return _("{at} lacks the key {key!r}").format(at=at, key=missing[0])
        properties: Mapping[str, Any] = schema.get("properties") or {}
        if schema.get("additionalProperties") is False:
            extra = [key for key in value if key not in properties]
            if extra:
                return _("{at} has the unexpected key {key!r}").format(at=at, key=extra[0])
        for key, sub in properties.items():
            problem = schema_problem(value[key], sub, f"{at}[{key!r}]") if key in value else ""
            if problem:
                return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{at}[{index}]")
            if problem:
                return problem
    return ""


def _json_of(reply: str) -> object:
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL | re.IGNORECASE)
    return json.loads(fenced.group(1) if fenced else text)


def check_response_format(replies: Sequence[str], pattern: str | None = None,
                          schema: Mapping[str, Any] | None = None) -> QualityCheck[FormatFigures]:
    """Every reply must match ``pattern`` as a whole (stripped; ``.`` spans lines) and/or be JSON
    (a ```json fence is allowed) that fits ``schema``."""
    if pattern is None and schema is None:
        return skipped(FORMAT, _("No reply format was required (give a regex or a JSON schema)."))
    if not replies:
        return skipped(FORMAT, _("There were no replies to check (run the domain queries first)."))
    try:
        regex = re.compile(pattern, re.DOTALL) if pattern is not None else None
    except re.error as exc:
        raise QualityError(_("The reply format {pattern!r} is not a valid regex ({error}).").format(
                               pattern=pattern, error=exc),
                           _("Escape special characters with a backslash.")) from None
    if schema is not None:
        _check_schema(schema)
    problems = []
    for index, reply in enumerate(replies):
        problem = ""
        if regex is not None and not regex.fullmatch(reply.strip()):
            problem = _("does not match {pattern!r}").format(pattern=pattern)
        elif schema is not None:
            try:
                problem = schema_problem(_json_of(reply), schema)
            except json.JSONDecodeError as exc:
                problem = _("is not JSON ({error})").format(error=exc.msg)
        if problem:
            problems.append(FormatProblem(index, reply, problem))
    wanted = _(" and ").join(p for p in (pattern and _("the regex {pattern!r}").format(pattern=pattern),
                                         schema is not None and _("the JSON schema")) if p)
    evidence = _("{good} of {total} replies fit {wanted}").format(
        good=len(replies) - len(problems), total=len(replies), wanted=wanted)
    if problems:
        evidence += _("; reply {number} {problem}: {reply!r}").format(
            number=problems[0].index + 1, problem=problems[0].problem, reply=_clip(problems[0].reply))
    return QualityCheck(FORMAT, not problems, evidence + ".", FormatFigures(tuple(problems)))


# --- memory and speed ---------------------------------------------------------------------------


def check_memory(rss_samples: Sequence[int], warmup: int = 5, window: int = 10,
                 max_growth: float = 0.05, min_samples: int = 50) -> QualityCheck[MemoryFigures]:
    """Resident memory in long use: the median of the last ``window`` samples may exceed the
    median of the first ``window`` after ``warmup`` by less than ``max_growth``."""
    if len(rss_samples) < max(min_samples, warmup + 2 * window):
        return skipped(MEMORY, _("Only {count} RSS samples; at least {minimum} are needed (run a longer "
                                 "benchmark).").format(count=len(rss_samples), minimum=min_samples))
    start = statistics.median(rss_samples[warmup:warmup + window])
    end = statistics.median(rss_samples[-window:])
    if start <= 0:
        return skipped(MEMORY, _("The RSS samples are not positive byte counts."))
    growth = end / start - 1
    evidence = _("RSS {start} MB → {end} MB over {count} samples ({growth}; the limit is +{limit}).").format(
        start=_number(start / 2**20, 1), end=_number(end / 2**20, 1), count=len(rss_samples),
        growth=percent(growth * 100, 1, sign=True, space=False), limit=percent(max_growth * 100, space=False))
    return QualityCheck(MEMORY, growth < max_growth, evidence,
                        MemoryFigures(start, end, growth, len(rss_samples), max_growth))


def check_length_consistency(tokens_per_s: Mapping[int, float],
                             min_ratio: float = 0.5) -> QualityCheck[LengthFigures]:
    """Generation speed across prompt lengths: the slowest over the fastest must be ≥ ``min_ratio``."""
    speeds = {int(k): float(v) for k, v in tokens_per_s.items()}
    if len(speeds) < 2:
        return skipped(LENGTHS, _("Speeds at two prompt lengths at least are needed (run the benchmark)."))
    slow, fast = min(speeds, key=speeds.__getitem__), max(speeds, key=speeds.__getitem__)
    if speeds[fast] <= 0:
        return skipped(LENGTHS, _("No generation speed was measured (all are zero)."))
    ratio = speeds[slow] / speeds[fast]
    evidence = _("Generation {slow_speed} tok/s at a {slow}-token prompt to {fast_speed} tok/s at {fast}: "
                 "slowest/fastest {ratio} (needs ≥ {needed}).").format(
        slow_speed=_number(speeds[slow]), slow=slow, fast_speed=_number(speeds[fast]), fast=fast,
        ratio=_number(ratio, 2), needed=_number(min_ratio, 2))
    return QualityCheck(LENGTHS, ratio >= min_ratio, evidence,
                        LengthFigures(dict(sorted(speeds.items())), ratio, min_ratio))


# --- edge cases ---------------------------------------------------------------------------------


def edge_cases(context_length: int) -> dict[str, str]:
    """Inputs a deployed model must answer or refuse cleanly, never crash on."""
    return {  # the names are shown with _(); the prompts are the model's input
        N_("empty"): "",
        N_("whitespace only"): " \n\t  ",
        N_("longer than the context"): "word " * (context_length + 1),
        N_("control characters"): "Hello\x00 there\x07\x1b[31m, what\x08 is\x7f 2+2?\r",
        N_("emoji"): "👋🌍 What does 🍕 mean? 🎉🎉",
        N_("Arabic (right to left)"): "ما هي عاصمة فرنسا؟",
        N_("Hebrew (right to left)"): "מה בירת צרפת?",
    }


def check_edge_cases(backend: Backend, options: ReplyOptions | None = None,
                     system: str | None = DEFAULT_SYSTEM,
                     cancel: threading.Event | None = None) -> QualityCheck[EdgeCases]:
    """Each edge case must end in a reply or a clean refusal (a WizardError), nothing else."""
    options = options or ReplyOptions(max_new_tokens=16, temperature=0.0)
    outcomes = []
    for case, prompt in edge_cases(backend.context_length).items():
        try:
            reply = ask(backend, prompt, options, system, cancel)
            outcome, detail = N_("answered"), _clip(reply, 40)
        except WizardError as exc:
            outcome, detail = N_("refused"), exc.message
        except Exception as exc:  # the point of the check: anything else is a failure to report
            outcome, detail = N_("crashed"), f"{type(exc).__name__}: {exc}".splitlines()[0]
        outcomes.append(EdgeOutcome(case, outcome, detail))
    crashed = [o for o in outcomes if o.outcome == "crashed"]
    evidence = "; ".join(f"{_(o.case)}: {_(o.outcome)}" + (f" ({_clip(o.detail, 70)})"
                         if o.outcome != "answered" else "") for o in outcomes)
    return QualityCheck(EDGES, not crashed, evidence + ".", EdgeCases(tuple(outcomes)))


# --- the checklist ------------------------------------------------------------------------------


def _domain(backend: Backend | None, queries: Sequence[DomainQuery] | None, options: ReplyOptions,
            system: str | None, source: str | Path | None,
            cancel: threading.Event | None) -> QualityCheck:
    """The domain queries, judged against the source's replies when the source can be asked."""
    if backend is None or not queries:
        return skipped(DOMAIN, _("No model is loaded to ask.") if queries else
                       _("No domain queries were given."))
    reference, note = None, ""
    if source is None:
        note = _("no source model was given to compare with")
    elif options.temperature > 0:
        note = _("sampled replies cannot be compared with the source's greedy ones")
    else:
        try:
            reference = source_replies(source, backend, queries, options, system, cancel)
        except WizardError as exc:
            note = _("the source could not be asked ({reason})").format(reason=exc.message.rstrip("."))
    return check_domain_queries(backend, queries, options, system, cancel=cancel, source=reference,
                                absolute_note=note)


def iter_checklist(backend: Backend | None = None, *, queries: str | Path | Sequence[DomainQuery] | None = None,
                   options: ReplyOptions = DEFAULT_OPTIONS, system: str | None = DEFAULT_SYSTEM,
                   reply_pattern: str | None = None, reply_schema: Mapping[str, object] | None = None,
                   rss_samples: Sequence[int] | None = None,
                   tokens_per_s: Mapping[int, float] | None = None,
                   source: str | Path | None = None, converted: str | Path | None = None,
                   fidelity_tolerance: float = 0.15, min_agreement: float = 0.5,
                   run_fidelity: bool = True, eval_text: str | None = None, eval_windows: int | None = None,
                   cancel: threading.Event | None = None) -> Iterator[QualityCheck]:
    """Every checklist item in order, each as soon as it is decided; an item whose input was not
    given comes back skipped with a note saying what it needs, one that cannot run (a folder that
    does not load) as failed with the reason. A bad queries file raises QualityError at once.
    ``source`` (the Hugging Face folder, or an FP32 ONNX one for the domain queries) makes the
    verdicts relative to it; ``run_fidelity`` False skips only the slower fidelity item."""
    if isinstance(queries, (str, Path)):
        queries = load_queries(queries)
    no_model = _("No model is loaded to ask.")
    replies: list[str] = []
    steps = [
        (DOMAIN, lambda: _domain(backend, queries, options, system, source, cancel)),
        (FORMAT, lambda: check_response_format(replies, reply_pattern, reply_schema)),
        (MEMORY, lambda: check_memory(rss_samples) if rss_samples is not None else
         skipped(MEMORY, _("No RSS samples; run the benchmark's long-use test."))),
        (LENGTHS, lambda: check_length_consistency(tokens_per_s) if tokens_per_s is not None else
         skipped(LENGTHS, _("No speeds per prompt length; run the benchmark."))),
        (EDGES, lambda: check_edge_cases(backend, system=system, cancel=cancel)
         if backend is not None else skipped(EDGES, no_model)),
        (FIDELITY, lambda: skipped(FIDELITY, _("Not run: switched off.")) if not run_fidelity else
         fidelity.check_fidelity(source, converted, eval_text, tolerance=fidelity_tolerance,
                                 min_agreement=min_agreement, limit=eval_windows, cancel=cancel)
         if source is not None and converted is not None else
         skipped(FIDELITY, _("Needs both the source model folder and the converted folder."))),
    ]
    for name, step in steps:
        if cancel is not None and cancel.is_set():
            return
        try:
            check = step()
        except WizardError as exc:  # e.g. a folder that does not load: this item fails, the rest run
            check = QualityCheck(name, False, str(exc), CheckFailed(exc.message))
        if isinstance(check.figures, DomainVerdict):
            replies.extend(check.figures.replies)
        yield check


def run_checklist(backend: Backend | None = None, **inputs: Any) -> list[QualityCheck]:
    """All checklist items (see ``iter_checklist`` for the inputs), as a list."""
    return list(iter_checklist(backend, **inputs))


_MARKS = {"pass": N_("✅ pass"), "fail": N_("❌ fail"), "skipped": N_("➖ skipped")}
_COUNTS = {"pass": N_("{count} passed"), "fail": N_("{count} failed"), "skipped": N_("{count} skipped")}


def to_markdown(checks: Sequence[QualityCheck], title: str | None = None) -> str:
    """A Markdown table of the verdicts and their evidence, with a one-line summary."""
    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    rows = [f"| {cell(_(c.name))} | {_(_MARKS[c.status])} | {cell(c.evidence)} |" for c in checks]
    counts = {status: sum(c.status == status for c in checks) for status in _MARKS}
    summary = ", ".join(_(_COUNTS[s]).format(count=n) for s, n in counts.items() if n)
    return "\n".join([f"## {title or _('Quality checklist')}", "", _("| Check | Result | Evidence |"),
                      "| --- | --- | --- |", *rows, "", f"**{summary or _('No checks')}.**", ""])
