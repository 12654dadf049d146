"""Tune for this machine, from the benchmark screen: live progress, before/after, undo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Label

from tests.tui.helpers import STOP_LIMIT, click, text_of, wait_for
from tui.app import SlmopsApp
from tui.widgets.run_panel import RunPanel
from wizard_steps.core.events import Failed
from wizard_steps.measurement import tune
from wizard_steps.road.state import WizardState

pytestmark = pytest.mark.slow


async def test_tuning_from_the_benchmark_screen_shows_every_setting(tiny_converted, tmp_path: Path) -> None:
    # the session's tiny INT4 (never tuned: the file as Olive wrote it), which measures in seconds
    folder = tmp_path / "int4"
    shutil.copytree(tiny_converted("int4-rtn"), folder)
    original = (folder / "genai_config.json").read_bytes()
    app = SlmopsApp(WizardState(converted_dir=str(folder), template_key="chatml"),
                    start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await click(pilot, "#bench-tune")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TuneScreen", "the tune dialog")
        panel = app.screen.query_one(RunPanel)
        assert panel.running and app.screen.query_one("#tune-undo", Button).disabled
        await wait_for(pilot, lambda: not panel.running, "tuning to end")
        assert "Done" in text_of(app.screen, "#tune-stage")
        table = app.screen.query_one("#tune-table", DataTable)
        assert table.row_count == len(tune.candidates())
        result = str(app.screen.query_one("#tune-result", Label).render())
        # Which setting wins is this CPU's to say; what the dialog says must match the file.
        assert result.startswith(("Chose", "Kept"))
        changed = (folder / "genai_config.json").read_bytes() != original
        assert changed == result.startswith("Chose"), result
        assert app.screen.query_one("#tune-undo", Button).disabled == (not changed)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.STEP == "benchmark"


async def open_and_stop(pilot: Pilot) -> RunPanel:
    """Open the tune dialog from the benchmark screen (it starts measuring) and press Stop."""
    app = pilot.app
    await pilot.pause()
    await click(pilot, "#bench-tune")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "TuneScreen", "the tune dialog")
    panel = app.screen.query_one(RunPanel)
    await click(pilot, "#tune-cancel")
    await wait_for(pilot, lambda: not panel.running, "tuning to stop", timeout=STOP_LIMIT)
    return panel


async def test_stop_ends_tuning_and_leaves_the_file_untouched(demo_int4: Path, tmp_path: Path) -> None:
    folder = tmp_path / "int4"
    shutil.copytree(demo_int4, folder)
    tune.undo(folder)  # the conversion tuned it already: start from the file Olive wrote
    original = (folder / "genai_config.json").read_bytes()
    app = SlmopsApp(WizardState(converted_dir=str(folder), template_key="chatml"), start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await open_and_stop(pilot)
        assert isinstance(panel.outcome, Failed) and panel.outcome.cancelled
        assert app.screen.query_one("#tune-table", DataTable).row_count == 0  # no result came
        assert (folder / "genai_config.json").read_bytes() == original
        assert not (folder / tune.BACKUP_NAME).exists()
        await click(pilot, "#tune-start")  # measure again
        assert panel.running
        await click(pilot, "#tune-close")
        await wait_for(pilot, lambda: app.screen.STEP == "benchmark", "the dialog to close")
        # The closed dialog's run stops too (its thread returns), and writes nothing afterwards.
        await wait_for(pilot, panel.finished.is_set, "the closed dialog's run to stop", timeout=STOP_LIMIT)
        assert (folder / "genai_config.json").read_bytes() == original
        assert not (folder / tune.BACKUP_NAME).exists()


async def test_undo_brings_back_the_file_olive_wrote(demo_int4: Path, tmp_path: Path) -> None:
    folder = tmp_path / "int4"
    shutil.copytree(demo_int4, folder)
    tune.undo(folder)
    original = (folder / "genai_config.json").read_bytes()
    tune.apply(folder, tune.Candidate(1))  # as an earlier tuning would have left it
    tune.record(folder, tune.Candidate(1), 1.2)
    assert (folder / "genai_config.json").read_bytes() != original
    app = SlmopsApp(WizardState(converted_dir=str(folder), template_key="chatml"), start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await open_and_stop(pilot)
        assert isinstance(panel.outcome, Failed) and panel.outcome.cancelled
        undo = app.screen.query_one("#tune-undo", Button)
        assert not undo.disabled
        await click(pilot, "#tune-undo")
        await wait_for(pilot, lambda: undo.disabled, "the undo button to turn off")
        assert (folder / "genai_config.json").read_bytes() == original
        assert tune.recorded(folder) is None
