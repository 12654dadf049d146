"""The line-based chat REPL of ``slmops chat`` and the plain mode: streaming output, /reset,
/system TEXT, /quit; Ctrl+C stops a reply, a second Ctrl+C (or Ctrl+D) leaves."""

from __future__ import annotations

import sys
import threading

from tui import exit_codes
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.runtime.engine import Chat, EngineError, ReplyDone, ReplyOptions, TextChunk, TurnsDropped

HELP = N_("Commands: /reset (forget the conversation), /system TEXT (new system prompt), /quit")


def chat_repl(backend, stop: tuple[str, ...], name: str, system: str | None = None,
              max_new_tokens: int = 200) -> int:
    chat = Chat(backend, ReplyOptions(max_new_tokens=max_new_tokens, stop=tuple(stop)),
                system=system or "You are a helpful assistant.")
    if hasattr(sys.stdin, "reconfigure"):  # invalid UTF-8 from the terminal becomes U+FFFD, not a crash
        sys.stdin.reconfigure(errors="replace")
    print(_("Chatting with {name} through {backend}.").format(name=name, backend=backend.name) + " " + _(HELP))
    while True:
        try:
            line = input(_("you> "))
        except (EOFError, KeyboardInterrupt):
            print()
            return exit_codes.OK
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return exit_codes.OK
        if text == "/reset":
            chat.reset()
            print(_("(conversation cleared)"))
            continue
        if text.startswith("/system"):
            chat.system = text[len("/system"):].strip() or None
            print(_("(system prompt: {prompt})").format(prompt=chat.system or _("none")))
            continue
        if text.startswith("/"):
            print(_(HELP))
            continue
        answer(chat, text)


def answer(chat: Chat, text: str, out=None) -> ReplyDone | None:
    """Stream one reply to ``out``; Ctrl+C stops it within a token and keeps what came."""
    out = out or sys.stdout
    cancel = threading.Event()
    done = None
    out.write(_("model> "))
    out.flush()
    try:
        for event in chat.send(text, cancel):
            if isinstance(event, TextChunk):
                out.write(event.text)
                out.flush()
            elif isinstance(event, TurnsDropped):
                out.write(f"\n({event.message})\n" + _("model> "))
            elif isinstance(event, ReplyDone):
                done = event
    except KeyboardInterrupt:
        cancel.set()
        out.write(" " + _("[stopped]"))
    except EngineError as exc:
        out.write(f"\n(!) {exc}")
    if done is not None:
        s = done.stats
        out.write("\n  " + _("[{tokens} tokens, {speed} tok/s, TTFT {ttft} ms, {finish}]").format(
            tokens=s.generated_tokens, speed=number(s.tokens_per_s), ttft=number(s.ttft_s * 1000),
            finish=s.finish_reason))
    out.write("\n")
    out.flush()
    return done
