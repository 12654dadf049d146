"""The template screen: detection for the demo model, the live preview, a Custom template and the
generation settings validated as you type, and what Next stores."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static

from tests.tui.helpers import wait_for, wait_idle
from tui.app import SlmopsApp
from wizard_steps.road.state import WizardState


def text(app: SlmopsApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settled(app: SlmopsApp, pilot: Pilot) -> None:
    """Until the detection and the comparison it starts have both reported."""
    await wait_idle(pilot)


def template_app(demo_model: Path, **state: object) -> SlmopsApp:
    return SlmopsApp(WizardState(model_dir=str(demo_model), **state), start="template")  # type: ignore[arg-type]


async def test_the_demo_is_detected_as_chatml_with_its_reason(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        assert app.screen.query_one("#template-preset", Select).value == "chatml"
        detection = text(app, "#template-detection")
        assert "ChatML (high confidence)" in detection and "<|im_start|>/<|im_end|>" in detection


async def test_the_preview_shows_the_raw_prompt_and_agrees_with_the_tokenizer(
        demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        preview = text(app, "#template-preview")
        assert "<|im_start|>user" in preview and "And of Italy?<|im_end|>" in preview
        agreement = text(app, "#template-agreement")  # issue 17: in plain words, no character index
        assert agreement.startswith("≠ The model's own chat template adds a default system prompt when "
                                    "you give none ('You are a helpful AI assistant named SmolLM")
        assert "the ChatML preset does not." in agreement and "character" not in agreement
        assert "At the Deploy step you choose" in agreement


async def test_another_preset_shows_where_it_differs_from_the_tokenizer(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#template-preset", Select).value = "llama3"
        await settled(app, pilot)
        assert "<|start_header_id|>" in text(app, "#template-preview")
        agreement = text(app, "#template-agreement")
        assert "The turns are written differently: the Llama 3 preset gives" in agreement
        assert "character" not in agreement


async def test_custom_starts_from_the_chosen_preset(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#template-preset", Select).value = "phi3"
        await pilot.pause()
        app.screen.query_one("#template-preset", Select).value = "custom"
        await pilot.pause()
        assert app.screen.query_one("#custom-fields").display
        assert app.screen.query_one("#part-user", Input).value == "<|user|>\\n{Content}<|end|>\\n"


async def test_a_custom_part_without_content_is_an_error_that_blocks_next(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#template-preset", Select).value = "custom"
        await pilot.pause()
        app.screen.query_one("#part-user", Input).value = "<|im_start|>user\\n<|im_end|>\\n"
        await pilot.pause()
        assert "The user part has no {Content} placeholder." in text(app, "#part-user-error")
        assert app.screen.query_one("#next", Button).disabled
        assert "user part" in str(app.screen.query_one("#nav-reason", Static).render())
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "template"


async def test_a_negative_temperature_names_temperature_and_blocks_next(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        field = app.screen.query_one("#gen-temperature", Input)
        field.value = ""
        field.focus()
        await pilot.press("-", "1")
        await pilot.pause()
        assert "temperature '-1' is out of range" in text(app, "#gen-temperature-error")
        assert app.screen.query_one("#next", Button).disabled
        assert "temperature" in str(app.screen.query_one("#nav-reason", Static).render())


async def test_max_length_beyond_the_models_context_is_refused(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#gen-max_length", Input).value = "100000"
        await pilot.pause()
        assert "more than the model's context of 8192" in text(app, "#gen-max_length-error")
        assert app.screen.query_one("#next", Button).disabled


async def test_next_stores_the_template_and_the_settings(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#gen-temperature", Input).value = "0.2"
        app.screen.query_one("#gen-max_length", Input).value = "512"
        await pilot.pause()
        assert not app.screen.query_one("#next", Button).disabled
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.STEP == "convert", "the convert step")
        assert app.state.step == "convert" and "template" in app.state.completed
        assert app.state.template_key == "chatml" and app.state.custom_template is None
        assert app.state.model_config == {"max_length": 512, "temperature": 0.2, "top_p": 0.9,
                                          "repetition_penalty": 1.1}


async def test_a_custom_template_is_stored_with_its_parts(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#template-preset", Select).value = "custom"
        await pilot.pause()
        app.screen.query_one("#part-system", Input).value = "<|im_start|>system\\n{Content}<|im_end|>\\n\\n"
        await settled(app, pilot)
        assert not app.screen.query_one("#next", Button).disabled
        assert app.screen.before_next()
        assert app.state.template_key == "custom"
        assert app.state.custom_template is not None
        assert app.state.custom_template["system"] == "<|im_start|>system\n{Content}<|im_end|>\n\n"
        assert "differ" in text(app, "#template-agreement")


async def test_a_saved_custom_template_comes_back(demo_model: Path) -> None:
    parts = {"system": "S:{Content}\n", "user": "U:{Content}\n", "assistant": "A:{Content}\n",
             "prompt": "U:{Content}\nA:"}
    app = template_app(demo_model, template_key="custom", custom_template=parts)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        assert app.screen.query_one("#template-preset", Select).value == "custom"
        assert app.screen.query_one("#part-prompt", Input).value == "U:{Content}\\nA:"
        assert "U:And of Italy?↵" in text(app, "#template-preview")


async def test_nothing_is_wider_than_80_columns(demo_model: Path) -> None:
    app = template_app(demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(app, pilot)
        app.screen.query_one("#template-preset", Select).value = "custom"
        await pilot.pause()
        for scroll in ("scroll_home", "scroll_end"):
            getattr(app.screen.query_one("#step-body"), scroll)(animate=False)
            await pilot.pause()
            for widget in app.screen.query("*"):
                assert widget.region.right <= 80, widget
