"""The line-based chat REPL of ``slmops chat`` and the plain mode: streaming output, /reset,
/system TEXT, /quit; Ctrl+C stops a reply, a second Ctrl+C (or Ctrl+D) leaves."""

from __future__ import annotations

import sys
import threading

from tui import exit_codes
from wizard_steps.engine import Chat, EngineError, ReplyDone, ReplyOptions, TextChunk, TurnsDropped

HELP = "Commands: /reset (forget the conversation), /system TEXT (new system prompt), /quit"


def chat_repl(backend, stop: tuple[str, ...], name: str, system: str | None = None,
              max_new_tokens: int = 200) -> int:
    chat = Chat(backend, ReplyOptions(max_new_tokens=max_new_tokens, stop=tuple(stop)),
                system=system or "You are a helpful assistant.")
    print(f"Chatting with {name} through {backend.name}. {HELP}")
    while True:
        try:
            line = input("you> ")
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
            print("(conversation cleared)")
            continue
        if text.startswith("/system"):
            chat.system = text[len("/system"):].strip() or None
            print(f"(system prompt: {chat.system or 'none'})")
            continue
        if text.startswith("/"):
            print(HELP)
            continue
        answer(chat, text)


def answer(chat: Chat, text: str, out=None) -> ReplyDone | None:
    """Stream one reply to ``out``; Ctrl+C stops it within a token and keeps what came."""
    out = out or sys.stdout
    cancel = threading.Event()
    done = None
    out.write("model> ")
    out.flush()
    try:
        for event in chat.send(text, cancel):
            if isinstance(event, TextChunk):
                out.write(event.text)
                out.flush()
            elif isinstance(event, TurnsDropped):
                out.write(f"\n({event.message})\nmodel> ")
            elif isinstance(event, ReplyDone):
                done = event
    except KeyboardInterrupt:
        cancel.set()
        out.write(" [stopped]")
    except EngineError as exc:
        out.write(f"\n(!) {exc}")
    if done is not None:
        s = done.stats
        out.write(f"\n  [{s.generated_tokens} tokens, {s.tokens_per_s:.0f} tok/s, "
                  f"TTFT {s.ttft_s * 1000:.0f} ms, {s.finish_reason}]")
    out.write("\n")
    out.flush()
    return done
