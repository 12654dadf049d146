"""A checklist that fails on fidelity offers the fix on the benchmark screen, and pressing it
converts to the precision that keeps closer to the source and runs the checklist again on the new
folder. On the session's tiny Llama (Olive converts it in seconds), with a bound no conversion meets
(a KL divergence of 0), so the failure does not depend on the CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Button

from tests.tui.helpers import click, wait_for
from tests.tui.helpers import text_of as shown
from tui.app import SlmopsApp
from tui.screens.benchmark import BenchmarkScreen
from tui.widgets.run_panel import RunPanel
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Precision
from wizard_steps.road.state import WizardState
from wizard_steps.verdict import fidelity, quality

pytestmark = pytest.mark.slow

QUERIES = quality.demo_queries()[:2]


@pytest.fixture
def tiny_int4(tiny_converted, tmp_home: Path) -> Path:
    """The session's tiny INT4 (RTN), listed among this test's home's models."""
    folder = tmp_home / "data" / "models" / "tiny-int4"
    shutil.copytree(tiny_converted("int4-rtn"), folder)
    return folder


async def test_a_failing_checklist_offers_the_fix_and_pressing_it_converts_and_rechecks(
        tiny_llama: Path, tiny_int4: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fidelity, "KL_BOUND", 0.0)  # a bound no conversion meets: fidelity fails
    monkeypatch.setattr(BenchmarkScreen, "QUERIES", QUERIES)
    monkeypatch.setattr(BenchmarkScreen, "EVAL_WINDOWS", 3)
    state = WizardState(model_dir=str(tiny_llama), converted_dir=str(tiny_int4), precision="int4",
                        template_key="chatml", deployed_id=None)
    app = SlmopsApp(state, start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, BenchmarkScreen)
        panel = screen.query_one(RunPanel)
        await click(pilot, "#bench-quality")  # the checklist alone
        await wait_for(pilot, lambda: not panel.running and screen.checks, "the checklist to end")
        assert screen.checks[quality.FIDELITY].passed is False
        assert screen.remedy is not None and screen.remedy.precision is Precision.INT8
        fix = screen.query_one("#bench-fix", Button)
        assert fix.display and "Convert to INT8" in str(fix.label)
        assert "keeps closer to the source" in " ".join(shown(screen, "#bench-fix-reason").split())

        await click(pilot, "#bench-fix")
        await wait_for(pilot, lambda: panel.running, "the fix to start")
        await wait_for(pilot, lambda: not panel.running, "the conversion and the checklist to end")
        converted = Path(app.state.converted_dir or "")
        assert converted != tiny_int4 and (converted / "genai_config.json").is_file()
        assert app.state.precision == "int8" and convert.saved_passes(converted) is not None
        assert "quantize_int8" in (convert.saved_passes(converted) or {})
        # the checklist ran again, on the INT8 folder: it fails the zero bound too, so the next fix is FP32
        assert set(screen.checks) >= {quality.DOMAIN, quality.FIDELITY}
        assert screen.checks[quality.FIDELITY].figures.converted_perplexity > 0
        assert screen.remedy is not None and screen.remedy.precision is Precision.FP32
        saved = WizardState.load()
        assert saved is not None and saved.converted_dir == str(converted) and saved.deployed_id is None
