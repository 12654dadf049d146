"""Chat: talk to the deployed model through Foundry Local (or, when nothing is deployed, to the
converted folder through onnxruntime-genai), replies streaming with their figures, stoppable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from tui.screens.base import StepScreen
from tui.widgets.chat_log import ChatLog, PromptInput, Reply
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.prompt.templates import PromptTemplate
from wizard_steps.road import models
from wizard_steps.road.models import ModelTarget
from wizard_steps.road.state import state_model_config, state_template
from wizard_steps.runtime.engine import (
    Backend,
    Chat,
    ReplyDone,
    ReplyEvent,
    ReplyOptions,
    TextChunk,
    TurnsDropped,
)

MAX_NEW_TOKENS = 200  # enough for a short answer; the small demo model rambles past it


def target_label(target: ModelTarget) -> str:
    """Which runtime answers, and which model."""
    if target.deployed:
        return "Foundry Local · " + _("{name} (deployed)").format(name=target.name)
    return "onnxruntime-genai · " + _("{name} (not deployed)").format(name=target.folder.name)


class ChatScreen(StepScreen):
    STEP = "chat"
    HELP = N_("Talk to the model: the deployed one through Foundry Local in this process, or, when "
            "nothing is deployed, the converted folder through onnxruntime-genai. Replies are "
            "greedy (the same question gives the same answer) and stop at the preset's stop "
            "strings or after a few hundred tokens. Under each reply: tokens generated, speed "
            "after the first token, time to the first token, prompt tokens and why it ended.\n\n"
            "The system prompt applies from the next message. When the conversation outgrows the "
            "model's context the oldest messages are left out (a notice says so).\n\n"
            "| key | does |\n| --- | --- |\n| enter | send |\n| ↑ ↓ | earlier messages |\n"
            "| esc | stop the reply |\n| ctrl+l | clear the conversation |")
    BINDINGS = [
        Binding("escape", "stop_reply", N_("Stop")),
        Binding("ctrl+l", "clear", N_("Clear"), priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.target: ModelTarget | None = None
        self.backend: Backend | None = None
        self.chat: Chat | None = None
        self.options = ReplyOptions(max_new_tokens=MAX_NEW_TOKENS)
        self.problem: str | None = None  # why there is nothing to talk to
        self.replying = False
        self.clear_when_done = False
        self.stop = threading.Event()
        self._backend_lock = threading.Lock()

    def compose_body(self) -> ComposeResult:
        yield Static("", id="chat-backend")
        yield Static("", id="chat-settings", classes="hint")
        with Horizontal(id="chat-system-row"):
            yield Label(_("System"), id="chat-system-label")
            yield Input(self.state.system_prompt, id="chat-system", compact=True,
                        placeholder=_("no system prompt"))
        yield ChatLog(id="chat-log")
        yield Label("", id="chat-status")
        yield PromptInput(id="chat-input", placeholder=_("Your message · enter sends · ↑↓ earlier ones"))

    def on_mount(self) -> None:
        super().on_mount()
        try:
            template, stops = state_template(self.state)
            config = state_model_config(self.state)
        except WizardError as exc:
            self.show_problem(str(exc))
        else:
            self.options = replace(ReplyOptions.from_model_config(config, MAX_NEW_TOKENS, stops),
                                   temperature=0.0)
            self.show_header(_("loading…"))
            self.load(template)
        self.show_settings()
        self.query_one("#chat-input").focus()

    def on_unmount(self) -> None:
        super().on_unmount()
        self.stop.set()
        if not self.replying:
            self.release_backend()

    def before_next(self) -> bool:
        self.state.system_prompt = self.query_one("#chat-system", Input).value.strip()
        return True

    # --- the backend --------------------------------------------------------------------------

    def show_header(self, status: str) -> None:
        header = Text(target_label(self.target) if self.target else _("The model"), style="bold cyan")
        header.append(f" · {status}")
        if self.target and self.target.note:
            header.append(f"\n{self.target.note}", style="yellow")
        self.query_one("#chat-backend", Static).update(header)

    def show_settings(self) -> None:
        options = self.options
        mode = _("greedy") if options.temperature == 0 else \
            _("temperature {temperature} · top_p {top_p}").format(
                temperature=number(options.temperature, None), top_p=number(options.top_p, None))
        stops = " ".join(options.stop) or _("none")
        self.query_one("#chat-settings", Static).update(
            _("{mode} · ≤{tokens} new tokens · repetition ×{penalty} · stops {stops}").format(
                mode=mode, tokens=options.max_new_tokens, stops=stops,
                penalty=number(options.repetition_penalty, None)))

    def show_problem(self, problem: str) -> None:
        self.problem = problem
        header = Text(_("Nothing to talk to: "), style="bold red")
        header.append(problem)
        self.query_one("#chat-backend", Static).update(header)
        self.set_status(problem, "error")

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, template: PromptTemplate) -> None:
        try:
            target = models.for_wizard(self.state.deployed_id, self.state.converted_dir)
            self.app.call_from_thread(self.show_target, target)
            started = time.monotonic()
            backend = models.open_backend(target, template)
        except WizardError as exc:
            self.app.call_from_thread(self.show_problem, str(exc))
            return
        if self.cancel.is_set():  # the screen went away while the model loaded
            backend.close()
            return
        try:
            self.app.call_from_thread(self.backend_ready, backend, time.monotonic() - started)
        except RuntimeError:  # the app has gone
            backend.close()

    def show_target(self, target: ModelTarget) -> None:
        self.target = target
        self.show_header(_("loading…"))
        self.set_status(_("Loading the model…"))

    def backend_ready(self, backend: Backend, seconds: float) -> None:
        self.backend = backend
        self.chat = Chat(backend, self.options)
        self.show_header(_("loaded in {seconds} s · context {context}").format(
            seconds=number(seconds, 1), context=backend.context_length))
        self.show_settings()
        self.set_status("")

    def release_backend(self) -> None:
        """Close the backend once; the reply worker calls this when the screen went away mid-reply."""
        with self._backend_lock:
            backend, self.backend, self.chat = self.backend, None, None
        if backend is not None:
            backend.close()

    # --- sending and replies ------------------------------------------------------------------

    def set_status(self, text: str, kind: str = "info") -> None:
        status = self.query_one("#chat-status", Label)
        status.update(text)
        status.set_classes(f"-{kind}")

    @on(Input.Changed, "#chat-system")
    def system_changed(self, event: Input.Changed) -> None:
        self.state.system_prompt = event.value.strip()

    @on(Input.Submitted, "#chat-system")
    def system_submitted(self) -> None:
        self.query_one("#chat-input").focus()

    @on(Input.Submitted, "#chat-input")
    def send(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            self.set_status(_("Type a message first; an empty one is not sent."), "warning")
            return
        if self.chat is None:
            self.set_status(_("There is no model to talk to: {problem}").format(problem=self.problem)
                            if self.problem else _("The model is still loading; send again in a moment."),
                            "warning")
            return
        if self.replying:
            self.set_status(_("Wait for the reply, or press esc to stop it."), "warning")
            return
        prompt = self.query_one("#chat-input", PromptInput)
        prompt.remember(text)
        prompt.value = ""
        self.chat.system = self.state.system_prompt or None
        log = self.query_one("#chat-log", ChatLog)
        log.add_user(text)
        reply = log.start_reply()
        self.replying = True
        self.stop = threading.Event()
        self.refresh_bindings()
        self.set_status(_("Replying… esc stops it."))
        self.stream_reply(self.chat, text, self.stop, reply)

    @work(thread=True, exclusive=True, group="reply", exit_on_error=False)
    def stream_reply(self, chat: Chat, text: str, stop: threading.Event, reply: Reply) -> None:
        def show(handler: Callable[..., None], *args: object) -> None:
            if self.cancel.is_set():
                stop.set()
                return
            try:
                self.app.call_from_thread(handler, *args)
            except RuntimeError:  # the app has gone while replying
                stop.set()

        try:
            for event in chat.send(text, cancel=stop):
                show(self.show_reply_event, reply, event)
        except WizardError as exc:
            show(self.reply_failed, reply, exc)
        finally:
            if self.cancel.is_set():
                self.release_backend()

    def show_reply_event(self, reply: Reply, event: ReplyEvent) -> None:
        if self.cancel.is_set():
            return
        log = self.query_one("#chat-log", ChatLog)
        if isinstance(event, TextChunk):
            log.append(reply, event.text)
        elif isinstance(event, TurnsDropped):
            log.add_notice(event.message, "warning", before=reply)
        elif isinstance(event, ReplyDone):
            log.finish(reply, event.stats)

    def reply_failed(self, reply: Reply, exc: WizardError) -> None:
        if not self.cancel.is_set():
            self.query_one("#chat-log", ChatLog).fail(reply, exc.message)
            self.set_status(exc.hint or exc.message, "error")

    @on(ChatLog.ReplyFinished)
    def reply_finished(self, event: ChatLog.ReplyFinished) -> None:
        self.replying = False
        self.refresh_bindings()
        if event.stats is not None:
            self.set_status(_("Stopped.") if event.stats.finish_reason == "cancelled" else "")
        if self.clear_when_done:
            self.clear_when_done = False
            self.action_clear()

    @on(Worker.StateChanged)
    def worker_ended(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        reason = _("Unexpected error: {error}").format(
            error=f"{type(event.worker.error).__name__}: {event.worker.error}")
        reason = reason.splitlines()[0]
        if event.worker.group == "load":
            self.show_problem(reason)
        elif event.worker.group == "reply" and self.replying:
            replies = self.query(Reply)
            if replies:
                self.query_one("#chat-log", ChatLog).fail(replies.last(), reason)
            self.set_status(reason, "error")

    # --- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_reply":
            return self.replying
        return super().check_action(action, parameters)

    def action_stop_reply(self) -> None:
        if self.replying and not self.stop.is_set():
            self.stop.set()
            self.set_status(_("Stopping…"))

    def action_clear(self) -> None:
        if self.replying:  # the reply ends first, then the conversation is cleared
            self.clear_when_done = True
            self.action_stop_reply()
            return
        if self.chat is not None:
            self.chat.reset()
        self.query_one("#chat-log", ChatLog).clear()
        self.set_status(_("Cleared; the next message starts a new conversation."))
        self.query_one("#chat-input").focus()
