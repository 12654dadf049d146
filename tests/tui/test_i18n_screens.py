"""The wizard in Turkish: switched inside the app without losing the user's place, and every main
screen still fitting 80x24 (SLMOPS_UPDATE_SCREENSHOTS=1 saves them to screenshots/tr/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, Footer, Label

from tests.tui.helpers import overflows, wait_for, wait_idle
from tui.app import SlmopsApp
from wizard_steps.core import i18n
from wizard_steps.road.state import WizardState

SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "tr"
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def keep_language() -> Iterator[None]:
    before = i18n.current_language()
    yield
    i18n.set_language(before, explicit=False)


async def test_f3_switches_to_turkish_and_keeps_the_place() -> None:
    i18n.set_language("en", explicit=False)
    app = SlmopsApp(WizardState(completed=["welcome"], precision="int8"), start="prereqs")
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot)
        assert app.screen.query_one(".step-title", Label).content == "Prerequisites"
        before = asdict(app.state)
        await pilot.press("f3")
        await wait_idle(pilot)
        assert i18n.current_language() == "tr"
        assert app.screen.STEP == "prereqs" and asdict(app.state) == before
        assert app.screen.query_one(".step-title", Label).content == "Ön koşullar"
        assert str(app.screen.query_one("#back", Button).label) == "‹ Geri"
        assert app.screen.sub_title == "Ön koşullar"


async def test_the_command_palette_switches_the_language_back() -> None:
    i18n.set_language("tr", explicit=False)
    app = SlmopsApp(WizardState(completed=["welcome"]), start="prereqs")
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
        await pilot.press(*"language")
        hits = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: hits.highlighted is not None
                       and "English" in str(hits.get_option_at_index(hits.highlighted).prompt),
                       "the language command to be found and highlighted")
        await pilot.press("enter")
        await wait_for(pilot, lambda: i18n.current_language() == "en", "the switch to English")
        await wait_idle(pilot)
        assert i18n.current_language() == "en"
        assert app.screen.query_one(".step-title", Label).content == "Prerequisites"


async def test_the_footer_speaks_the_language_of_the_screen() -> None:
    i18n.set_language("tr", explicit=False)
    app = SlmopsApp(WizardState(), start="welcome")
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot)
        descriptions = [key.description for key in app.screen.query_one(Footer).query("FooterKey")]
        assert {"İleri", "Geri", "Yardım", "Çıkış"} <= set(descriptions)


def _states(demo: Path) -> dict[str, WizardState]:
    chosen = WizardState(model_dir=str(demo), use_demo=True, template_key="chatml",
                         output_dir="./SmolLM2-135M-Instruct-int4-onnx",  # the same in every screenshot
                         completed=["welcome", "prereqs", "model", "precision", "template"])
    return {"welcome": WizardState(), "prereqs": WizardState(completed=["welcome"]),
            "precision": chosen, "template": chosen, "convert": chosen}


@pytest.mark.parametrize("step", ["welcome", "prereqs", "precision", "template", "convert"])
async def test_turkish_screens_fit_80x24(step: str, demo_model: Path, tmp_home: Path,
                                         tmp_path: Path) -> None:
    i18n.set_language("tr", explicit=False)
    number = ["welcome", "prereqs", "model", "precision", "template", "convert"].index(step) + 1
    app = SlmopsApp(_states(demo_model)[step], start=step)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot)
        shots = SHOTS if os.environ.get("SLMOPS_UPDATE_SCREENSHOTS") else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(f"{number:02d}-{step}.svg", path=str(shots))
        assert "İleri" in (shots / f"{number:02d}-{step}.svg").read_text(encoding="utf-8")
        assert not overflows(app)
