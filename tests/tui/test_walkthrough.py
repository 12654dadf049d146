"""The whole wizard on the demo model, for real, driven by keys only: prerequisites, demo model,
INT4, detected ChatML, conversion, deployment into a temporary cache, a short benchmark, one
chat reply with text in the conversation."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button

from tests.tui.helpers import HANG_LIMIT
from tui.app import SlmopsApp
from wizard_steps.road.state import WizardState

pytestmark = pytest.mark.slow


async def until(pilot, condition, timeout: float = HANG_LIMIT) -> None:
    """Wait on the app's state; the limit only guards against a hang (a slow, busy CPU converts
    the demo in minutes)."""
    waited = 0.0
    while not condition():
        await pilot.pause(0.25)
        waited += 0.25
        assert waited < timeout, f"timed out on {pilot.app.screen.STEP}"


def next_enabled(app) -> bool:
    return not app.screen.query_one("#next", Button).disabled


async def test_the_whole_wizard_with_keys_only(demo_model: Path, tmp_home: Path) -> None:
    from tui.widgets.chat_log import ChatLog

    # a short benchmark plan, as a user would type it on the benchmark screen
    app = SlmopsApp(WizardState(bench_lengths=[16], bench_runs=1, bench_new_tokens=8))
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("enter")  # Welcome: "Use the demo model" has the focus
        await until(pilot, lambda: app.screen.STEP == "prereqs" and next_enabled(app))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "model" and next_enabled(app))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "precision" and next_enabled(app))
        assert app.state.model_dir and Path(app.state.model_dir).name == demo_model.name
        await pilot.press("ctrl+n")  # INT4, the recommended choice, is preselected
        await until(pilot, lambda: app.screen.STEP == "template" and next_enabled(app))
        assert app.state.precision == "int4"
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "convert")
        assert app.state.template_key == "chatml"
        app.screen.set_focus(None)
        await pilot.press("s")
        await until(pilot, lambda: next_enabled(app))
        assert (Path(app.state.converted_dir) / "genai_config.json").is_file()
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "deploy")
        app.screen.set_focus(None)
        await pilot.press("d")
        await until(pilot, lambda: next_enabled(app))
        assert app.state.deployed_id
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "benchmark")
        app.screen.set_focus(None)
        await pilot.press("s")
        await until(pilot, lambda: app.screen.query_one("#bench-results").display)
        await pilot.press("escape")  # stop the quality checklist that follows; the numbers stay
        await until(pilot, lambda: not app.screen.is_busy())
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "chat")
        await until(pilot, lambda: not app.screen.is_busy())
        await pilot.press(*"What is the capital of France?", "enter")
        log = app.screen.query_one(ChatLog)
        await until(pilot, lambda: not app.screen.is_busy() and replied(log))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.screen.STEP == "summary")


def replied(log) -> bool:
    """A reply with text has come (its words depend on the CPU's int4 kernels: not asserted)."""
    from tui.widgets.chat_log import Reply

    return any(reply.text.strip() for reply in log.query(Reply))
