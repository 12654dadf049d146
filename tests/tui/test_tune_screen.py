"""Tune for this machine, from the benchmark screen: live progress, before/after, undo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Label

from tui.app import SlmopsApp
from wizard_steps import tune
from wizard_steps.state import WizardState

pytestmark = pytest.mark.slow


async def test_tuning_from_the_benchmark_screen_shows_every_setting(demo_int4: Path,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "int4"
    shutil.copytree(demo_int4, folder)
    original = (folder / "genai_config.json").read_bytes()
    app = SlmopsApp(WizardState(converted_dir=str(folder), template_key="chatml"),
                    start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.screen.action_tune()
        await pilot.pause()
        assert type(app.screen).__name__ == "TuneScreen"
        for _ in range(600):
            await pilot.pause(0.2)
            if "Done" in str(app.screen.query_one("#tune-stage", Label).render()):
                break
        table = app.screen.query_one("#tune-table", DataTable)
        assert table.row_count == len(tune.candidates())
        result = str(app.screen.query_one("#tune-result", Label).render())
        assert result.startswith(("Chose", "Kept"))
        if result.startswith("Chose"):
            assert (folder / "genai_config.json").read_bytes() != original
            await pilot.click("#tune-undo")
            await pilot.pause()
            assert (folder / "genai_config.json").read_bytes() == original
        assert app.screen.query_one("#tune-undo", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.STEP == "benchmark"
