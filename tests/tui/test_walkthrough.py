"""The whole wizard on the demo model, for real, driven by keys only, as a workshop's second run
meets it: prerequisites, the demo model (prepared before), INT4, detected ChatML, the conversion
made earlier with the same settings found and gone on with, deployment into a temporary cache, a
short benchmark, one chat reply with text in the conversation. (The convert step's own run is
tested on the tiny model in test_convert_screen; the demo's INT4 is the session's, converted by the
same code.)"""

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


async def test_the_whole_wizard_with_keys_only(demo_model: Path, demo_int4: Path, tmp_home: Path) -> None:
    from tui.widgets.chat_log import ChatLog
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Precision
    from wizard_steps.core import paths
    from wizard_steps.model.model_source import inspect_model

    # what a first run left in this home: the demo prepared, and its INT4 where the wizard puts it
    paths.demo_model_dir().parent.mkdir(parents=True, exist_ok=True)
    paths.demo_model_dir().symlink_to(demo_model.resolve(), target_is_directory=True)
    earlier = convert.default_output_dir(inspect_model(demo_model), Precision.INT4)
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.symlink_to(demo_int4, target_is_directory=True)

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
        await until(pilot, lambda: app.screen.STEP == "convert" and next_enabled(app))
        assert app.state.template_key == "chatml"
        found = app.screen.earlier  # the same conversion, found: no second one
        assert found is not None and found.resolve() == earlier.resolve()
        await pilot.press("ctrl+n")
        assert app.state.converted_dir == str(found)
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
