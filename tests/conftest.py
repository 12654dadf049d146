"""Shared fixtures: one temporary SLMOPS_HOME per test run, the demo model prepared once, the demo
converted to INT4 (the default road) and INT8 once, and one tiny Llama built once, for every test
that needs them. A run converts the demo in full three times: these two, and the keys-only
walkthrough; everything else converts the tiny model, reuses these folders, or cancels early."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.foundry_standin import fake_foundry  # noqa: F401  (a shared fixture)

# Several tests press Ctrl+C on a child (SIGINT). A suite started in the background by a shell
# without job control (nohup cmd &) inherits SIGINT ignored, and so would every child: they would
# finish instead of stopping. A handler here is reset to the default in each child it starts.
signal.signal(signal.SIGINT, signal.default_int_handler)

_SESSION_HOME: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    # Everything slmops writes goes under one temporary root; the demo preparation is reused from
    # SLMOPS_TEST_DEMO when set (a developer's speed-up), otherwise made once per run.
    global _SESSION_HOME
    import tempfile

    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="slmops-test-home-"))
    os.environ["SLMOPS_HOME"] = str(_SESSION_HOME)
    os.environ["OLIVE_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_HOME is not None:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def session_home() -> Path:
    assert _SESSION_HOME is not None
    return _SESSION_HOME


@pytest.fixture(scope="session")
def demo_model(session_home: Path) -> Path:
    """The demo model as an fp32 Hugging Face folder (prepared once per run, ~20 s), always in
    the session home, whatever home the test that first asks for it has set."""
    from wizard_steps import model_source

    target = session_home / "cache" / "demo" / "SmolLM2-135M-Instruct"
    reuse = os.environ.get("SLMOPS_TEST_DEMO")
    if reuse and model_source.demo_is_ready(Path(reuse)) and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(reuse, target)
    for event in model_source.prepare_demo(target):
        final = event
    assert model_source.demo_is_ready(target), final
    return target


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SLMOPS_HOME for one test (for tests that must see an empty home)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SLMOPS_HOME", str(home))
    return home


def _convert_once(demo: Path, name: str, precision: str) -> Path:
    from wizard_steps import convert
    from wizard_steps.events import Failed, Finished
    from wizard_steps.precision import Int4Settings, Precision

    assert _SESSION_HOME is not None
    out = _SESSION_HOME / "data" / "models" / name
    plan = convert.make_plan(demo, out, Precision(precision), int4=Int4Settings())
    final = None
    for event in convert.convert(plan):
        if isinstance(event, (Finished, Failed)):
            final = event
    assert isinstance(final, Finished), final
    return final.path


@pytest.fixture(scope="session")
def demo_int4(demo_model: Path) -> Path:
    """The demo converted to INT4 once per run, by the default road ("auto": QuaRot + GPTQ on a
    Llama), as the wizard and ``slmops demo`` convert it. Shared: tests copy it before writing."""
    return _convert_once(demo_model, "demo-int4", "int4")


@pytest.fixture(scope="session")
def demo_int8(demo_model: Path) -> Path:
    """The demo converted to INT8 once per run (rotated, ModelBuilder fp32, then 8-bit RTN)."""
    return _convert_once(demo_model, "demo-int8", "int8")


@pytest.fixture(scope="session")
def tiny_llama(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with the demo's tokenizer, built once per run: Olive converts it in
    seconds. Its path has spaces and non-ASCII letters, as users' paths do."""
    from tests.reliability.helpers import make_tiny_model

    return make_tiny_model(demo_model, tmp_path_factory.mktemp("tiny") / "modèle ünïcode" / "with space")
