"""Resume: the wizard's state survives a crash in the middle of saving it, a damaged state file
is ignored rather than fatal, and starting again offers to continue after the last completed step."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Button

from tests.tui.helpers import click
from tui.app import SlmopsApp
from tui.steps import STEPS_BY_KEY
from wizard_steps.core import paths
from wizard_steps.road.state import STEPS, WizardState

ROOT = Path(__file__).parents[2]
SAVER = """
import itertools, sys
from wizard_steps.road.state import STEPS, WizardState
state = WizardState()
for i in itertools.count():
    state.completed = list(STEPS[: 1 + i % (len(STEPS) - 1)])
    state.step = STEPS[len(state.completed)]
    state.system_prompt = "x" * (i * 7919 % 20000)  # sizes vary: a torn write would show
    state.save()
    if i == 50:
        print("saving", flush=True)
"""


def test_state_saved_many_times_and_killed_midway_stays_loadable(tmp_home: Path) -> None:
    rng = random.Random(7)
    for _ in range(5):
        saver = subprocess.Popen([sys.executable, "-c", SAVER], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True, env={**os.environ, "SLMOPS_HOME": str(tmp_home)})
        assert saver.stdout is not None and saver.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0.05, 0.4))
        saver.kill()  # SIGKILL: no cleanup, no flush
        saver.wait()
        saved = WizardState.load()
        assert saved is not None, paths.state_file().read_bytes()[:200]
        assert saved.step == STEPS[len(saved.completed)]
        assert saved.last_completed == saved.completed[-1]


def _write(text: str | bytes) -> None:
    path = paths.state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)  # type: ignore[operator]


VALID = json.dumps({"step": "convert", "completed": ["welcome", "prereqs", "model"]})


@pytest.mark.parametrize("content", [
    pytest.param(VALID[: len(VALID) // 2], id="truncated"),
    pytest.param("", id="empty"),
    pytest.param(b"\x00\xff\xfe garbage \x80", id="binary-garbage"),
    pytest.param("[1, 2, 3]", id="a-json-list"),
    pytest.param(json.dumps({"step": "launch", "completed": []}), id="unknown-step"),
    pytest.param(json.dumps({"step": "convert", "completed": 5}), id="completed-not-a-list"),
    pytest.param(json.dumps({"step": "convert", "completed": [["model"]]}), id="completed-nested"),
    pytest.param(json.dumps({"step": "convert", "use_demo": "yes", "bench_runs": "3"}), id="wrong-types"),
    pytest.param(json.dumps({"step": ["convert"]}), id="step-not-a-string"),
])
def test_a_damaged_state_file_loads_as_none(content: str | bytes, tmp_home: Path) -> None:
    _write(content)
    assert WizardState.load() is None


async def test_after_a_crash_the_wizard_offers_to_resume_after_the_last_completed_step(
        tmp_home: Path) -> None:
    saver = subprocess.Popen([sys.executable, "-c", SAVER], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "SLMOPS_HOME": str(tmp_home)})
    assert saver.stdout is not None and saver.stdout.readline().strip() == "saving"
    saver.kill()
    saver.wait()
    saved = WizardState.load()
    assert saved is not None
    expected = STEPS[STEPS.index(saved.completed[-1]) + 1]
    app = SlmopsApp(WizardState())
    async with app.run_test(size=(80, 24)) as pilot:
        label = str(app.screen.query_one("#resume", Button).label)
        assert label.endswith(STEPS_BY_KEY[expected].title), label
        await click(pilot, "#resume")
        await pilot.pause()
        assert app.screen.STEP == expected
        assert app.state.completed == saved.completed


@pytest.mark.parametrize("content", [
    pytest.param(VALID[:20], id="truncated"),
    pytest.param(json.dumps({"step": "convert", "completed": 5}), id="completed-not-a-list"),
])
async def test_a_damaged_state_file_starts_the_wizard_afresh(content: str, tmp_home: Path) -> None:
    _write(content)
    app = SlmopsApp(WizardState())
    async with app.run_test(size=(80, 24)):
        assert app.screen.STEP == "welcome"
        assert not app.screen.query("#resume")
        assert app.screen.query_one("#start-demo", Button)
