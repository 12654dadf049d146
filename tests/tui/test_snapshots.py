"""Layout snapshots of the screens whose layout matters, at a laptop's 80x24 and at 120x40.
Only screens with deterministic content (no timings, paths or free memory) are snapshotted;
behaviour is asserted by the Pilot tests. Update with: pytest --snapshot-update tests/tui."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.helpers import wait_idle
from tui.app import SlmopsApp
from wizard_steps.road.state import WizardState

SIZES = [(80, 24), (120, 40)]


async def settled(pilot) -> None:
    """The screen's loading has ended (a hang fails the test instead of snapshotting it)."""
    await wait_idle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_welcome_layout(snap_compare, size, tmp_home: Path) -> None:
    assert snap_compare(SlmopsApp(WizardState()), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_precision_layout(snap_compare, size, demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model)), start="precision")
    assert snap_compare(app, terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_template_layout(snap_compare, size, demo_model: Path) -> None:
    app = SlmopsApp(WizardState(model_dir=str(demo_model), template_key="chatml"), start="template")
    assert snap_compare(app, terminal_size=size, run_before=settled)
