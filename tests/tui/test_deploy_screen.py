"""The Deploy screen: the name checked as you type with the inference_model.json it writes, a real
deploy through the Foundry Local SDK into a temporary cache, the deployed models' table, and the
foundry CLI's route where that command is installed."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Button, Collapsible, DataTable, Input, Label, RadioButton, Static

from tests.tui.helpers import HANG_LIMIT, assert_fits, click, wait_for
from tui.app import SlmopsApp
from tui.screens.deploy import DeployScreen
from tui.widgets.run_panel import RunPanel
from wizard_steps.core import paths
from wizard_steps.core.events import Failed
from wizard_steps.deployment.deploy import deploy, list_deployed
from wizard_steps.road.state import WizardState

pytestmark = pytest.mark.slow  # the demo model converted to INT4 (once per run)


def deploy_app(folder: Path, **state: object) -> SlmopsApp:
    return SlmopsApp(WizardState(converted_dir=str(folder), template_key="chatml", **state),
                     start="deploy")


def text_of(screen: DeployScreen, selector: str) -> str:
    """The widget's content as plain text, as wide as it is drawn (Rich renderables too)."""
    widget = screen.query_one(selector, Static)
    console = Console(width=max(widget.size.width, 20), file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def test_a_bad_name_is_explained_and_blocks_deploying(demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        name = screen.query_one("#deploy-name", Input)
        assert name.value == "demo-int4"
        assert text_of(screen, "#deploy-version").strip() == "→ demo-int4:1"
        name.value = ""
        name.focus()
        await pilot.press(*"my model!")
        await pilot.pause()
        error = text_of(screen, "#deploy-name-error")
        assert "not allowed" in error and error.count(".") == 1
        assert screen.query_one("#deploy-start", Button).disabled
        assert "once the name is valid" in str(screen.query_one("#deploy-json-box", Collapsible).title)
        screen.set_focus(None)
        await pilot.press("d")
        await pilot.pause()
        assert not screen.is_busy() and screen.result is None
        assert screen.query_one("#next", Button).disabled
        assert_fits(app)


async def test_the_inference_model_json_to_be_written_is_shown(demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        box = screen.query_one("#deploy-json-box", Collapsible)
        assert not box.collapsed and "version 1" in str(box.title)
        preview = text_of(screen, "#deploy-json")
        assert '"Name": "demo-int4"' in preview and '"Version": "1"' in preview
        assert "<|im_start|>assistant" in preview and '"repetition_penalty": 1.1' in preview


async def test_d_deploys_for_real_and_lists_the_model(demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        assert "Foundry Local SDK" in text_of(screen, "#deploy-route")
        await click(pilot, "#deploy-start")
        await wait_for(pilot, lambda: screen.query_one(RunPanel).outcome is not None, "the deploy to end")
        assert screen.result is not None, screen.query_one(RunPanel).outcome
        await wait_for(pilot, lambda: screen.query_one("#deployed-table", DataTable).row_count == 1,
                       "the deployed model in the table")
        result = " ".join(text_of(screen, "#deploy-result").split())
        reply = " ".join(screen.result.result.proof_reply.split())
        assert reply and f"“{reply}”" in result
        assert "demo-int4:1" in result and "Loaded" in result and "Template" in result
        table = screen.query_one("#deployed-table", DataTable)
        assert table.get_row_at(0)[0] == "demo-int4:1" and table.get_row_at(0)[2] == "int4"
        assert not screen.query_one("#next", Button).disabled
        assert app.state.deployed_id == "demo-int4:1" and app.state.deploy_name == "demo-int4"
        assert text_of(screen, "#deploy-version").strip() == "→ demo-int4:2"
        assert_fits(app)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.state.step == "benchmark" and "deploy" in app.state.completed


async def test_cancel_stops_the_deploy_and_keeps_nothing(demo_int4: Path, tmp_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The real deploy, held after its first step until the Cancel has landed: it cannot finish
    # first, however fast this machine copies and loads.
    held = threading.Event()

    def held_deploy(*args: object, cancel: threading.Event, **kwargs: object) -> Iterator[object]:
        events = deploy(*args, cancel=cancel, **kwargs)  # type: ignore[arg-type]
        yield next(events)
        held.set()
        cancel.wait(HANG_LIMIT)
        yield from events

    monkeypatch.setattr("tui.screens.deploy.deploy", held_deploy)
    app = deploy_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        panel = screen.query_one(RunPanel)
        try:
            screen.query_one("#deploy-start", Button).press()
            await wait_for(pilot, held.is_set, "the deploy to start")
            assert screen.running and panel.outcome is None
            screen.query_one("#deploy-cancel", Button).press()
            await wait_for(pilot, lambda: not screen.running, "the cancelled deploy to end")
        finally:
            panel.stop.set()
        outcome = panel.outcome
        assert isinstance(outcome, Failed) and outcome.cancelled, outcome  # stopped, not finished
        assert screen.result is None
        assert "cancelled" in " ".join(text_of(screen, "#deploy-result").split())
        assert list_deployed() == []
        assert not list(paths.foundry_cache_dir().rglob("*demo-int4*"))  # no copy, no staging folder
        assert not screen.query_one("#deploy-start", Button).disabled
        assert screen.query_one("#next", Button).disabled


async def test_a_deployed_id_no_longer_listed_does_not_count(demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4, deployed_id="gone:3")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one("#next", Button).disabled
        assert "Deploy the model first" in str(app.screen.query_one("#nav-reason", Label).render())




async def test_the_foundry_cli_route_is_used_where_the_cli_is_installed(
        demo_int4: Path, tmp_home: Path, fake_foundry: Path) -> None:
    cache = fake_foundry
    app = deploy_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        assert "foundry CLI" in text_of(screen, "#deploy-route")
        assert text_of(screen, "#deploy-version").strip() == "→ demo-int4"
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.query_one(RunPanel).outcome is not None, "the deploy to end")
        assert screen.result is not None, screen.query_one(RunPanel).outcome
        result = text_of(screen, "#deploy-result")
        assert "Placed demo-int4" in result and "foundry model run demo-int4" in result
        assert (cache / "custom" / "demo-int4" / "inference_model.json").is_file()
        assert app.state.deployed_id == "demo-int4"
        assert not screen.query_one("#next", Button).disabled


async def test_without_a_converted_model_there_is_nothing_to_deploy(tmp_home: Path) -> None:
    app = SlmopsApp(WizardState(template_key="chatml"), start="deploy")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        assert "Convert step" in text_of(screen, "#deploy-route")
        assert screen.query_one("#deploy-start", Button).disabled
        assert screen.query_one("#deploy-name", Input).value == "my-model"


async def test_a_template_that_differs_is_explained_and_the_models_own_can_be_kept(
        demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4)
    own = (demo_int4 / "chat_template.jinja").read_text(encoding="utf-8")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        assert screen.query_one("#deploy-template-box").display  # SmolLM2's adds a system prompt
        note = " ".join(text_of(screen, "#deploy-template-note").split())
        assert "adds a default system prompt" in note and "ChatML preset does not" in note
        assert "character" not in note  # plain words, no character index
        await click(pilot, "#deploy-template-model")
        await wait_for(pilot, lambda: app.state.template_source == "model", "the choice to be saved")
        await click(pilot, "#deploy-start")
        await wait_for(pilot, lambda: screen.query_one(RunPanel).outcome is not None, "the deploy to end")
        assert screen.result is not None, screen.query_one(RunPanel).outcome
        deployed = Path(screen.result.result.path)
        assert screen.result.result.template_source == "model"
        assert (deployed / "chat_template.jinja").read_text(encoding="utf-8") == own
        assert_fits(app)


async def test_the_saved_template_choice_comes_back_pressed_and_can_be_changed(
        demo_int4: Path, tmp_home: Path) -> None:
    app = deploy_app(demo_int4, template_source="model")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.pause()
        assert screen.query_one("#deploy-template-model", RadioButton).value
        assert not screen.query_one("#deploy-template-preset", RadioButton).value
        await click(pilot, "#deploy-template-preset")
        await wait_for(pilot, lambda: app.state.template_source == "preset", "the choice to be saved")
        assert not screen.query_one("#deploy-template-model", RadioButton).value
        saved = WizardState.load()
        assert saved is not None and saved.template_source == "preset"


def test_the_result_says_when_the_deployed_copy_was_tuned(tmp_path: Path) -> None:
    """A folder never tuned on this machine is tuned on its deployed copy: the result says so in
    one row at 80 columns; a folder tuned already gets no such row."""
    from tui.screens.deploy import describe_result
    from wizard_steps.core.events import Finished
    from wizard_steps.deployment.deploy import DeployResult
    from wizard_steps.measurement.tune_quick import QuickTune, describe

    done = DeployResult(model_id="m:1", name="m", version=1, display_name="m", path=str(tmp_path),
                        cache_dir=str(tmp_path), size_bytes=250_000_000, precision="int4", load_s=0.7,
                        proof_prompt="Say hello.", proof_reply="Hello!", first_reply_s=0.1, proof_usage=None,
                        template_agrees=True, template_notes=(), template_source="preset", duration_s=2.1)
    tuned = QuickTune(threads=2, tried=2, gain=1.4, applied=True)

    def render(extra: dict) -> str:
        console = Console(width=80, file=io.StringIO(), record=True)
        console.print(describe_result(Finished(tmp_path, replace(done, **extra))))
        return console.export_text()

    shown = render({"tuned": tuned})
    row = next(line for line in shown.splitlines() if line.startswith("Tuned"))
    assert describe(tuned) in row and describe(tuned) == "tuned for this machine: 2 threads, x1.40"
    assert all(len(line) <= 80 for line in shown.splitlines())
    assert "Tuned" not in render({})
