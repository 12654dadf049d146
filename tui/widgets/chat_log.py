"""The conversation of the Chat step: the user's messages, replies as they stream (Markdown once
done) with their figures, and notices; it follows the bottom unless the reader has scrolled up."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from wizard_steps.core.i18n import N_, _, number
from wizard_steps.runtime.engine import ReplyStats

FINISH = {"stop": N_("end of reply"), "length": N_("length limit"), "stop_string": N_("stop string"),
          "cancelled": N_("cancelled")}


def describe_stats(stats: ReplyStats) -> str:
    """One line of figures under a reply."""
    return _("{tokens} tokens · {speed} tok/s · TTFT {ttft} s · prompt {prompt} · {finish}").format(
        tokens=stats.generated_tokens, speed=number(stats.tokens_per_s, 1), ttft=number(stats.ttft_s, 2),
        prompt=stats.prompt_tokens, finish=_(FINISH.get(stats.finish_reason, stats.finish_reason)))


class Reply(Vertical):
    """One reply: plain text while it streams, Markdown when it is done, its figures below."""

    def __init__(self) -> None:
        super().__init__(classes="chat-reply -streaming")
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static("…", classes="reply-text")
        yield Label("", classes="reply-stats")

    def append(self, piece: str) -> None:
        self.text += piece
        self.query_one(".reply-text", Static).update(Text(self.text))

    def finish(self, stats: ReplyStats) -> None:
        from textual.widgets import Markdown  # markdown-it is slow to import: only once needed

        self.remove_class("-streaming")
        self.set_class(stats.finish_reason == "cancelled", "-cancelled")
        streamed = self.query_one(".reply-text", Static)
        if self.text.strip():
            self.mount(Markdown(self.text, classes="reply-text"), before=streamed)
            streamed.remove()
        else:
            streamed.update(Text(_("(no text)"), style="dim italic"))
        self.query_one(".reply-stats", Label).update(describe_stats(stats))

    def fail(self, reason: str) -> None:
        self.remove_class("-streaming")
        self.add_class("-failed")
        if not self.text:
            self.query_one(".reply-text", Static).update(Text(_("(no reply)"), style="dim italic"))
        self.query_one(".reply-stats", Label).update(reason)


class ChatLog(VerticalScroll):
    """The messages, oldest first."""

    @dataclass
    class ReplyFinished(Message):
        """A reply has ended (done, cancelled or failed); ``stats`` is None when it failed."""

        reply: Reply
        stats: ReplyStats | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = False

    def on_mount(self) -> None:
        self.anchor()  # Textual keeps an anchored view at the bottom until the reader scrolls up

    def add_user(self, text: str) -> None:
        self.mount(Static(Text(text), classes="chat-user"))
        self.anchor()  # the user just sent it: follow the conversation again

    def add_notice(self, text: str | Text, kind: str = "info", before: Widget | None = None) -> None:
        self.mount(Static(text, classes=f"chat-notice -{kind}"), before=before)

    def start_reply(self) -> Reply:
        reply = Reply()
        self.mount(reply)
        return reply

    def append(self, reply: Reply, piece: str) -> None:
        reply.append(piece)

    def finish(self, reply: Reply, stats: ReplyStats) -> None:
        reply.finish(stats)
        self.post_message(self.ReplyFinished(reply, stats))

    def fail(self, reply: Reply, reason: str) -> None:
        reply.fail(reason)
        self.post_message(self.ReplyFinished(reply, None))

    def clear(self) -> None:
        self.remove_children()
        self.anchor()


class PromptInput(Input):
    """The message line, with the messages sent before on up and down."""

    BINDINGS = [
        Binding("up", "history(-1)", N_("Previous message"), show=False),
        Binding("down", "history(1)", N_("Next message"), show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history: list[str] = []
        self.position = 0
        self.draft = ""

    def remember(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
        self.position = len(self.history)
        self.draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self.position == len(self.history):
            self.draft = self.value
        self.position = max(0, min(len(self.history), self.position + step))
        self.value = self.history[self.position] if self.position < len(self.history) else self.draft
        self.cursor_position = len(self.value)
