"""Foundry Local through its Python SDK (foundry-local-sdk 2.2.1, native runtime in the wheel):
one manager per process, the LOCAL catalog, loading, and streaming chat.

What the SDK does (read in its source and checked here):
- ``FoundryLocalManager`` is a process singleton: a second ``initialize`` raises while one is
  open, but ``close()`` clears it and a new one can be initialised with another cache dir in the
  same process (about 5 ms). ``FoundryRuntime.open`` does that when the cache dir changes, which
  ends the sessions and unloads the models of the previous one.
- The LOCAL catalog re-reads ``foundry.local.modelinfo.json`` on every call and writes it
  atomically, so other processes' registrations are seen and a restored copy is picked up.
- ``ChatSession`` keeps the conversation: ``FoundryChat`` sends the whole conversation in every
  request and undoes the turn afterwards, so each request stands alone.
- Leaving a stream early cancels the request (about 10 ms); the session serves the next one.
- The first request after a load is slow (1.3-1.8 s here, then 0.3-0.5 s): warm up first.

Logging: the native runtime writes its log lines at one level to both stderr and a daily file in
``logs_dir``; there is no switch for the console alone, and Textual draws on stderr, so the log
level is FATAL (``Configuration.log_level``) and the logs go under slmops' own logs folder. The
only lines seen offline come from the PUBLIC catalog ("failed to fetch catalog ... Could not
resolve hostname", after 4 s of retries), which nothing here opens: only the LOCAL catalog is used.
``disable_nonessential_telemetry`` is set; the runtime may still record a minimal ProcessInfo event.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard_steps.core import paths
from wizard_steps.core.errors import DeployError
from wizard_steps.core.i18n import N_, _

# foundry_local_sdk is imported inside the functions that use it, never at module level: importing
# it loads the native Foundry Local runtime with onnxruntime and onnxruntime-genai-core, which the
# TUI must not pay for before it paints its first screen.

APP_NAME = "slmops"
REGISTRY_FILE = "foundry.local.modelinfo.json"
TASK = "chat-completion"
SDK_HINT = N_("Install it with: pip install foundry-local-sdk==2.2.1")  # shown with _()
_ROLES = {"system": 1, "user": 2, "assistant": 3}  # foundry_local_sdk.MessageRole values


def sdk_available() -> bool:
    """True when foundry-local-sdk is installed (found without importing it)."""
    return importlib.util.find_spec("foundry_local_sdk") is not None


def _sdk_error(action: str, exc: Exception) -> DeployError:
    """One sentence from a FoundryLocalException ("file.cc:42 signature message")."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if ") " in text and ".cc:" in text.split(" ", 1)[0]:
        text = text.rsplit(") ", 1)[-1]
    return DeployError(_("Foundry Local could not {action}: {error}.").format(
        action=action, error=text.rstrip(".")))


class FoundryRuntime:
    """The process's Foundry Local manager, opened for one model cache dir at a time."""

    _lock = threading.RLock()
    _current: FoundryRuntime | None = None

    def __init__(self, manager: Any, cache_dir: Path) -> None:
        self._manager = manager
        self.cache_dir = cache_dir

    @classmethod
    def open(cls, cache_dir: Path | None = None) -> FoundryRuntime:
        """The shared runtime for ``cache_dir`` (default: slmops' Foundry cache); re-initialises
        the SDK when another cache dir is open."""
        cache = Path(cache_dir or paths.foundry_cache_dir()).expanduser().resolve()
        with cls._lock:
            current = cls._current
            if current is not None and current.cache_dir == cache and current.is_open:
                return current
            if not sdk_available():
                raise DeployError(_("The Foundry Local SDK (foundry-local-sdk) is not installed."),
                                  _(SDK_HINT))

            if importlib.util.find_spec("onnxruntime_genai") is not None:
                # Once the SDK's runtime (onnxruntime-genai-core) is up, importing onnxruntime_genai
                # fails with "undefined symbol: OgaRequestGetUnseenToken"; the other order works.
                import onnxruntime_genai  # noqa: F401
            from foundry_local_sdk import Configuration, FoundryLocalManager, LogLevel

            if current is not None:
                current.close()
            stale = FoundryLocalManager.instance
            if stale is not None:  # opened by someone else in this process
                stale.close()
            config = Configuration(
                app_name=APP_NAME, model_cache_dir=str(cache),
                app_data_dir=str(paths.data_dir() / "foundry-app"),
                logs_dir=str(paths.ensure(paths.logs_dir() / "foundry")),
                log_level=LogLevel.FATAL, disable_nonessential_telemetry=True)
            try:
                FoundryLocalManager.initialize(config)
            except Exception as exc:
                raise _sdk_error(_("start with the cache {cache}").format(cache=cache), exc) from None
            cls._current = cls(FoundryLocalManager.instance, cache)
            return cls._current

    @property
    def is_open(self) -> bool:
        return getattr(self._manager, "_native_manager", None) is not None

    def close(self) -> None:
        """Unload everything and release the manager (sessions opened on it end)."""
        with self._lock:
            try:
                self._manager.close()
            finally:
                if FoundryRuntime._current is self:
                    FoundryRuntime._current = None

    @property
    def catalog(self) -> Any:
        from foundry_local_sdk import CatalogType

        return self._manager.get_catalog(CatalogType.LOCAL)

    def register(self, folder: Path, model_id: str, display_name: str | None = None) -> Any:
        """Register a folder (it must hold genai_config.json) as ``name:version``."""
        from foundry_local_sdk import ModelInfoBuilder

        with self._lock, ModelInfoBuilder() as metadata:
            metadata.set_string_property("task", TASK)
            if display_name:
                metadata.set_string_property("display_name", display_name)
            try:
                return self.catalog.register_model(model_path=str(folder), model_id=model_id,
                                                   metadata=metadata)
            except Exception as exc:
                raise _sdk_error(_("register {model}").format(model=model_id), exc) from None

    def model(self, model_id: str) -> Any:
        """The registered model ``name:version`` (or the newest version of ``name``)."""
        with self._lock:
            found = (self.catalog.get_model_variant(model_id) if ":" in model_id
                     else self.catalog.get_model(model_id))
        if found is None:
            raise DeployError(_("No model {model} is registered in {cache}.").format(
                                  model=model_id, cache=self.cache_dir),
                              _("Deploy it first, or pick one from the list of deployed models."))
        return found

    def load(self, model_id: str) -> tuple[Any, float]:
        """Load the model (a no-op when loaded); returns it and the seconds the load took."""
        model = self.model(model_id)
        started = time.monotonic()
        try:
            model.load()
        except Exception as exc:
            raise _sdk_error(_("load {model}").format(model=model_id), exc) from None
        return model, time.monotonic() - started

    def unregister(self, model_id: str) -> None:
        """Unload (when loaded) and unregister one ``name:version``; its files stay."""
        with self._lock:
            model = self.catalog.get_model_variant(model_id)
            try:
                if model is not None and model.is_loaded:
                    model.unload()
                self.catalog.unregister_model(model_id)
            except Exception as exc:
                raise _sdk_error(_("unregister {model}").format(model=model_id), exc) from None


@dataclass(frozen=True)
class Usage:
    """Token counts of one reply, and why it stopped (stop, length, error, ...)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class ChatReply:
    text: str
    usage: Usage | None
    first_token_s: float | None
    total_s: float


Messages = str | Sequence[tuple[str, str]]


class FoundryChat:
    """Streaming chat with one registered model, each request standing alone."""

    def __init__(self, runtime: FoundryRuntime, model_id: str) -> None:
        from foundry_local_sdk import ChatSession

        self.model_id = model_id
        self.model, self.load_s = runtime.load(model_id)
        self._session = ChatSession(self.model)  # not set_streaming(True)'s value: typed as Session
        self._session.set_streaming(True)
        self.last_usage: Usage | None = None

    def stream(self, messages: Messages, max_output_tokens: int = 256,
               temperature: float | None = None, top_p: float | None = None,
               do_sample: bool | None = None, seed: int | None = None,
               cancel: threading.Event | None = None) -> Generator[str, None, None]:
        """Yield the reply's text pieces as they come; ``last_usage`` is set once it ends.
        ``messages``: one user message, or (role, text) pairs with roles system/user/assistant.
        Setting ``cancel`` or leaving the loop cancels the request."""
        from foundry_local_sdk import (
            MessageItem,
            MessageRole,
            Request,
            RequestOptions,
            SearchOptions,
            TextItem,
            TextItemType,
        )

        turns = [("user", messages)] if isinstance(messages, str) else list(messages)
        if not turns or any(role not in _ROLES for role, _ in turns):
            raise ValueError("messages must be a text or (role, text) pairs of system/user/assistant")
        self.last_usage = None
        request = Request()
        for role, text in turns:
            request.add_item(MessageItem(MessageRole(_ROLES[role]), text))
        request.set_options(RequestOptions(search=SearchOptions(
            max_output_tokens=max_output_tokens, temperature=temperature, top_p=top_p,
            do_sample=do_sample, seed=seed)))
        try:
            with request, self._session.process_streaming_request(request) as stream:
                for item in stream:
                    if cancel is not None and cancel.is_set():
                        return
                    if isinstance(item, TextItem) and item.type == TextItemType.DEFAULT and item.text:
                        yield item.text
                with stream.final_response as final:
                    usage = final.get_usage()
                    self.last_usage = Usage(usage.prompt_tokens, usage.completion_tokens,
                                            usage.total_tokens, final.finish_reason.name.lower())
        finally:
            if self._session.turn_count:
                self._session.undo_turns(self._session.turn_count)

    def reply(self, messages: Messages, **options: Any) -> ChatReply:
        """The whole reply with its usage counts and timings."""
        started = time.monotonic()
        first: float | None = None
        parts: list[str] = []
        for piece in self.stream(messages, **options):
            first = time.monotonic() - started if first is None else first
            parts.append(piece)
        return ChatReply("".join(parts), self.last_usage, first, time.monotonic() - started)

    def close(self, unload: bool = False) -> None:
        self._session.__exit__(None, None, None)  # the SDK's public way to release a session
        if unload and self.model.is_loaded:
            self.model.unload()

    def __enter__(self) -> FoundryChat:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
