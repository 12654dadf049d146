"""The app as a whole: fast, light startup, navigation, quitting, and the first screens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.widgets import Button, DataTable, Input, Label, Static

from tests.tui.helpers import click, wait_for, wait_idle
from tui.app import SlmopsApp
from wizard_steps.core.i18n import _
from wizard_steps.road import prereqs
from wizard_steps.road.state import WizardState

HEAVY = ("torch", "transformers", "olive", "onnxruntime_genai", "foundry_local_sdk", "onnx")


def test_app_starts_without_heavy_modules() -> None:
    code = (
        "import asyncio, sys\n"
        "from tui.app import SlmopsApp\n"
        "from wizard_steps.road.state import WizardState\n"
        "async def main():\n"
        "    app = SlmopsApp(WizardState())\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.press('enter')\n"
        "        await app.workers.wait_for_complete()\n"
        "        await pilot.pause()\n"
        "        assert app.screen.STEP == 'prereqs', app.screen\n"
        f"    print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


async def test_welcome_offers_the_demo_and_own_model() -> None:
    app = SlmopsApp(WizardState())
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.screen.query_one("#start-demo", Button)
        await click(pilot, "#start-own")
        await pilot.pause()
        assert app.screen.STEP == "prereqs"
        assert app.state.use_demo is False and "welcome" in app.state.completed


async def test_prereqs_show_every_check_and_back_returns(tmp_home: Path) -> None:
    app = SlmopsApp(WizardState(), start="prereqs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: getattr(screen, "checks", None) is not None, "the checks")
        table = screen.query_one("#checks-table", DataTable)
        names = [check.name for check in prereqs.run_all()]
        assert [key.value for key in table.rows] == names  # one row per check, in order
        assert [str(table.get_row_at(row)[1]) for row in range(table.row_count)] == [_(n) for n in names]
        assert not screen.query_one("#next", Button).disabled  # nothing fails here
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.screen.STEP == "welcome"


async def test_model_path_is_validated_as_you_type(tmp_path: Path) -> None:
    app = SlmopsApp(WizardState(), start="model")
    async with app.run_test(size=(80, 24)) as pilot:
        await click(pilot, "#model-path")
        await pilot.press(*str(tmp_path / "missing"))
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "does not exist" in str(app.screen.query_one("#model-error", Label).render())
        assert app.screen.query_one("#next", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "model"


async def test_demo_model_is_accepted_with_its_facts(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(use_demo=True), start="model")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not app.screen.query_one("#next", Button).disabled,
                       "Next to accept the demo model")
        await wait_idle(pilot)
        info = str(app.screen.query_one("#model-info", Static).render())
        assert "LlamaForCausalLM" in info and "134.5 M parameters" in info
        assert app.screen.query_one("#model-path", Input).value == str(demo_model)


async def test_ctrl_q_quits_and_saves_the_state(tmp_home: Path) -> None:
    app = SlmopsApp(WizardState(), start="prereqs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert WizardState.load() is not None and WizardState.load().step == "prereqs"


async def test_help_opens_and_closes() -> None:
    app = SlmopsApp(WizardState())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.STEP == "welcome"


async def test_resume_is_offered_after_a_saved_run(tmp_home: Path) -> None:
    WizardState(step="precision", completed=["welcome", "prereqs", "model"]).save()
    app = SlmopsApp(WizardState())
    async with app.run_test(size=(80, 24)) as pilot:
        button = app.screen.query_one("#resume", Button)
        assert "Precision" in str(button.label)
        await click(pilot, "#resume")
        await pilot.pause()
        assert app.state.step == "precision"


async def test_model_path_completes_folder_names(tmp_path: Path) -> None:
    (tmp_path / "my-finetune").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    app = SlmopsApp(WizardState(), start="model")
    async with app.run_test(size=(80, 24)) as pilot:
        await click(pilot, "#model-path")
        await pilot.press(*f"{tmp_path}/my")
        field = app.screen.query_one("#model-path", Input)
        await wait_for(pilot, lambda: field._suggestion == f"{tmp_path}/my-finetune",  # drawn dimmed
                       lambda: f"the suggestion my-finetune (shown: {field._suggestion!r})")
        await pilot.press("right")  # accepts the suggestion
        await pilot.pause()
        assert app.screen.query_one("#model-path", Input).value == f"{tmp_path}/my-finetune"


def test_one_table_names_every_step_of_the_state_with_its_screen() -> None:
    from tui.steps import STEP_TABLE
    from wizard_steps.road.state import STEPS

    assert tuple(step.key for step in STEP_TABLE) == STEPS
    for step in STEP_TABLE:
        assert step.screen_class().STEP == step.key
