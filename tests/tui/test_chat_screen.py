"""The Chat screen: a reply streamed from the model deployed to Foundry Local, or from the converted
folder through onnxruntime-genai when nothing is deployed; stopping a reply, empty messages,
clearing, the input's history and the system prompt."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.tui.helpers import STOP_LIMIT, assert_fits, text_of, wait_for
from tui.app import SlmopsApp
from tui.screens.chat import ChatScreen
from tui.widgets.chat_log import ChatLog, Reply
from wizard_steps.deployment.deploy import deploy, finish
from wizard_steps.prompt.generation import ModelConfig
from wizard_steps.prompt.templates import Conversation, get_preset
from wizard_steps.road.state import WizardState
from wizard_steps.runtime.engine import TextChunk

pytestmark = pytest.mark.slow  # the demo model converted to INT4 (once per run)

@pytest.fixture
def deployed_id(demo_int4: Path, tmp_home: Path) -> str:
    """The demo INT4 deployed into the test's own Foundry cache (under its SLMOPS_HOME)."""
    done = finish(deploy(demo_int4, "chat-test", get_preset("chatml").template,
                         ModelConfig(temperature=0.0)))
    return done.result.model_id


def chat_app(folder: Path | None, deployed: str | None = None) -> SlmopsApp:
    state = WizardState(converted_dir=str(folder) if folder else None, template_key="chatml",
                        deployed_id=deployed)
    return SlmopsApp(state, start="chat")


async def ready(pilot: Pilot) -> ChatScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    await wait_for(pilot, lambda: screen.chat is not None or screen.problem is not None,
                   "the model to load")
    assert screen.problem is None, screen.problem
    return screen


async def send(pilot: Pilot, text: str) -> None:
    pilot.app.screen.query_one("#chat-input", Input).focus()
    await pilot.press(*text, "enter")


def stats_of(reply: Reply) -> str:
    return text_of(reply.query_one(".reply-stats", Static))


async def replied(pilot: Pilot, count: int = 1) -> Reply:
    """Wait until the count-th reply has ended; return it."""
    screen = pilot.app.screen
    await wait_for(pilot, lambda: len(screen.query(Reply)) >= count and not screen.replying,
                   f"reply {count} to end")
    return list(screen.query(Reply))[count - 1]


async def test_a_question_streams_a_reply_from_the_deployed_model(demo_int4: Path,
                                                                  deployed_id: str) -> None:
    app = chat_app(demo_int4, deployed_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        header = text_of(screen.query_one("#chat-backend", Static))
        assert "Foundry Local" in header and deployed_id in header
        assert "greedy" in text_of(screen.query_one("#chat-settings", Static))
        log = screen.query_one(ChatLog)
        shown: list[tuple[str, bool]] = []  # each piece as drawn, and whether the reply still streamed
        real_append = log.append

        def append(reply: Reply, piece: str) -> None:
            shown.append((piece, reply.has_class("-streaming")))
            real_append(reply, piece)

        log.append = append  # type: ignore[method-assign]
        await send(pilot, "What is the capital of France?")
        reply = await replied(pilot)
        assert reply.text.strip()
        stats = stats_of(reply)
        assert "tokens" in stats and "tok/s" in stats and "TTFT" in stats
        # Streamed: the text arrived in pieces, each drawn while the reply was still going.
        assert "".join(piece for piece, _ in shown) == reply.text
        assert all(streaming for _, streaming in shown)
        if int(stats.split()[0]) > 3:
            assert len(shown) > 1, shown
        assert_fits(app)


async def test_without_a_deployment_the_converted_folder_answers(demo_int4: Path) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        assert "onnxruntime-genai" in text_of(screen.query_one("#chat-backend", Static))
        await send(pilot, "Say hello.")
        reply = await replied(pilot)
        assert reply.text.strip()
        stats = stats_of(reply)  # how it ended depends on the CPU's greedy words: any normal end
        assert int(stats.split()[0]) > 0
        assert any(end in stats for end in ("end of reply", "length limit", "stop string")), stats
        assert_fits(app)


def hold_after_first_words(backend, stop_pressed: Callable[[], bool]) -> None:
    """Let the real stream give its first words, then hold it until the user's stop has landed: the
    reply cannot end before the key, however fast the CPU (and the model cannot end it early)."""
    real = backend.stream_ids

    def held(ids, options, cancel=None, session=None):
        options = replace(options, min_new_tokens=options.max_new_tokens)  # no early end of reply
        for event in real(ids, options, cancel, session):
            yield event
            if isinstance(event, TextChunk):
                deadline = time.monotonic() + STOP_LIMIT
                while not stop_pressed() and time.monotonic() < deadline:
                    time.sleep(0.01)

    backend.stream_ids = held


async def test_escape_stops_a_long_reply(demo_int4: Path) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        assert screen.backend is not None
        hold_after_first_words(screen.backend, lambda: screen.stop.is_set())
        await send(pilot, "Write a long story about a dragon who learns to cook.")
        await wait_for(pilot, lambda: bool(screen.query(Reply)) and bool(screen.query_one(Reply).text),
                       "the reply's first words")
        assert screen.replying
        await pilot.pause()  # the footer redrawn with the stop key
        assert_fits(app)  # at 80 columns, while replying too (the stop key had pushed it 4 columns over)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.replying, "the reply to stop", timeout=STOP_LIMIT)
        reply = screen.query_one(Reply)
        assert "cancelled" in stats_of(reply)
        assert int(stats_of(reply).split()[0]) < screen.options.max_new_tokens
        assert reply.has_class("-cancelled")
        assert screen.chat is not None and len(screen.chat.turns) == 2  # the turn is kept


async def test_an_empty_message_is_not_sent(demo_int4: Path) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "   ")
        status = str(screen.query_one("#chat-status").render())
        assert "empty" in status and status.count(".") == 1
        assert not screen.query_one(ChatLog).children and not screen.replying
        assert screen.chat is not None and screen.chat.turns == []


async def test_ctrl_l_clears_the_conversation_but_keeps_the_input_history(demo_int4: Path) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await send(pilot, "Hi")
        await replied(pilot)
        assert screen.chat is not None and len(screen.chat.turns) == 2
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not screen.query_one(ChatLog).children and screen.chat.turns == []
        await pilot.press("up")
        assert screen.query_one("#chat-input", Input).value == "Hi"
        await pilot.press("down")
        assert screen.query_one("#chat-input", Input).value == ""


def chatml(system: str, turns: list[tuple[str, str]]) -> str:
    """The ChatML prompt written out by hand, ending where the assistant's reply starts."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n"
            + "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
            + "<|im_start|>assistant\n")


async def set_system(pilot: Pilot, text: str) -> None:
    field = pilot.app.screen.query_one("#chat-system", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def test_the_system_prompt_applies_from_the_next_message_and_is_kept(
        demo_int4: Path, tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        backend = screen.backend
        assert backend is not None
        received: list[list[int]] = []  # the token ids the model is really given
        real = backend.stream_ids
        monkeypatch.setattr(backend, "stream_ids", lambda ids, *rest: received.append(ids) or real(ids, *rest))
        await set_system(pilot, "You answer in one word.")
        assert app.state.system_prompt == "You answer in one word."
        await send(pilot, "Hi")
        await replied(pilot)
        assert received[0] == backend.encode(chatml("You answer in one word.", [("user", "Hi")]))
        await set_system(pilot, "You are a pirate.")
        await send(pilot, "Who are you?")
        await replied(pilot, 2)
        assert screen.chat is not None
        first_reply = screen.chat.turns[1][1]
        assert received[1] == backend.encode(chatml("You are a pirate.", [
            ("user", "Hi"), ("assistant", first_reply), ("user", "Who are you?")]))
        await pilot.press("ctrl+q")
        await pilot.pause()
    saved = WizardState.load()
    assert saved is not None and saved.system_prompt == "You are a pirate."


async def test_without_any_model_it_says_so_in_one_sentence(tmp_home: Path) -> None:
    app = chat_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_for(pilot, lambda: screen.problem is not None, "the screen to find no model")
        assert "no model to talk to" in text_of(screen.query_one("#chat-backend", Static))
        await send(pilot, "Hello?")
        assert not screen.query_one(ChatLog).children


async def test_dropped_turns_are_announced_before_the_reply(demo_int4: Path) -> None:
    app = chat_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        backend = screen.backend
        assert backend is not None and screen.chat is not None
        await send(pilot, "Hi")
        await replied(pilot, 1)
        # Whatever the first reply's length on this CPU: room for the next message alone, not for
        # the whole conversation.
        history = screen.chat.turns
        whole = backend.count_tokens(Conversation(screen.chat.system, (*history, ("user", "Hi again"))))
        alone = backend.count_tokens(Conversation(screen.chat.system, (("user", "Hi again"),)))
        assert alone < whole
        backend.context_length = screen.options.max_new_tokens + alone
        await send(pilot, "Hi again")
        await replied(pilot, 2)
        notices = screen.query(".chat-notice.-warning")
        assert len(notices) == 1 and "oldest messages were left out" in text_of(notices.first(Static))
        log = screen.query_one(ChatLog)
        assert log.children.index(notices.first()) == len(log.children) - 2  # just before the reply
