"""The precision screen: the four options for the demo model, FP16 refused on CPU with its reason,
the INT4 settings with a live size estimate, and Next storing the choice."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Select, Static, Switch
from textual.widgets._toast import Toast

from tui.app import SlmopsApp
from wizard_steps.state import WizardState


def text(app: SlmopsApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def loaded(app: SlmopsApp, pilot: Pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_four_options_are_listed_with_this_models_size(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.screen.query_one("#precision-table", DataTable)
        assert list(table.rows) == ["fp32", "fp16", "int8", "int4"]
        assert all(str(table.get_cell(key, "size")).endswith("MB") for key in table.rows)
        assert "134.5 M parameters" in text(app, "#precision-model")
        assert "on the demo model: 220 MB k_quant_mixed" in text(app, "#precision-measured")
        assert not app.screen.query_one("#next", Button).disabled


async def test_fp16_cannot_be_chosen_on_cpu_and_says_why(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await loaded(app, pilot)
        assert "FP16: Olive refuses FP16 on the CPU" in text(app, "#precision-unavailable")
        await pilot.press("up", "up", "enter")  # the cursor starts on INT4; FP16 is two rows up
        await pilot.pause(0.1)
        assert app.screen.query_one("#precision-table", DataTable).cursor_row == 1
        assert app.screen.choice.value == "int4"
        toasts = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("Olive refuses FP16 on the CPU" in toast for toast in toasts), toasts
        assert str(app.screen.query_one("#precision-table", DataTable).get_cell("fp16", "precision")
                   ).startswith("✗")


async def test_int4_settings_show_only_for_int4_and_block_size_changes_the_estimate(
        demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model), precision="int8"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        settings = app.screen.query_one("#int4-settings")
        assert not settings.display
        await pilot.press("down", "enter")  # from INT8 to INT4
        await pilot.pause()
        assert settings.display
        table = app.screen.query_one("#precision-table", DataTable)
        before, size_before = text(app, "#int4-estimate"), str(table.get_cell("int4", "size"))
        app.screen.query_one("#int4-block-size", Select).value = 128
        await pilot.pause()
        assert text(app, "#int4-estimate") != before
        assert str(table.get_cell("int4", "size")) != size_before


async def test_next_stores_the_choice_and_moves_to_the_template_step(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        app.screen.query_one("#int4-block-size", Select).value = 64
        app.screen.query_one("#int4-algorithm", Select).value = "rtn"
        app.screen.query_one("#int4-embeddings", Switch).value = True
        app.screen.query_one("#int4-symmetric", Switch).value = False
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        state = app.state
        assert (state.precision, state.int4_block_size, state.int4_algorithm) == ("int4", 64, "rtn")
        assert state.int4_quantize_embeddings and not state.int4_symmetric
        assert state.int4_accuracy_level == 4 and "precision" in state.completed
        assert state.step == "template" and app.screen.STEP == "template"


async def test_an_unreadable_model_is_one_sentence_and_blocks_next(tmp_path: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(tmp_path / "missing")), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert "does not exist" in text(app, "#precision-error")
        assert app.screen.query_one("#next", Button).disabled
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "precision"


async def test_nothing_is_wider_than_80_columns(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.screen.query_one("#precision-table", DataTable)
        assert table.virtual_size.width <= table.size.width  # no sideways scrolling
        for scroll in ("scroll_home", "scroll_end"):
            getattr(app.screen.query_one("#step-body"), scroll)(animate=False)
            await pilot.pause()
            for widget in app.screen.query("*"):
                assert widget.region.right <= 80, widget
