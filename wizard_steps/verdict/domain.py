"""Domain queries: prompts with what their replies must contain, asked of the converted model and,
when it is at hand, of the source model too, so that a miss counts against the conversion only
where the source answered (a small model's greedy words change with the CPU; the source's do not
decide the verdict alone).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.core.checks import DEFAULT_SYSTEM, DOMAIN, QualityCheck, QualityError, data_file, skipped
from wizard_steps.core.checks import clip as _clip
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _, percent
from wizard_steps.measurement import source_model
from wizard_steps.prompt.templates import Conversation, render
from wizard_steps.runtime.engine import (
    Backend,
    Chat,
    EngineError,
    GenaiBackend,
    ReplyDone,
    ReplyOptions,
    clean_text,
)
from wizard_steps.verdict import fidelity

DEFAULT_OPTIONS = ReplyOptions(max_new_tokens=64, temperature=0.0)



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
    """The queries shipped for the demo model: 62, varied (capitals, arithmetic, facts, opposites,
    greetings, questions in and about Turkish); its fp32 source answers more than 30 of them (the
    questions in Turkish it cannot: they show what the source misses, and judge nothing)."""
    return load_queries(data_file("quality_demo.jsonl"))


def ask(backend: Backend, prompt: str, options: ReplyOptions = DEFAULT_OPTIONS,
        system: str | None = DEFAULT_SYSTEM, cancel: threading.Event | None = None) -> str:
    """One fresh single-turn chat; the reply's text."""
    for event in Chat(backend, options, system).send(prompt, cancel):
        if isinstance(event, ReplyDone):
            return event.text
    raise EngineError(_("The model gave no reply."))


# --- the source's replies -------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceReplies:
    """The source model's replies to the queries (in their order), asked as the converted model is."""

    origin: str  # the source folder
    replies: tuple[str, ...]


def source_replies(source: str | Path, backend: Backend, queries: Sequence[DomainQuery],
                   options: ReplyOptions = DEFAULT_OPTIONS, system: str | None = DEFAULT_SYSTEM,
                   cancel: threading.Event | None = None) -> SourceReplies:
    """Ask the source the same prompts: an FP32 ONNX folder through onnxruntime-genai with the
    backend's template, or a Hugging Face folder with torch in a child process (greedy, same
    reply limit, repetition penalty and stop strings)."""

    folder = Path(source)
    template = getattr(backend, "template", None)
    if (folder / "genai_config.json").is_file():
        onnx = GenaiBackend(folder, template) if template is not None else None
        if onnx is None:
            raise QualityError(_("The model's prompt template is unknown, so the source cannot be asked "
                                 "the same way."))
        try:
            return SourceReplies(str(folder), tuple(ask(onnx, q.prompt, options, system, cancel)
                                                    for q in queries))
        finally:
            onnx.close()

    system = clean_text(system) if system else system
    prompts = [render(template, Conversation(system, (("user", clean_text(q.prompt)),)))
               if template is not None else fidelity.chat_prompt(folder, clean_text(q.prompt), system)
               for q in queries]
    settings = source_model.ReplySettings(options.max_new_tokens, options.repetition_penalty, options.stop)
    return SourceReplies(str(folder), source_model.source_replies(folder, prompts, settings, cancel=cancel))


# --- the verdict ----------------------------------------------------------------------------------


# Greedy answers flip at near-ties, and which way a near-tie tips depends on the CPU's kernels (the
# same INT8 keeps or loses "France" from one CPU to the next, at the same perplexity). One flip among
# many queries is that noise; losing a tenth of the source's answers is a pattern. So a conversion
# may lose up to a tenth of the answers the source gives, and always one: no single near-tie fails a
# model alone, while a handful of queries still allow none beyond it. Every lost answer is shown.
LOST_SHARE = 0.10
MAX_SHOWN = 3  # lost answers quoted in the evidence; DomainVerdict.lost holds them all


@dataclass(frozen=True)
class QueryResult:
    """One query asked of the converted model (and its source's answer, when there is a source)."""

    line: int
    prompt: str
    reply: str
    passed: bool
    error: str = ""
    source_reply: str | None = None
    source_passed: bool | None = None


@dataclass(frozen=True)
class DomainVerdict:
    """The domain queries' figures: every query's result; against a source (``relative``), how
    many answers the source gives, how many the conversion lost (each of them) and may lose."""

    results: tuple[QueryResult, ...]
    relative: bool
    source: str | None = None
    source_answered: int = 0
    losses: int = 0
    source_also_missed: int = 0
    allowed_losses: int = 0

    @property
    def replies(self) -> tuple[str, ...]:
        return tuple(r.reply for r in self.results)

    @property
    def lost(self) -> tuple[QueryResult, ...]:
        return tuple(r for r in self.results if r.source_passed and not r.passed)


def allowed_losses(answered: int, share: float = LOST_SHARE) -> int:
    """How many of the source's answers a conversion may lose: a tenth, and at least one (none when
    the source answers nothing)."""
    return max(1, int(answered * share)) if answered else 0


def check_domain_queries(backend: Backend, queries: Sequence[DomainQuery],
                         options: ReplyOptions = DEFAULT_OPTIONS, system: str | None = DEFAULT_SYSTEM,
                         min_pass_rate: float = 1.0, cancel: threading.Event | None = None,
                         source: SourceReplies | None = None, absolute_note: str = "",
                         lost_share: float = LOST_SHARE) -> QualityCheck[DomainVerdict]:
    """Ask each query (greedy by default) and check its reply. With the source's replies, it
    passes when the converted model loses at most ``allowed_losses`` of the answers the source
    gives (a query the source also misses is no conversion loss); without them the verdict is
    absolute: ``min_pass_rate`` of all queries."""
    if not queries:
        return skipped(DOMAIN, _("No domain queries were given; supply a JSONL file of prompts."))
    if source is not None and len(source.replies) != len(queries):
        raise QualityError(_("The source's replies were made for other queries."))
    results = []
    for index, query in enumerate(queries):
        try:
            reply, error = ask(backend, query.prompt, options, system, cancel), ""
        except WizardError as exc:
            reply, error = "", exc.message
        source_reply = source.replies[index] if source is not None else None
        source_passed = query.matches(source_reply) if source_reply is not None else None
        results.append(QueryResult(query.line, query.prompt, reply, not error and query.matches(reply), error,
                                   source_reply, source_passed))
    good = sum(r.passed for r in results)
    evidence = _("{good} of {total} queries answered as expected").format(good=good, total=len(results))
    if source is None:
        passed = good >= min_pass_rate * len(results)
        evidence += _(" (needed {needed}; absolute verdict: {why})").format(
            needed=percent(min_pass_rate * 100, space=False),
            why=absolute_note or _("no source model to compare with"))
        miss = next((r for r in results if not r.passed), None)
        if miss:
            evidence += _("; line {line} {prompt!r} got {reply!r}").format(
                line=miss.line, prompt=_clip(miss.prompt, 40), reply=_clip(miss.error or miss.reply))
        return QualityCheck(DOMAIN, passed, evidence + ".", DomainVerdict(tuple(results), relative=False))
    judged = [r for r in results if r.source_passed]
    losses = [r for r in judged if not r.passed]
    both_miss = [r for r in results if not r.source_passed and not r.passed]
    allowed = allowed_losses(len(judged), lost_share)
    passed = len(losses) <= allowed
    evidence += _("; the source answers {answered} of {total}; {lost} lost in conversion "
                  "(at most {allowed} allowed)").format(
        answered=len(judged), total=len(results), lost=len(losses), allowed=allowed)
    shown = losses[:MAX_SHOWN] if losses else both_miss[:1]
    label = (_("; lost: line {line} {prompt!r}: source {source!r}, converted {reply!r}") if losses
             else _("; the source misses it too: line {line} {prompt!r}: source {source!r}, "
                    "converted {reply!r}"))
    for item in shown:
        evidence += label.format(line=item.line, prompt=_clip(item.prompt, 40),
                                 source=_clip(item.source_reply or "", 40),
                                 reply=_clip(item.error or item.reply, 40))
    if len(losses) > MAX_SHOWN:
        evidence += _("; and {count} more lost").format(count=len(losses) - MAX_SHOWN)
    return QualityCheck(DOMAIN, passed, evidence + ".", DomainVerdict(
        tuple(results), relative=True, source=source.origin, source_answered=len(judged), losses=len(losses),
        source_also_missed=len(both_miss), allowed_losses=allowed))
