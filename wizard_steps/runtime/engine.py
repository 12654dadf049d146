"""Streaming generation behind one interface, with two backends: onnxruntime-genai directly on a
converted folder, and Foundry Local on a deployed model (``engine_foundry``).

A backend streams one reply for a whole conversation; ``Chat`` keeps the conversation, fits it
into the context (dropping the oldest turns, never the system prompt) and records each reply.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import _
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import Conversation, PromptTemplate, render

# The prompt goes in in pieces of this many tokens. onnxruntime-genai computes the logits of every
# position it is given, a vocabulary's worth of floats each (the demo: 49,152 x 4 bytes, 100 MB for
# a 512-token prompt in one piece, 25 MB in pieces of 128), and the pieces cost no time. On the
# demo's default INT4 (benchmarks/prefill_chunks.py, AMD EPYC, one core, medians of 3 fresh
# processes): peak memory 423 -> 330 MB at a 512-token prompt, 592 -> 376 at 1024, 882 -> 412 at
# 2048; the prompt's time x0.97, x0.95, x0.99; the same greedy tokens.
PREFILL_CHUNK = 128
# A chat's generator keeps its KV cache for the next turn, which then feeds only what follows the
# tokens the two prompts share (the new message, and the last reply where its text re-tokenizes
# differently). Its capacity is the turn's prompt and reply plus this many tokens: the next turn
# must fit in it to reuse the cache (a fresh generator otherwise). With onnxruntime-genai's shared
# KV buffer, sized to the capacity, that is 256 x 46 kB = 12 MB more on the demo.
CHAT_HEADROOM = 256


class EngineError(WizardError):
    """The model cannot answer this request (too long, not loadable...)."""


@dataclass(frozen=True)
class ReplyOptions:
    """Per-reply generation settings: the ModelConfig plus a reply limit and stop strings."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    min_new_tokens: int = 0  # benchmarks: generate exactly this many (backends that can)

    @classmethod
    def from_model_config(cls, config: ModelConfig, max_new_tokens: int = 256,
                          stop: tuple[str, ...] = ()) -> ReplyOptions:
        return cls(max_new_tokens, config.temperature, config.top_p, config.repetition_penalty, stop)


@dataclass(frozen=True)
class TextChunk:
    """A piece of the reply as it is produced (already decoded: whole characters only)."""

    text: str


@dataclass(frozen=True)
class TurnsDropped:
    """The oldest turns were left out so that the conversation fits the context."""

    count: int
    message: str


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int
    generated_tokens: int
    ttft_s: float
    duration_s: float
    finish_reason: str  # stop | length | stop_string | cancelled
    cached_tokens: int = 0  # of prompt_tokens, those whose KV cache the turn before left (not fed again)

    @property
    def prompt_tokens_per_s(self) -> float:
        """The prompt tokens fed (those the cache held are not) over the time to the first token."""
        fed = self.prompt_tokens - self.cached_tokens
        return fed / self.ttft_s if self.ttft_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Generation speed after the first token (decode only)."""
        decode_s = self.duration_s - self.ttft_s
        return (self.generated_tokens - 1) / decode_s if self.generated_tokens > 1 and decode_s > 0 else 0.0


@dataclass(frozen=True)
class ReplyDone:
    text: str
    stats: ReplyStats


ReplyEvent = TextChunk | TurnsDropped | ReplyDone


class Backend(Protocol):
    """What a generation backend offers; the UI never knows which one it talks to."""

    name: str
    context_length: int

    def count_tokens(self, conversation: Conversation) -> int: ...

    def stream(self, conversation: Conversation, options: ReplyOptions,
               cancel: threading.Event | None = None,
               session: object | None = None) -> Iterator[TextChunk | ReplyDone]:
        """``session``: the conversation's owner (a ``Chat``); a backend may keep what it computed
        for the next reply of the same session. None: nothing is reused (a benchmark's runs)."""
        ...

    def close(self) -> None: ...


class StopStringFilter:
    """Holds back text that could be the start of a stop string, so none of it is ever shown."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        self.pending += piece
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                self.stopped = True
                out, self.pending = self.pending[:at], ""
                return out
        keep = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
                   default=0)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out):]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text as a tokenizer takes it: NUL characters dropped, lone surrogates (invalid UTF-8 read
    with errors="surrogateescape") replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def fit_conversation(backend: Backend, conversation: Conversation,
                     max_new_tokens: int) -> tuple[Conversation, int]:
    """Drop the oldest turns (in user/assistant pairs, keeping the system prompt and the last
    message) until prompt plus reply fit; raise EngineError when the last message alone is too long."""
    budget = backend.context_length - max_new_tokens
    turns = list(conversation.turns)
    dropped = 0
    while True:
        candidate = Conversation(conversation.system, tuple(turns))
        if backend.count_tokens(candidate) <= budget:
            return candidate, dropped
        if len(turns) <= 1:
            size = backend.count_tokens(candidate)
            raise EngineError(
                _("The message is too long: {size} tokens with the system prompt, and the model "
                  "takes {budget} before its reply.").format(size=size, budget=budget),
                _("Shorten the message or lower the reply length."))
        cut = 2 if len(turns) > 2 and turns[0][0] == "user" and turns[1][0] == "assistant" else 1
        turns = turns[cut:]
        dropped += cut


class GenaiBackend:
    """onnxruntime-genai in this process, on a converted folder."""

    name = "onnxruntime-genai"

    def __init__(self, folder: str | Path, template: PromptTemplate,
                 max_length: int | None = None, overlay: dict | None = None) -> None:
        """``overlay``: genai_config.json keys to override for this load only (tuning)."""
        import onnxruntime_genai as og  # heavy: loaded only when a model is opened

        self._og = og
        self.folder = Path(folder)
        self.template = template
        try:
            config = og.Config(str(self.folder))
            if overlay:
                config.overlay(json.dumps(overlay))
            self.model = og.Model(config)
        except Exception as exc:
            raise EngineError(_("onnxruntime-genai cannot load {folder}: {error}").format(
                                  folder=self.folder, error=exc).splitlines()[0],
                              _("Convert the model again with slmops convert.")) from None
        self._tokenizer = None
        config = json.loads((self.folder / "genai_config.json").read_text(encoding="utf-8"))
        self.context_length = min(int(config["model"].get("context_length", 2048)),
                                  max_length or 10**9)
        eos = config["model"].get("eos_token_id", [])
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self._kept: _KeptGenerator | None = None  # the last chat turn's generator, for its session

    @property
    def tokenizer(self):
        """Loaded on first use (0.15 s on the demo): a load that only times tokens needs none."""
        if self._tokenizer is None:
            self._tokenizer = self._og.Tokenizer(self.model)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def count_tokens(self, conversation: Conversation) -> int:
        return len(self.encode(render(self.template, conversation)))

    def stream(self, conversation: Conversation, options: ReplyOptions,
               cancel: threading.Event | None = None,
               session: object | None = None) -> Iterator[TextChunk | ReplyDone]:
        return self.stream_ids(self.encode(render(self.template, conversation)), options, cancel, session)

    def stream_ids(self, ids: list[int], options: ReplyOptions, cancel: threading.Event | None = None,
                   session: object | None = None) -> Iterator[TextChunk | ReplyDone]:
        """Generate from token ids; one token at a time so a cancel is honoured within a token.
        With a ``session``, the KV cache its last reply left is reused where the prompts agree."""
        started = time.perf_counter()
        kept, self._kept = self._kept, None  # a stream of another session (or none) frees it
        # a seeded reply is reproducible only from a fresh generator, and min_length counts from it
        keep = session is not None and options.seed is None and not options.min_new_tokens
        search: dict[str, object] = {
            "do_sample": options.temperature > 0,
            "repetition_penalty": options.repetition_penalty,
        }
        if options.temperature > 0:
            search.update(temperature=options.temperature, top_p=options.top_p)
            if options.seed is not None:
                search["random_seed"] = options.seed
        needed = min(len(ids) + options.max_new_tokens, self.context_length)
        cached = kept.reuse(session, search, ids, needed) if keep and kept is not None else 0
        if cached:
            assert kept is not None
            generator, capacity = kept.generator, kept.capacity
            _feed(generator, ids[cached:])
        else:
            del kept  # its KV buffer goes before the next one is allocated
            capacity = min(needed + CHAT_HEADROOM, self.context_length) if keep else needed
            if options.min_new_tokens:
                search["min_length"] = min(len(ids) + options.min_new_tokens, capacity)
            generator = self._prefilled({**search, "max_length": capacity}, ids)
        decoder = self.tokenizer.create_stream()
        stops = StopStringFilter(options.stop)
        text: list[str] = []
        generated, ttft, reason = 0, 0.0, "length"
        while True:
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            if generator.is_done():
                reason = "stop" if generated < options.max_new_tokens else "length"
                break
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            generated += 1
            if generated == 1:
                ttft = time.perf_counter() - started
            if token in self.eos_ids:
                reason = "stop"
                break
            piece = stops.feed(decoder.decode(token))
            if piece:
                text.append(piece)
                yield TextChunk(piece)
            if stops.stopped:
                reason = "stop_string"
                break
            if generated >= options.max_new_tokens:
                reason = "length"
                break
        ended = time.perf_counter()
        if keep:
            self._kept = _KeptGenerator(session, search, generator, capacity)
        del generator
        if reason != "stop_string":
            tail = stops.flush()
            if tail:
                text.append(tail)
                yield TextChunk(tail)
        stats = ReplyStats(len(ids), generated, ttft, ended - started, reason, cached)
        yield ReplyDone("".join(text), stats)

    def _prefilled(self, search: dict[str, object], ids: list[int]):
        """A generator with these search options and the prompt ``ids`` fed in, in pieces of
        PREFILL_CHUNK."""
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(**search)
        generator = self._og.Generator(self.model, params)
        _feed(generator, ids)
        return generator

    def decode_times(self, ids: list[int], tokens: int) -> Iterator[float]:
        """The seconds each greedy token after the prompt ``ids`` takes, one at a time, up to
        ``tokens`` (end of text not allowed). The generator stays open between items, so a
        measurement can take a few tokens from each of several loads in turn, at the same
        positions, without paying the prompt again."""
        length = min(len(ids) + tokens, self.context_length)
        generator = self._prefilled({"max_length": length, "min_length": length, "do_sample": False}, ids)
        while not generator.is_done():
            started = time.perf_counter()
            generator.generate_next_token()
            yield time.perf_counter() - started

    def close(self) -> None:
        self._kept = None
        self.model = None
        self._tokenizer = None


def _feed(generator: Any, ids: list[int]) -> None:
    """Feed ``ids`` to an onnxruntime-genai generator in pieces of PREFILL_CHUNK."""
    for start in range(0, len(ids), PREFILL_CHUNK):
        generator.append_tokens(ids[start:start + PREFILL_CHUNK])


@dataclass
class _KeptGenerator:
    """A chat turn's generator, kept with its KV cache for the session's next turn."""

    session: object
    search: dict[str, object]  # the search options it was made with, but its capacity
    generator: Any  # onnxruntime_genai.Generator (imported only where a model is opened)
    capacity: int  # its max_length

    def reuse(self, session: object, search: dict[str, object], ids: list[int], needed: int) -> int:
        """Rewind to the tokens ``ids`` shares with what the generator holds and return how many
        those are; 0 (nothing touched) where it cannot serve: another session or settings, a
        prompt and reply beyond its capacity, nothing in common."""
        if session is not self.session or search != self.search or needed > self.capacity:
            return 0
        held = [int(t) for t in self.generator.get_sequence(0)]
        # the last token held may not have been fed yet (a reply's last): it is fed again
        limit = min(len(held) - 1, len(ids) - 1)  # and one prompt token at least, for the logits
        common = 0
        while common < limit and held[common] == ids[common]:
            common += 1
        if common:
            self.generator.rewind_to(common)
        return common


@dataclass
class Chat:
    """A multi-turn conversation with one backend: system prompt, history, replies."""

    backend: Backend
    options: ReplyOptions = field(default_factory=ReplyOptions)
    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.turns.clear()

    def send(self, message: str, cancel: threading.Event | None = None) -> Iterator[ReplyEvent]:
        """Stream the reply to ``message``; the turn is kept even when the reply is cancelled."""
        message = clean_text(message)
        if not message.strip():
            raise EngineError(_("The message is empty."), _("Type a question first."))
        system = clean_text(self.system) if self.system else self.system
        wanted = Conversation(system, (*self.turns, ("user", message)))
        fitted, dropped = fit_conversation(self.backend, wanted, self.options.max_new_tokens)
        if dropped:
            self.turns = list(fitted.turns[:-1])
            yield TurnsDropped(dropped, _(
                "The {count} oldest messages were left out so that the conversation fits the "
                "model's context; the system prompt stays.").format(count=dropped))
        for event in self.backend.stream(fitted, self.options, cancel, session=self):
            if isinstance(event, ReplyDone):
                self.turns += [("user", message), ("assistant", event.text)]
            yield event
