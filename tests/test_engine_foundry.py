"""Streaming generation through Foundry Local on the deployed demo model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from wizard_steps.deployment.deploy import deploy, finish
from wizard_steps.deployment.engine_foundry import FoundryBackend
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import Chat, EngineError, ReplyDone, ReplyOptions, TextChunk

pytestmark = pytest.mark.slow
CHATML = get_preset("chatml")


@pytest.fixture(scope="module")
def backend(demo_int8: Path, tmp_path_factory: pytest.TempPathFactory) -> FoundryBackend:
    cache = tmp_path_factory.mktemp("foundry-engine")
    done = finish(deploy(demo_int8, "engine-test", CHATML.template, ModelConfig(temperature=0.0),
                         cache_dir=cache))
    opened = FoundryBackend(done.result.model_id, CHATML.template, cache)
    yield opened
    opened.close()


def test_foundry_reply_streams_with_consistent_stats(backend: FoundryBackend) -> None:
    chat = Chat(backend, ReplyOptions(max_new_tokens=40, stop=CHATML.stop),
                system="You are a helpful assistant.")
    chunks, done = [], None
    for event in chat.send("What is the capital of France?"):
        if isinstance(event, TextChunk):
            chunks.append(event.text)
        elif isinstance(event, ReplyDone):
            done = event
    assert done is not None and "".join(chunks) == done.text and done.text.strip()
    assert done.stats.prompt_tokens == backend.count_tokens(chat_conversation(chat))
    assert 0 < done.stats.generated_tokens <= 40
    assert 0 < done.stats.ttft_s < done.stats.duration_s


def chat_conversation(chat: Chat):
    from wizard_steps.prompt.templates import Conversation

    return Conversation(chat.system, tuple(chat.turns[:1]))


def test_foundry_reply_can_be_cancelled(backend: FoundryBackend) -> None:
    stop = threading.Event()
    chat = Chat(backend, ReplyOptions(max_new_tokens=300))
    pieces, done = 0, None
    for event in chat.send("Write a long essay about the history of bridges.", stop):
        if isinstance(event, TextChunk):
            pieces += 1
            if pieces == 3:
                stop.set()
        elif isinstance(event, ReplyDone):
            done = event
    assert done is not None and done.stats.finish_reason == "cancelled"
    assert pieces <= 4


def test_unknown_deployed_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="No deployed model is called nope:1"):
        FoundryBackend("nope:1", CHATML.template, tmp_path)


def test_genai_backend_opens_after_foundry_has_started(demo_int4: Path, tmp_path: Path) -> None:
    """onnxruntime_genai fails to import once Foundry's runtime is up, unless slmops loads it first."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from wizard_steps.runtime.foundry import FoundryRuntime\n"
        f"FoundryRuntime.open({str(tmp_path / 'cache')!r})\n"
        "from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions\n"
        "from wizard_steps.prompt.templates import Conversation, get_preset\n"
        f"backend = GenaiBackend({str(demo_int4)!r}, get_preset('chatml').template)\n"
        "done = [e for e in backend.stream(Conversation(None, (('user', 'Hi'),)),\n"
        "        ReplyOptions(max_new_tokens=4)) if isinstance(e, ReplyDone)][0]\n"
        "print(done.stats.generated_tokens)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    assert int(out.stdout.strip().splitlines()[-1]) > 0
