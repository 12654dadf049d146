"""Streaming generation through onnxruntime-genai on the converted demo model."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from wizard_steps.prompt.templates import Conversation, get_preset
from wizard_steps.runtime.engine import (
    Chat,
    EngineError,
    GenaiBackend,
    ReplyDone,
    ReplyOptions,
    StopStringFilter,
    TextChunk,
    TurnsDropped,
)

pytestmark = pytest.mark.slow
CHATML = get_preset("chatml")


@pytest.fixture(scope="module")
def backend(demo_int8: Path) -> GenaiBackend:
    return GenaiBackend(demo_int8, CHATML.template)


def collect(events) -> tuple[list[str], ReplyDone, list]:
    chunks, done, other = [], None, []
    for event in events:
        if isinstance(event, TextChunk):
            chunks.append(event.text)
        elif isinstance(event, ReplyDone):
            done = event
        else:
            other.append(event)
    assert done is not None
    return chunks, done, other


class CountingTokenizer:
    """The backend's real tokenizer, noting every token id its stream decoder is given (each one
    the generator produced and the engine streamed)."""

    def __init__(self, real: object) -> None:
        self.real, self.streamed = real, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def create_stream(self) -> object:
        decoder, streamed = self.real.create_stream(), self.streamed  # type: ignore[attr-defined]

        class Counting:
            def decode(self, token: int) -> str:
                streamed.append(token)
                return decoder.decode(token)

        return Counting()


def test_reply_streams_and_its_stats_add_up(backend: GenaiBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # The INT8's words, and where it stops, depend on the CPU: asserted are the relations between
    # what was streamed and what was counted, which hold whatever the words.
    tokenizer = CountingTokenizer(backend.tokenizer)
    monkeypatch.setattr(backend, "tokenizer", tokenizer)
    system = "You are a helpful assistant."
    chat = Chat(backend, ReplyOptions(max_new_tokens=40, min_new_tokens=16, stop=CHATML.stop), system=system)
    chunks, done, _ = collect(chat.send("What is the capital of France?"))
    assert "".join(chunks) == done.text and all(chunks)
    stats = done.stats
    assert stats.prompt_tokens == backend.count_tokens(
        Conversation(system, (("user", "What is the capital of France?"),)))
    assert stats.finish_reason in ("stop", "length", "stop_string")
    # every token went through the stream decoder, one at a time, but an end-of-sequence one
    unstreamed = stats.generated_tokens - len(tokenizer.streamed)
    assert unstreamed in ((0, 1) if stats.finish_reason == "stop" else (0,))
    assert stats.generated_tokens <= 40 and len(chunks) <= len(tokenizer.streamed) + 1  # + a held-back tail
    if stats.finish_reason != "stop_string":  # the end of sequence waits for the minimum
        assert stats.generated_tokens >= 16
    if stats.finish_reason == "length":
        assert stats.generated_tokens == 40
    assert 0 < stats.ttft_s < stats.duration_s and stats.tokens_per_s > 0


def test_generated_token_count_equals_the_streamed_tokens(backend: GenaiBackend,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = CountingTokenizer(backend.tokenizer)
    monkeypatch.setattr(backend, "tokenizer", tokenizer)
    options = ReplyOptions(max_new_tokens=20, min_new_tokens=20)
    conversation = Conversation(None, (("user", "Tell me a story about a cat."),))
    chunks, done, _ = collect(backend.stream(conversation, options))
    # counted from the tokens the generator gave, not from re-encoding the INT8's words
    assert done.stats.generated_tokens == len(tokenizer.streamed) == 20
    assert "".join(chunks) == done.text
    assert done.stats.finish_reason == "length"


def test_cancel_stops_within_one_token(backend: GenaiBackend) -> None:
    stop = threading.Event()
    generated = 0
    conversation = Conversation(None, (("user", "Write a long essay about rivers."),))
    for event in backend.stream(conversation, ReplyOptions(max_new_tokens=200, min_new_tokens=200),
                                stop):
        if isinstance(event, TextChunk):
            generated += 1
            if generated == 5:
                stop.set()
        elif isinstance(event, ReplyDone):
            done = event
    assert done.stats.finish_reason == "cancelled"
    assert done.stats.generated_tokens <= 6


def test_six_turn_conversation_keeps_the_system_prompt(backend: GenaiBackend,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    chat = Chat(backend, ReplyOptions(max_new_tokens=12, stop=CHATML.stop),
                system="You are a pirate.")
    for question in ("Hello!", "Who are you?", "What is 2+2?"):
        collect(chat.send(question))
    assert len(chat.turns) == 6
    received: list[list[int]] = []  # the token ids the generator is really given
    real = backend.stream_ids
    monkeypatch.setattr(backend, "stream_ids", lambda ids, *rest: received.append(ids) or real(ids, *rest))
    earlier = list(chat.turns)
    _, done, other = collect(chat.send("And who am I?"))
    assert other == [] and len(received) == 1  # nothing dropped, one request
    # ChatML written out by hand: the system turn first, the six turns in order, the question.
    expected = ("<|im_start|>system\nYou are a pirate.<|im_end|>\n"
                + "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in earlier)
                + "<|im_start|>user\nAnd who am I?<|im_end|>\n<|im_start|>assistant\n")
    assert [role for role, _ in earlier] == ["user", "assistant"] * 3
    assert received[0] == backend.encode(expected)
    assert done.stats.prompt_tokens == len(received[0])


def test_a_chats_next_turn_feeds_only_what_the_last_left_out_and_answers_as_a_fresh_prompt(
        tiny_converted) -> None:
    # fp32 (the tiny Llama): a reused cache and a fresh prompt agree to rounding, so their greedy
    # words are the same on any CPU; a quantized model's may differ in a near tie
    folder = tiny_converted("fp32")
    kept, fresh = GenaiBackend(folder, CHATML.template), GenaiBackend(folder, CHATML.template)
    options = ReplyOptions(max_new_tokens=8, stop=CHATML.stop)
    chat = Chat(kept, options, system="Be brief.")
    cached, prompts = [], []
    for question in ("Hello!", "Who are you?", "What is 2+2?", "And 3+3?"):
        asked = Conversation("Be brief.", (*chat.turns, ("user", question)))
        _, done, _ = collect(chat.send(question))
        _, alone, _ = collect(fresh.stream(asked, options))  # no session: the whole prompt fed
        assert alone.stats.cached_tokens == 0
        assert (done.text, done.stats.generated_tokens) == (alone.text, alone.stats.generated_tokens)
        assert done.stats.prompt_tokens == alone.stats.prompt_tokens == fresh.count_tokens(asked)
        cached.append(done.stats.cached_tokens)
        prompts.append(done.stats.prompt_tokens)
    assert cached[0] == 0
    # each later turn reuses the turn before's prompt, but for its last token where the reply's first
    # characters encode together with it (the template's newline; the random model's replies start
    # anywhere), and its reply where that encodes as it was generated; the new question is fed
    assert all(prompts[i - 1] - 1 <= cached[i] < prompts[i] for i in range(1, len(cached))), (cached, prompts)
    # a reset keeps the system prompt's tokens
    chat.reset()
    _, done, _ = collect(chat.send("Hello!"))
    assert 0 < done.stats.cached_tokens < done.stats.prompt_tokens
    # settings changed mid-conversation start afresh, and the next turn with them reuses again
    chat.options = replace(options, repetition_penalty=1.0)
    _, done, _ = collect(chat.send("Who are you?"))
    assert done.stats.cached_tokens == 0
    _, done, _ = collect(chat.send("What is 2+2?"))
    assert done.stats.cached_tokens > 0
    # another session reuses nothing, and a seeded one nothing even on its own next turn
    _, done, _ = collect(Chat(kept, options, system="Be brief.").send("Hello!"))
    assert done.stats.cached_tokens == 0
    seeded = Chat(kept, replace(options, temperature=0.7, seed=1), system="Be brief.")
    for question in ("Hello!", "Who are you?"):
        _, done, _ = collect(seeded.send(question))
        assert done.stats.cached_tokens == 0
    repeated = [collect(kept.stream(Conversation(None, (("user", "Hi"),)), options))[1].stats.cached_tokens
                for _ in range(2)]
    assert repeated == [0, 0]  # a benchmark's runs each feed their whole prompt
    kept.close()
    fresh.close()


def test_context_overflow_drops_the_oldest_turns(demo_int8: Path) -> None:
    small = GenaiBackend(demo_int8, CHATML.template, max_length=160)
    chat = Chat(small, ReplyOptions(max_new_tokens=16, stop=CHATML.stop), system="Be brief.")
    dropped = []
    for index in range(6):
        _, _, other = collect(chat.send(f"Question {index}: tell me about the number {index} "
                                        "in about twenty words please."))
        dropped += [e for e in other if isinstance(e, TurnsDropped)]
    assert dropped, "some turns must have been dropped at a 160-token context"
    assert "system prompt stays" in dropped[0].message
    assert chat.turns[-2][1].startswith("Question 5")
    assert len(chat.turns) < 12


def test_a_single_message_too_long_is_refused(backend: GenaiBackend) -> None:
    chat = Chat(backend, ReplyOptions(max_new_tokens=16))
    with pytest.raises(EngineError, match="too long"):
        list(chat.send("word " * 9000))
    assert chat.turns == []


def test_empty_message_is_refused(backend: GenaiBackend) -> None:
    with pytest.raises(EngineError, match="empty"):
        list(Chat(backend).send("   "))


def test_stop_string_is_never_shown_even_across_pieces() -> None:
    stops = StopStringFilter(("<|im_end|>",))
    shown = "".join(stops.feed(p) for p in ["Hello", " <|im", "_end|> more"]) + stops.flush()
    assert shown == "Hello " and stops.stopped


def test_multibyte_text_reaches_the_model_whole_and_streams_whole_characters(
        backend: GenaiBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    message = "Écris « bonjour » et un emoji 😀 en français."
    received: list[list[int]] = []
    real = backend.stream_ids
    monkeypatch.setattr(backend, "stream_ids", lambda ids, *rest: received.append(ids) or real(ids, *rest))
    chat = Chat(backend, ReplyOptions(max_new_tokens=30, stop=CHATML.stop))
    chunks, done, _ = collect(chat.send(message))
    expected = f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
    assert received[0] == backend.encode(expected)
    assert message in backend.tokenizer.decode(received[0])
    assert all("\ufffd" not in chunk for chunk in chunks)  # no character cut between tokens
    assert chat.turns == [("user", message), ("assistant", done.text)]


PEAK_PROBE = """
import json, sys
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions

def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

backend = GenaiBackend(sys.argv[1], get_preset("chatml").template)
list(backend.stream_ids([1] * 16, ReplyOptions(max_new_tokens=2)))  # loaded and warm
before = peak()
ids = backend.encode("The quick brown fox jumps over the lazy dog. " * 200)[:1024]
done = [e for e in backend.stream_ids(ids, ReplyOptions(max_new_tokens=2)) if isinstance(e, ReplyDone)][0]
print(json.dumps({"growth": peak() - before, "prompt": done.stats.prompt_tokens}))
"""


def test_a_long_prompt_goes_in_in_pieces_so_its_logits_never_take_a_whole_prompts_worth(tiny_converted) -> None:
    """onnxruntime-genai computes logits at every position it is given: a 1024-token prompt in one
    piece needs 1024 x vocabulary floats at once (201 MB for the demo's vocabulary). In pieces of
    PREFILL_CHUNK the process's peak grows by a fraction of that. Measured in a fresh process (its
    own peak); memory, not time, so the same on every CPU."""
    import json
    import subprocess
    import sys

    from wizard_steps.runtime.engine import PREFILL_CHUNK

    folder = tiny_converted("fp32")
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["prompt"] == 1024
    whole = 1024 * vocab * 4
    assert PREFILL_CHUNK * vocab * 4 < whole / 4
    assert measured["growth"] < whole / 2, measured  # in one piece it is at least `whole`
