"""The wizard in Turkish: switched inside the app without losing the user's place, and every main
screen still fitting 80x24 (SLMOPS_UPDATE_SCREENSHOTS=1 saves them to screenshots/tr/)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Button, Footer, Label

from tui.app import SlmopsApp
from wizard_steps import i18n
from wizard_steps.state import WizardState

SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "tr"
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def keep_language() -> Iterator[None]:
    before = i18n.current_language()
    yield
    i18n.set_language(before, explicit=False)


async def settled(pilot) -> None:
    for _ in range(60):
        await pilot.pause(0.1)
        if not any(w.is_running for w in pilot.app.screen.workers):
            break
    await pilot.pause(0.2)


def cut_off(app: SlmopsApp) -> list[str]:
    """Widgets that stick out of the terminal or, sideways, out of a parent that cannot scroll
    sideways; footer keys hidden under the command palette's key."""
    problems = []
    for widget in app.screen.query("*"):
        if not widget.display or not widget.region.width:
            continue
        parent = widget.parent
        if widget.region.right > SIZE[0]:
            problems.append(f"{widget!r} ends at column {widget.region.right}")
        elif (isinstance(parent, Widget) and parent.region.width and not parent.allow_horizontal_scroll
              and widget.region.right > parent.region.right):
            problems.append(f"{widget!r} sticks out of {parent!r}")
    keys = list(app.screen.query_one(Footer).query("FooterKey"))
    palette = [k.region.x for k in keys if k.has_class("-command-palette")]
    ends = [k.region.right for k in keys if not k.has_class("-command-palette")]
    if palette and ends and max(ends) > palette[0]:
        problems.append(f"the footer's keys run under the palette key ({max(ends)} > {palette[0]})")
    return problems


async def test_f3_switches_to_turkish_and_keeps_the_place() -> None:
    i18n.set_language("en", explicit=False)
    app = SlmopsApp(WizardState(completed=["welcome"], precision="int8"), start="prereqs")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert app.screen.query_one(".step-title", Label).content == "Prerequisites"
        before = asdict(app.state)
        await pilot.press("f3")
        await settled(pilot)
        assert i18n.current_language() == "tr"
        assert app.screen.STEP == "prereqs" and asdict(app.state) == before
        assert app.screen.query_one(".step-title", Label).content == "Ön koşullar"
        assert str(app.screen.query_one("#back", Button).label) == "‹ Geri"
        assert app.screen.sub_title == "Ön koşullar"


async def test_the_command_palette_switches_the_language_back() -> None:
    i18n.set_language("tr", explicit=False)
    app = SlmopsApp(WizardState(completed=["welcome"]), start="prereqs")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"language")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settled(pilot)
        assert i18n.current_language() == "en"
        assert app.screen.query_one(".step-title", Label).content == "Prerequisites"


async def test_the_footer_speaks_the_language_of_the_screen() -> None:
    i18n.set_language("tr", explicit=False)
    app = SlmopsApp(WizardState(), start="welcome")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
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
        await settled(pilot)
        shots = SHOTS if os.environ.get("SLMOPS_UPDATE_SCREENSHOTS") else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(f"{number:02d}-{step}.svg", path=str(shots))
        assert "İleri" in (shots / f"{number:02d}-{step}.svg").read_text(encoding="utf-8")
        assert not cut_off(app)
