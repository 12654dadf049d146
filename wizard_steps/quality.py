"""The tutorial's quality checklist, made executable: each item is a function that returns a
``QualityCheck`` (passed, failed, or skipped with a note) with the evidence behind the verdict.

The checks take what they judge as plain data (replies, RSS samples, tokens/s per prompt length)
or a generation backend, so the benchmark, the TUI and the CLI feed them the same way. Fidelity
runs the source model with torch in a child process (wizard_steps.fidelity).
"""

from __future__ import annotations

import json
import re
import statistics
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wizard_steps.engine import Backend, Chat, EngineError, ReplyDone, ReplyOptions
from wizard_steps.errors import WizardError
from wizard_steps.i18n import N_, _, percent
from wizard_steps.i18n import number as _number

# The checks' names stay English (keys, and --json values); shown with _(name).
DOMAIN, FORMAT, MEMORY, LENGTHS, EDGES, FIDELITY = (
    N_("Domain queries"), N_("Response format"), N_("No memory leak in long use"),
    N_("Consistent performance across input lengths"), N_("Edge cases and invalid input"),
    N_("Fidelity to the source model"))
DEFAULT_SYSTEM = "You are a helpful assistant."
DEFAULT_OPTIONS = ReplyOptions(max_new_tokens=64, temperature=0.0)
FIDELITY_QUESTIONS = ("What is the capital of France?", "Give me three tips for staying healthy.",
                      "Explain what a computer is in one sentence.", "Write a short poem about the sea.")
_RESULT = "@result "


class QualityError(WizardError):
    """A quality check cannot run on what it was given (a bad queries file, schema, folder...)."""


@dataclass(frozen=True)
class QualityCheck:
    """One checklist item's verdict: ``passed`` is None when it was skipped (``evidence`` says why)."""

    name: str
    passed: bool | None
    evidence: str
    details: dict[str, object] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "skipped" if self.passed is None else "pass" if self.passed else "fail"


def skipped(name: str, note: str) -> QualityCheck:
    return QualityCheck(name, None, note)


def data_file(name: str) -> Path:
    """A file shipped in wizard_steps/data (the demo queries, the fidelity text)."""
    return Path(str(resources.files("wizard_steps") / "data" / name))


def fidelity_text() -> str:
    return data_file("fidelity_text.txt").read_text(encoding="utf-8")


def _clip(text: str, size: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


# --- domain queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainQuery:
    """One line of a queries file: a prompt and what its reply must contain."""

    prompt: str
    expect: str | tuple[str, ...]  # a regex (case-insensitive) or words that must all appear
    line: int = 0

    def matches(self, reply: str) -> bool:
        if isinstance(self.expect, str):
            return re.search(self.expect, reply, re.IGNORECASE) is not None
        return all(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", reply, re.IGNORECASE)
                   for word in self.expect)


_JSON_KINDS = {"int": N_("a number"), "float": N_("a number"), "bool": N_("a boolean"), "dict": N_("an object")}
_ONE_PER_LINE = N_('Write one object per line: {"prompt": ..., "expect": ...}.')


def parse_queries(text: str, source: str | None = None) -> tuple[DomainQuery, ...]:
    """Read JSONL ``{"prompt": ..., "expect": "regex" | ["word", ...]}``; blank lines are skipped."""
    source = source or _("the queries file")
    queries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = _("Line {number} of {source}").format(number=number, source=source)
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise QualityError(_("{where} is not JSON ({error}).").format(where=where, error=exc.msg),
                               _(_ONE_PER_LINE)) from None
        if not isinstance(item, dict):
            raise QualityError(_("{where} is not a JSON object.").format(where=where), _(_ONE_PER_LINE))
        prompt, expect = item.get("prompt"), item.get("expect")
        if not isinstance(prompt, str) or not prompt.strip():
            raise QualityError(_('{where} has no "prompt" text.').format(where=where),
                               _('Add "prompt": "your question".'))
        if isinstance(expect, list) and expect and all(isinstance(w, str) and w.strip() for w in expect):
            queries.append(DomainQuery(prompt, tuple(w.strip() for w in expect), number))
            continue
        if not isinstance(expect, str) or not expect:
            kind = _("missing") if expect is None else _("a list that is empty or holds non-text items") \
                if isinstance(expect, list) else _(_JSON_KINDS.get(type(expect).__name__, N_("empty")))
            raise QualityError(_('{where} has an "expect" that is {kind}; it must be a regex string '
                                 "or a list of words.").format(where=where, kind=kind),
                               _('E.g. "expect": ["Paris"] or "expect": "\\\\b4\\\\b".'))
        try:
            re.compile(expect, re.IGNORECASE)
        except re.error as exc:
            raise QualityError(_('{where} has an "expect" that is not a valid regex ({error}).').format(
                                   where=where, error=exc),
                               _("Escape special characters such as ( [ + ? with a backslash.")) from None
        queries.append(DomainQuery(prompt, expect, number))
    if not queries:
        raise QualityError(_("{source} holds no queries.").format(source=source),
                           _("Add one JSON object per line."))
    return tuple(queries)


def load_queries(path: str | Path) -> tuple[DomainQuery, ...]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QualityError(_("The queries file {path} cannot be read ({error}).").format(path=path, error=exc),
                           _("Check the path; the file must be UTF-8 JSONL.")) from None
    return parse_queries(text, path.name)


def demo_queries() -> tuple[DomainQuery, ...]:
    """The example queries shipped for the demo model (all answered by its INT4 and INT8)."""
    return load_queries(data_file("quality_demo.jsonl"))


def ask(backend: Backend, prompt: str, options: ReplyOptions = DEFAULT_OPTIONS,
        system: str | None = DEFAULT_SYSTEM, cancel: threading.Event | None = None) -> str:
    """One fresh single-turn chat; the reply's text."""
    for event in Chat(backend, options, system).send(prompt, cancel):
        if isinstance(event, ReplyDone):
            return event.text
    raise EngineError(_("The model gave no reply."))


def check_domain_queries(backend: Backend, queries: Sequence[DomainQuery],
                         options: ReplyOptions = DEFAULT_OPTIONS, system: str | None = DEFAULT_SYSTEM,
                         min_pass_rate: float = 1.0,
                         cancel: threading.Event | None = None) -> QualityCheck:
    """Ask each query (greedy by default) and check its reply; passes when at least
    ``min_pass_rate`` of them answer as expected (all of them by default)."""
    if not queries:
        return skipped(DOMAIN, _("No domain queries were given; supply a JSONL file of prompts."))
    results = []
    for query in queries:
        try:
            reply, error = ask(backend, query.prompt, options, system, cancel), ""
        except WizardError as exc:
            reply, error = "", exc.message
        results.append({"line": query.line, "prompt": query.prompt, "reply": reply,
                        "passed": not error and query.matches(reply), "error": error})
    good = sum(r["passed"] for r in results)
    misses = [r for r in results if not r["passed"]]
    evidence = _("{good} of {total} queries answered as expected (needed {needed})").format(
        good=good, total=len(results), needed=percent(min_pass_rate * 100, space=False))
    if misses:
        first = misses[0]
        evidence += _("; line {line} {prompt!r} got {reply!r}").format(
            line=first["line"], prompt=_clip(str(first["prompt"]), 40),
            reply=_clip(str(first["error"] or first["reply"])))
    return QualityCheck(DOMAIN, good >= min_pass_rate * len(results), evidence + ".",
                        {"results": results, "replies": [r["reply"] for r in results]})


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
                          schema: Mapping[str, Any] | None = None) -> QualityCheck:
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
            problems.append({"index": index, "reply": reply, "problem": problem})
    wanted = _(" and ").join(p for p in (pattern and _("the regex {pattern!r}").format(pattern=pattern),
                                         schema is not None and _("the JSON schema")) if p)
    evidence = _("{good} of {total} replies fit {wanted}").format(
        good=len(replies) - len(problems), total=len(replies), wanted=wanted)
    if problems:
        evidence += _("; reply {number} {problem}: {reply!r}").format(
            number=problems[0]["index"] + 1, problem=problems[0]["problem"],
            reply=_clip(str(problems[0]["reply"])))
    return QualityCheck(FORMAT, not problems, evidence + ".", {"problems": problems})


# --- memory and speed ---------------------------------------------------------------------------


def check_memory(rss_samples: Sequence[int], warmup: int = 5, window: int = 10,
                 max_growth: float = 0.05, min_samples: int = 50) -> QualityCheck:
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
                        {"start_bytes": start, "end_bytes": end, "growth": growth,
                         "samples": len(rss_samples), "max_growth": max_growth})


def check_length_consistency(tokens_per_s: Mapping[int, float], min_ratio: float = 0.5) -> QualityCheck:
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
                        {"tokens_per_s": dict(sorted(speeds.items())), "ratio": ratio,
                         "min_ratio": min_ratio})


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
                     cancel: threading.Event | None = None) -> QualityCheck:
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
        outcomes.append({"case": case, "outcome": outcome, "detail": detail})
    crashed = [o for o in outcomes if o["outcome"] == "crashed"]
    evidence = "; ".join(f"{_(o['case'])}: {_(o['outcome'])}" + (f" ({_clip(o['detail'], 70)})"
                         if o["outcome"] != "answered" else "") for o in outcomes)
    return QualityCheck(EDGES, not crashed, evidence + ".", {"cases": outcomes})


# --- the checklist ------------------------------------------------------------------------------


def iter_checklist(backend: Backend | None = None, *, queries: str | Path | Sequence[DomainQuery] | None = None,
                   options: ReplyOptions = DEFAULT_OPTIONS, system: str | None = DEFAULT_SYSTEM,
                   reply_pattern: str | None = None, reply_schema: Mapping[str, object] | None = None,
                   rss_samples: Sequence[int] | None = None,
                   tokens_per_s: Mapping[int, float] | None = None,
                   source: str | Path | None = None, converted: str | Path | None = None,
                   fidelity_tolerance: float = 0.15, min_agreement: float = 0.5,
                   cancel: threading.Event | None = None) -> Iterator[QualityCheck]:
    """Every checklist item in order, each as soon as it is decided; an item whose input was not
    given comes back skipped with a note saying what it needs, one that cannot run (a folder that
    does not load) as failed with the reason. A bad queries file raises QualityError at once."""
    if isinstance(queries, (str, Path)):
        queries = load_queries(queries)
    no_model = _("No model is loaded to ask.")
    replies: list[str] = []
    steps = [
        (DOMAIN, lambda: check_domain_queries(backend, queries, options, system, cancel=cancel)
         if backend is not None and queries else
         skipped(DOMAIN, no_model if queries else _("No domain queries were given."))),
        (FORMAT, lambda: check_response_format(replies, reply_pattern, reply_schema)),
        (MEMORY, lambda: check_memory(rss_samples) if rss_samples is not None else
         skipped(MEMORY, _("No RSS samples; run the benchmark's long-use test."))),
        (LENGTHS, lambda: check_length_consistency(tokens_per_s) if tokens_per_s is not None else
         skipped(LENGTHS, _("No speeds per prompt length; run the benchmark."))),
        (EDGES, lambda: check_edge_cases(backend, system=system, cancel=cancel)
         if backend is not None else skipped(EDGES, no_model)),
        (FIDELITY, lambda: _fidelity().check_fidelity(source, converted, tolerance=fidelity_tolerance,
                                          min_agreement=min_agreement, cancel=cancel)
         if source is not None and converted is not None else
         skipped(FIDELITY, _("Needs both the source model folder and the converted folder."))),
    ]
    for name, step in steps:
        if cancel is not None and cancel.is_set():
            return
        try:
            check = step()
        except WizardError as exc:  # e.g. a folder that does not load: this item fails, the rest run
            check = QualityCheck(name, False, str(exc), {"error": exc.message})
        replies.extend(str(r) for r in check.details.get("replies", []))  # type: ignore[attr-defined]
        yield check


def _fidelity():
    from wizard_steps import fidelity  # imports this module: loaded on first use

    return fidelity


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
