"""The precision screen: the four options for the demo model, FP16 refused on CPU with its reason,
the INT4 settings with a live size estimate, and Next storing the choice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Collapsible, DataTable, Select, Static, Switch
from textual.widgets._toast import Toast

from tests.tui.helpers import STOP_LIMIT, assert_fits, text_of, wait_for
from tui.app import SlmopsApp
from tui.screens.precision import CompareSettings, PrecisionScreen
from wizard_steps.conversion.precision import Precision
from wizard_steps.core.checks import DOMAIN, QualityCheck
from wizard_steps.model.model_source import inspect_model
from wizard_steps.road.state import WizardState
from wizard_steps.verdict import compare
from wizard_steps.verdict.compare_measure import Measurement
from wizard_steps.verdict.domain import demo_queries
from wizard_steps.verdict.remedy import remedy_for


def text(app: SlmopsApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def loaded(app: SlmopsApp, pilot: Pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def opened(app: SlmopsApp, pilot: Pilot) -> None:
    """The INT4 settings and the details, opened as a user opens them (they start folded)."""
    for box in app.screen.query(Collapsible):
        box.collapsed = False
    await pilot.pause()


async def test_the_four_options_are_listed_with_this_models_size(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.screen.query_one("#precision-table", DataTable)
        assert list(table.rows) == ["fp32", "fp16", "int8", "int4"]
        assert all(str(table.get_cell(key, "size")).endswith("MB") for key in table.rows)
        assert "134.5 M parameters" in text(app, "#precision-model")
        measured = " ".join(text(app, "#precision-measured").split())
        assert "on the evaluation text, measured on an AMD EPYC with AVX2 only (not here)" in measured
        assert "150 MB QuaRot + GPTQ (auto, a fifth at 8 bits)" in measured
        stars = " ".join(str(table.get_cell(key, "precision")) for key in table.rows)
        assert "★" not in stars  # nothing measured here yet
        assert not app.screen.query_one("#next", Button).disabled


async def test_fp16_cannot_be_chosen_on_cpu_and_says_why(demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await loaded(app, pilot)
        assert "FP16: Olive refuses FP16 on the CPU" in text(app, "#precision-unavailable")
        await pilot.press("up", "up", "enter")  # the cursor starts on INT4; FP16 is two rows up

        def toasts() -> list[str]:
            return [str(toast.render()) for toast in app.screen.query(Toast)]

        await wait_for(pilot, lambda: any("Olive refuses FP16 on the CPU" in t for t in toasts()),
                       lambda: f"the toast saying why (shown: {toasts()})")
        assert app.screen.query_one("#precision-table", DataTable).cursor_row == 1
        assert app.screen.choice.value == "int4"
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
        app.screen.query_one("#int4-algorithm", Select).value = "k_quant_mixed"  # frees the block size
        await pilot.pause()
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
        app.screen.query_one("#int4-algorithm", Select).value = "rtn"  # a named algorithm frees the block size
        await pilot.pause()
        app.screen.query_one("#int4-block-size", Select).value = 64
        app.screen.query_one("#int4-embeddings", Switch).value = True
        app.screen.query_one("#int4-symmetric", Switch).value = False
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        state = app.state
        assert (state.precision, state.int4.block_size, state.int4.algorithm) == ("int4", 64, "rtn")
        assert state.int4.quantize_embeddings and not state.int4.symmetric
        assert state.int4.accuracy_level == 4 and "precision" in state.completed
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


# --- estimates until a comparison has run on this machine ---------------------------------------


async def test_until_a_comparison_the_figures_are_labelled_estimates(demo_model: Path, tmp_home: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        table = app.screen.query_one("#precision-table", DataTable)
        assert "speed (estimate)" in [str(c.label) for c in table.columns.values()]
        assert "estimates, not measured on this machine" in text(app, "#compare-note")
        assert not app.screen.query_one("#compare-box").display
        decision = " ".join(text(app, "#precision-decision").split())
        assert decision.startswith("INT4 is chosen, not measured on this machine") and "★" not in decision
        for row in range(table.row_count):  # no row quotes another machine's speed as fact
            table.move_cursor(row=row)
            await pilot.pause()
            assert "tok/s" not in text(app, "#precision-measured")


def measured(size: int, speed: float, perplexity: float, losses: int = 0) -> Measurement:
    return Measurement(size, 2, {128: speed * 3, 512: speed * 2}, {128: speed, 512: speed * 0.8},
                       perplexity, 22.9, 0.9, 5, 5 - losses, 5, losses, losses == 0,
                       perplexity / 22.9 <= 1.15, lengths=(128, 512))


def saved_comparison(model: Path) -> compare.Recommendation:
    """A comparison as `slmops compare` saves it (figures of a made-up machine)."""
    rows = [compare.Row("int4-rtn", "int4", "", "/x/a", False, measured(194_000_000, 70.0, 30.0)),
            compare.Row("int8", "int8", "", "/x/b", True, measured(181_000_000, 50.0, 23.2)),
            compare.Row("fp32", "fp32", "", "/x/c", False, measured(627_000_000, 30.0, 22.9))]
    result = compare.recommend(rows, str(inspect_model(model).path))
    root = compare.compare_root(inspect_model(model))
    root.mkdir(parents=True)
    compare.save(result, root / compare.RESULT_NAME)
    return result


async def test_a_saved_comparison_shows_measured_rows_and_preselects_its_recommendation(
        demo_model: Path, tmp_home: Path) -> None:
    result = saved_comparison(demo_model)
    assert result.candidate == "int8"  # int4-rtn is faster but fails the perplexity bound
    app = SlmopsApp(WizardState(model_dir=str(demo_model), precision="int4"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert app.screen.choice.value == "int8"
        estimates = app.screen.query_one("#precision-table", DataTable)
        assert str(estimates.get_cell("int8", "precision")) == "● INT8 ★"  # the star follows the measurement
        rows = app.screen.query_one("#compare-table", DataTable)
        assert list(rows.rows) == ["int4-rtn", "int8", "fp32"]
        assert str(rows.get_cell("int8", "candidate")) == "int8 ★"
        assert "perplexity +31" in str(rows.get_cell("int4-rtn", "verdict"))
        assert "int8 is the fastest that passes" in text(app, "#compare-reason")
        decision = " ".join(text(app, "#precision-decision").split())
        assert decision.startswith("★ INT8, measured here: int8 is the fastest that passes")
        assert "Measured on this machine" in text(app, "#compare-note")
        app.screen.query_one("#step-body").scroll_end(animate=False)
        await pilot.pause()
        assert_fits(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.state.precision == "int8"


async def test_a_comparison_saved_on_another_cpu_is_not_shown_as_measured_here(
        demo_model: Path, tmp_home: Path) -> None:
    result = saved_comparison(demo_model)  # as saved here, then relabelled: the VM moved to other kernels
    path = compare.compare_root(inspect_model(demo_model)) / compare.RESULT_NAME
    compare.save(replace(result, cpu="Intel Xeon (AVX-512 VNNI, AMX)"), path)
    assert compare.load_saved(demo_model) is None
    assert remedy_for([QualityCheck(DOMAIN, False, "")], "int4", demo_model).measured_here is False
    app = SlmopsApp(WizardState(model_dir=str(demo_model), precision="int4"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert app.screen.choice.value == "int4"
        assert "★" not in str(app.screen.query_one("#precision-table", DataTable).get_cell("int8", "precision"))
        assert " ".join(text(app, "#precision-decision").split()).startswith("INT4 is chosen, not measured")
    compare.save(result, path)  # the same file under this CPU's label counts
    assert compare.load_saved(demo_model) == result


async def test_a_recommended_int4_variant_sets_its_int4_settings(demo_model: Path, tmp_home: Path) -> None:
    rows = [compare.Row("int4-rtn", "int4", "", "/x/a", False, measured(194_000_000, 70.0, 25.0))]
    root = compare.compare_root(inspect_model(demo_model))
    root.mkdir(parents=True)
    compare.save(compare.recommend(rows, str(inspect_model(demo_model).path)), root / compare.RESULT_NAME)
    app = SlmopsApp(WizardState(model_dir=str(demo_model), precision="fp32"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert app.screen.choice.value == "int4"
        assert app.screen.query_one("#int4-algorithm", Select).value == "rtn"
        assert app.screen.query_one("#int4-settings").display


@pytest.fixture
def forget_comparison(demo_model: Path) -> Iterator[None]:
    """The comparison a test saves in the session's home is removed after it: the other tests'
    screens start from estimates."""
    yield
    (compare.compare_root(inspect_model(demo_model)) / compare.RESULT_NAME).unlink(missing_ok=True)


SHORT: CompareSettings = {  # short: what these tests check is the flow, not the figures
    "lengths": (32, 64), "new_tokens": 8, "runs": 1, "eval_windows": 2, "queries": demo_queries()[:5]}


@pytest.mark.slow
@pytest.mark.usefixtures("forget_comparison")
async def test_arriving_measures_int4_and_int8_here_and_preselects_the_winner(
        demo_model: Path, demo_int4: Path, demo_int8: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the default road: nothing pressed; the two candidates the session has converted are reused
    monkeypatch.setattr(PrecisionScreen, "AUTO_MEASURE", ("int8", "int4"))
    monkeypatch.setattr(PrecisionScreen, "COMPARE_SETTINGS", SHORT)
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, PrecisionScreen)
        await wait_for(pilot, lambda: screen.compared is not None and not screen.panel.running,
                       lambda: f"the measurement to end ({text_of(screen.panel)})")
        assert list(screen.query_one("#compare-table", DataTable).rows) == ["int8", "int4"]
        saved = compare.load_saved(demo_model)
        assert saved is not None and saved.candidate == screen.compared.candidate
        # nothing was converted: both rows are the session's folders, measured as they are
        # (found where the home lists them: the same folders, whichever path leads there)
        assert [(row.candidate, Path(row.folder).resolve(), row.reused) for row in saved.rows] == [
            ("int8", demo_int8.resolve(), True), ("int4", demo_int4.resolve(), True)]
        passing = [row for row in saved.rows if row.passed]
        decision = " ".join(text(app, "#precision-decision").split())
        if passing:  # which rows pass is this CPU's to say; the fastest of them is preselected
            fastest = max(passing, key=lambda row: row.measurement.gen_tps_focus)  # type: ignore[union-attr]
            assert saved.candidate == fastest.candidate
            assert screen.choice.value == compare.candidates()[fastest.candidate].precision.value
            assert decision.startswith(f"★ {screen.option(screen.choice).label}, measured here:")
        else:
            assert saved.candidate is None and decision.startswith("Nothing measured here passes")
        assert not app.screen.query_one("#next").disabled
        assert_fits(app)

    # a second arrival reads the saved measurement: nothing runs again
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        assert app.screen.compared is not None and not app.screen.panel.running


@pytest.mark.slow
@pytest.mark.usefixtures("forget_comparison")
async def test_next_while_measuring_goes_on_with_the_choice_and_stops_the_measurement(
        demo_model: Path, demo_int8: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PrecisionScreen, "AUTO_MEASURE", ("int8",))
    monkeypatch.setattr(PrecisionScreen, "COMPARE_SETTINGS", SHORT)
    real, ended = compare.compare, threading.Event()

    def held(*args, **kwargs):  # the real measurement, held after its first event until stopped
        stop = args[2]
        try:
            for index, event in enumerate(real(*args, **kwargs)):
                yield event
                if index == 0:
                    stop.wait(STOP_LIMIT)
        finally:
            ended.set()

    monkeypatch.setattr(compare, "compare", held)
    app = SlmopsApp(WizardState(model_dir=str(demo_model), precision="int4"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, PrecisionScreen)
        await wait_for(pilot, lambda: screen.panel.running, "the measurement to start on arrival")
        decision = " ".join(text(app, "#precision-decision").split())
        assert decision.startswith("Measuring INT8 here") and "goes on with INT4, unmeasured" in decision
        assert not screen.query_one("#next").disabled
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.STEP == "template", "the template step")
        assert app.state.precision == "int4"
        await wait_for(pilot, ended.is_set, "the measurement to stop")
    assert compare.load_saved(demo_model) is None  # a stopped measurement decides nothing


async def test_quarot_on_a_model_it_cannot_rotate_holds_next_and_says_why(
        demo_model: Path, tmp_path: Path) -> None:
    from tests.reliability.helpers import make_tiny_hf_model

    gemma = make_tiny_hf_model(demo_model, tmp_path / "gemma2", "gemma2")
    app = SlmopsApp(WizardState(model_dir=str(gemma), precision="int4"), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        algorithm = app.screen.query_one("#int4-algorithm", Select)
        box = app.screen.query_one("#int4-settings", Collapsible)
        assert algorithm.value == "auto" and not app.screen.query_one("#next", Button).disabled
        assert box.collapsed and "k_quant_mixed" in box.title  # on demand; its title says what auto chose
        await opened(app, pilot)
        estimate = " ".join(text_of(app.screen.query_one("#int4-estimate")).split())
        assert "For this model (Gemma2ForCausalLM): k_quant_mixed." in estimate  # QuaRot does not fit
        assert app.screen.query_one("#int4-block-size", Select).value == 16
        box.collapsed = True
        algorithm.value = "quarot_gptq"
        await pilot.pause()
        assert not box.collapsed  # what holds Next back is shown, not folded away
        assert app.screen.query_one("#next", Button).disabled
        assert "QuaRot + GPTQ does not fit this model" in str(app.screen.query_one("#nav-reason").render())
        assert "on Gemma2ForCausalLM Olive's rotation would change" in text(app, "#int4-estimate")
        assert app.screen.query_one("#int4-estimate").has_class("error-line")
        algorithm.value = "gptq"
        await pilot.pause()
        assert not app.screen.query_one("#next", Button).disabled
        assert not app.screen.query_one("#int4-estimate").has_class("error-line")


def test_measured_percentages_are_never_split_from_their_sign() -> None:
    from tui.screens.precision import unbroken

    assert unbroken("250 MB: +8.1 % perplexity; 220 MB: +2.2 %") == "250 MB: +8.1% perplexity; 220 MB: +2.2%"
    assert unbroken("+%2,2 (tr)") == "+%2,2 (tr)"


async def test_auto_shows_what_it_chose_for_the_model_and_a_named_algorithm_frees_the_settings(
        demo_model: Path) -> None:
    """The demo is a Llama: the automatic choice is QuaRot + GPTQ, asymmetric, block 32, shown in
    the controls (not editable) and the note; choosing k_quant_mixed makes them the user's again,
    and Next stores what the controls show."""
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        screen = app.screen
        block = screen.query_one("#int4-block-size", Select)
        symmetric = screen.query_one("#int4-symmetric", Switch)
        assert screen.query_one("#int4-algorithm", Select).value == "auto"
        assert (block.value, symmetric.value, block.disabled, symmetric.disabled) == (32, False, True, True)
        await opened(app, pilot)
        estimate = " ".join(text_of(screen.query_one("#int4-estimate")).split())
        assert "For this model (LlamaForCausalLM): quarot_gptq." in estimate
        screen.query_one("#int4-algorithm", Select).value = "k_quant_mixed"
        await pilot.pause()
        assert not block.disabled and not symmetric.disabled
        block.value = 16
        await pilot.pause()
        screen.query_one("#int4-algorithm", Select).value = "auto"
        await pilot.pause()
        assert (block.value, symmetric.value, block.disabled) == (32, False, True)
        await pilot.press("ctrl+n")
        await pilot.pause()
        state = app.state
        assert (state.int4.algorithm, state.int4.block_size, state.int4.symmetric) == ("auto", 32, False)


async def test_the_int8_row_says_whether_this_model_is_rotated_first(demo_model: Path, tmp_path: Path) -> None:
    from tests.reliability.helpers import make_tiny_hf_model

    gemma = make_tiny_hf_model(demo_model, tmp_path / "gemma2", "gemma2")
    for model, said in ((demo_model, "For this model (LlamaForCausalLM): rotated first (QuaRot)"),
                        (gemma, "For this model (Gemma2ForCausalLM): not rotated")):
        app = SlmopsApp(WizardState(model_dir=str(model), precision="int8"), start="precision")
        async with app.run_test(size=(120, 40)) as pilot:
            await loaded(app, pilot)
            await opened(app, pilot)
            assert app.screen.choice is Precision.INT8
            assert said in " ".join(text_of(app.screen.query_one("#precision-measured")).split())
