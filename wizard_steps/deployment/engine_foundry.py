"""The Foundry Local backend of ``engine``: a deployed model, served in-process by the Foundry
Local runtime of the foundry-local-sdk wheel. Foundry builds the prompt from the deployed
folder's chat template (which deploy wrote from the chosen template), so the same conversation
is sent as messages; tokens are counted with the folder's own tokenizer.json."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from wizard_steps.core.i18n import _
from wizard_steps.deployment.deploy import deploy, finish, list_deployed
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import Conversation, PromptTemplate, render
from wizard_steps.runtime.engine import (
    EngineError,
    ReplyDone,
    ReplyOptions,
    ReplyStats,
    StopStringFilter,
    TextChunk,
)
from wizard_steps.runtime.foundry import FoundryChat, FoundryRuntime


class FoundryBackend:
    """A deployed model, by id (``name:version``), in a Foundry Local cache."""

    name = "Foundry Local"

    def __init__(self, model_id: str, template: PromptTemplate, cache_dir: Path | None = None) -> None:
        deployed = {m.id: m for m in list_deployed(cache_dir)}
        if model_id not in deployed:
            known = ", ".join(sorted(deployed)) or _("none")
            raise EngineError(_("No deployed model is called {model}.").format(model=model_id),
                              _("Deployed models: {known}. Deploy it first with slmops deploy.").format(
                                  known=known))
        self.model_id = model_id
        self.template = template
        self.folder = Path(deployed[model_id].path)
        from tokenizers import Tokenizer  # small; counts tokens without loading the model

        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        genai = json.loads((self.folder / "genai_config.json").read_text(encoding="utf-8"))
        self.context_length = int(genai["model"].get("context_length", 2048))
        self._chat = FoundryChat(FoundryRuntime.open(cache_dir), model_id)

    def count_tokens(self, conversation: Conversation) -> int:
        return len(self._tokenizer.encode(render(self.template, conversation),
                                          add_special_tokens=False).ids)

    def stream(self, conversation: Conversation, options: ReplyOptions,
               cancel: threading.Event | None = None,
               session: object | None = None) -> Iterator[TextChunk | ReplyDone]:
        """``session`` is not used: Foundry Local's runtime takes the conversation's messages whole."""
        messages = ([("system", conversation.system)] if conversation.system else []) + list(
            conversation.turns)
        started = time.perf_counter()
        ttft = 0.0
        stops = StopStringFilter(options.stop)
        text: list[str] = []
        sampled = options.temperature > 0
        pieces = self._chat.stream(
            messages, max_output_tokens=options.max_new_tokens,
            temperature=options.temperature if sampled else None,
            top_p=options.top_p if sampled else None, do_sample=sampled, seed=options.seed,
            cancel=cancel)
        reason = None
        for piece in pieces:
            if not ttft:
                ttft = time.perf_counter() - started
            shown = stops.feed(piece)
            if shown:
                text.append(shown)
                yield TextChunk(shown)
            if stops.stopped:
                reason = "stop_string"
                pieces.close()
                break
        if reason is None:
            tail = stops.flush()
            if tail:
                text.append(tail)
                yield TextChunk(tail)
        usage = self._chat.last_usage
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif reason is None:
            reason = "length" if usage and usage.finish_reason == "length" else "stop"
        reply = "".join(text)
        prompt_tokens = usage.prompt_tokens if usage else self.count_tokens(conversation)
        generated = usage.completion_tokens if usage else len(
            self._tokenizer.encode(reply, add_special_tokens=False).ids)
        stats = ReplyStats(prompt_tokens, generated, ttft, time.perf_counter() - started, reason)
        yield ReplyDone(reply, stats)

    def close(self) -> None:
        self._chat.close()


_BENCH_CACHE: Path | None = None


def open_deployed_for_benchmark(folder: Path, template: PromptTemplate,
                                name: str = "bench") -> FoundryBackend:
    """Deploy ``folder`` into a throw-away Foundry cache (one per process, so several models
    stay loaded side by side) and open it. For benchmarks only."""

    global _BENCH_CACHE
    if _BENCH_CACHE is None:
        _BENCH_CACHE = Path(tempfile.mkdtemp(prefix="slmops-foundry-bench-"))
    cache = _BENCH_CACHE
    done = finish(deploy(folder, name, template, ModelConfig(temperature=0.0), cache_dir=cache))
    return FoundryBackend(done.result.model_id, template, cache)
