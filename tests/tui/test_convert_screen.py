"""The Convert screen: the plan and its Olive config, a real conversion run in a worker with live
progress and log, cancelling it, and an existing output folder refused until replacing is on."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Button, Collapsible, Input, Log, ProgressBar, Static, Switch

from tests.tui.helpers import STOP_LIMIT, assert_fits, click, text_of, wait_for
from tui.app import SlmopsApp
from tui.screens.convert import ConvertScreen
from tui.widgets.help import HelpScreen
from tui.widgets.run_panel import RunPanel
from wizard_steps.conversion import convert
from wizard_steps.conversion.convert import ConvertPlan
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
from wizard_steps.core.events import Progress
from wizard_steps.road.state import WizardState

pytestmark = pytest.mark.slow  # real conversions of the session's tiny Llama (Olive runs in seconds)


def said(screen: ConvertScreen, selector: str) -> str:
    """A widget's text with its wrapping undone."""
    return " ".join(text_of(screen, selector).split())


def convert_app(model_dir: Path, output_dir: Path) -> SlmopsApp:
    state = WizardState(model_dir=str(model_dir), precision="int4",
                        int4=Int4Settings(algorithm=Int4Algorithm.RTN, quantize_embeddings=True),
                        output_dir=str(output_dir))
    return SlmopsApp(state, start="convert")


async def test_screen_shows_the_plan_and_the_olive_config(demo_model: Path, tmp_path: Path) -> None:
    app = convert_app(demo_model, tmp_path / "int4")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        for selector in ("#convert-start", "#convert-cancel", "#convert-progress", "#convert-log",
                         "#convert-replace", "#convert-config-box"):
            assert screen.query_one(selector)
        assert screen.query_one("#convert-output", Input).value == str(tmp_path / "int4")
        assert "INT4" in text_of(screen, "#convert-plan")
        assert '"type": "ModelBuilder"' in screen.config_json
        assert '"int4_op_types_to_quantize"' in screen.config_json
        assert '"do_sample": true' in screen.config_json  # the template step's ModelConfig
        await click(pilot, "#convert-config-box CollapsibleTitle")
        await pilot.pause()
        assert not screen.query_one("#convert-config-box", Collapsible).collapsed
        config = screen.query_one("#convert-config", Static)
        assert config.region.height > screen.config_json.count("\n")  # all of it, wrapped
        assert screen.query_one("#next", Button).disabled
        assert_fits(app)


async def test_conversion_runs_in_a_worker_and_succeeds(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "int4"
    app = convert_app(tiny_llama, out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await click(pilot, "#convert-start")
        await pilot.pause()
        assert screen.is_busy() and screen.running
        assert screen.query_one("#convert-start", Button).disabled
        assert not screen.query_one("#convert-cancel", Button).disabled
        assert screen.query_one("#convert-output", Input).disabled
        await pilot.press("f1")  # the UI answers while Olive runs
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.is_busy()
        await wait_for(pilot, lambda: not screen.is_busy(), "the conversion to end")

        assert screen.query_one("#convert-progress", ProgressBar).progress == 1.0
        lines = screen.query_one("#convert-log", Log).lines
        assert any(line.startswith("Reading layer") for line in lines)
        assert (out / "genai_config.json").is_file()
        assert app.state.converted_dir == str(out)
        assert "smaller" in said(screen, "#convert-result")
        assert "tuned for this machine" in said(screen, "#convert-result")  # the default road tunes
        assert not screen.query_one("#next", Button).disabled
        assert not screen.query_one("#convert-start", Button).disabled
        assert screen.query_one("#convert-cancel", Button).disabled
        assert_fits(app)


def hold_after_the_first_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real conversion, held once Olive has read a layer until the user's cancel has landed:
    however fast the CPU, the run cannot end before the key."""
    real = convert.convert

    def held(plan: ConvertPlan, cancel: threading.Event | None = None) -> Iterator[object]:
        for event in real(plan, cancel):
            yield event
            if isinstance(event, Progress) and event.stage.startswith("Reading layer") and cancel is not None:
                cancel.wait(STOP_LIMIT)

    monkeypatch.setattr(convert, "convert", held)


@pytest.mark.parametrize("how", ["button", "key"])
async def test_cancelling_leaves_no_output_folder(tiny_llama: Path, tmp_path: Path, how: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "int4"
    hold_after_the_first_layer(monkeypatch)
    app = convert_app(tiny_llama, out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        await pilot.press("s")
        log = screen.query_one("#convert-log", Log)
        await wait_for(pilot, lambda: any(line.startswith("Reading layer") for line in log.lines),
                       "Olive to read the first layer")
        if how == "button":
            await click(pilot, "#convert-cancel")
        else:
            await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.is_busy(), "the cancelled run to end", timeout=STOP_LIMIT)

        assert "cancelled" in said(screen, "#convert-result")
        assert screen.query_one(RunPanel).outcome is not None
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []  # no staging folder left beside it
        assert screen.query_one("#next", Button).disabled
        assert not screen.query_one("#convert-start", Button).disabled


async def test_existing_output_is_refused_until_replace_is_on(demo_model: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "int4"
    out.mkdir()
    app = convert_app(demo_model, out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        assert "already exists" in said(screen, "#convert-notice")
        assert screen.query_one("#convert-start", Button).disabled
        await pilot.press("s")
        await pilot.pause()
        assert not screen.is_busy() and not screen.running
        assert screen.query_one("#convert-output", Input).value == str(out)  # no "s" typed in
        assert '"type": "ModelBuilder"' in screen.config_json  # the config is still shown

        await click(pilot, "#convert-replace")
        await pilot.pause()
        assert screen.query_one("#convert-replace", Switch).value
        assert screen.plan is not None and screen.plan.replace_existing
        assert not screen.query_one("#convert-start", Button).disabled
        assert not screen.query_one("#convert-notice").display


async def test_an_earlier_conversion_with_the_same_settings_lets_next_through(
        tiny_llama: Path, tiny_converted, tmp_path: Path, tmp_home: Path) -> None:
    # a folder the wizard converted earlier (a workshop's second run), under another name: the
    # session's own conversion with these settings, copied
    from wizard_steps.core import paths

    earlier = paths.models_dir() / "converted-last-week"
    shutil.copytree(tiny_converted("int4-rtn-embeddings"), earlier)
    assert convert.converted_before(convert.make_plan(
        tiny_llama, tmp_path / "probe", Precision.INT4,
        int4=Int4Settings(algorithm=Int4Algorithm.RTN, quantize_embeddings=True)), earlier)
    before = {p.name: p.stat().st_mtime_ns for p in earlier.iterdir()}

    out = tmp_path / "int4"
    app = convert_app(tiny_llama, out)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ConvertScreen)
        notice = "".join(said(screen, "#convert-notice").split())  # a long path wraps mid-word
        assert "".join(f"Converted earlier with the same settings: {earlier}".split()) in notice
        assert not screen.query_one("#next", Button).disabled
        assert not screen.query_one("#convert-start", Button).disabled  # converting again is allowed
        await click(pilot, "#next")
        await wait_for(pilot, lambda: app.screen.STEP == "deploy", "the deploy step")
    assert app.state.converted_dir == str(earlier) and not out.exists()
    assert {p.name: p.stat().st_mtime_ns for p in earlier.iterdir()} == before  # read, never written

    # other settings (INT8 now): the earlier folder is not this conversion, and Next waits for one
    app = SlmopsApp(WizardState(model_dir=str(tiny_llama), precision="int8", output_dir=str(tmp_path / "int8"),
                                converted_dir=str(earlier)), start="convert")
    async with app.run_test(size=(80, 24)):
        screen = app.screen
        assert "Converted earlier" not in said(screen, "#convert-notice")
        assert screen.query_one("#next", Button).disabled
