"""Shared fixtures: one temporary SLMOPS_HOME per test process, the demo model prepared once, the
demo converted to INT4 (the default road) and INT8 once, and one tiny Llama built once, for every
test that needs them. A run converts the demo in full twice, these two; everything else converts
the tiny model, reuses these folders (the keys-only walkthrough goes on with the INT4 as a second
run of the wizard does), or cancels early.

The suite runs in parallel (``-n auto``, pytest-xdist, whole files per worker). Each worker has
its own home, so no test sees another's state, models or deployments; the demo and its two
conversions, the tiny Llama and its conversions (``tiny_converted``), and the source model's cached
runs are made once per run in one shared folder, under a file lock, by whichever worker asks first.
Every home's demo and converted folders are links to those (a conversion is identified by the
resolved path of its input, so a folder converted by one worker is "the same conversion" in another);
the fixtures return the shared folders, which tests copy before they write."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from tests.foundry_standin import fake_foundry  # noqa: F401  (a shared fixture)

# Several tests press Ctrl+C on a child (SIGINT). A suite started in the background by a shell
# without job control (nohup cmd &) inherits SIGINT ignored, and so would every child: they would
# finish instead of stopping. A handler here is reset to the default in each child it starts.
signal.signal(signal.SIGINT, signal.default_int_handler)

_SESSION_HOME: Path | None = None
_SHARED_ENV = "SLMOPS_TEST_SHARED"  # set by the process that starts the run; its workers inherit it
_OWNS_SHARED = False
MAX_WORKERS = 4  # each worker runs on its own share of the cores (_pin_worker): more would only wait


def pytest_configure(config: pytest.Config) -> None:
    # Everything slmops writes goes under one temporary root per process; the demo preparation is
    # reused from SLMOPS_TEST_DEMO when set (a developer's speed-up), otherwise made once per run.
    global _SESSION_HOME, _OWNS_SHARED
    import tempfile

    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="slmops-test-home-"))
    os.environ["SLMOPS_HOME"] = str(_SESSION_HOME)
    os.environ["OLIVE_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    if _SHARED_ENV not in os.environ:  # the run's first process: the workers it starts share this
        os.environ[_SHARED_ENV] = tempfile.mkdtemp(prefix="slmops-test-shared-")
        _OWNS_SHARED = True
    # The source model's runs and evaluation references are cached per machine: one cache for the
    # whole run (a worker's home would otherwise pay again for what the other computed)
    for kind in ("source-runs", "eval-refs"):
        shared = Path(os.environ[_SHARED_ENV]) / "cache" / kind
        shared.mkdir(parents=True, exist_ok=True)
        (_SESSION_HOME / "cache").mkdir(parents=True, exist_ok=True)
        (_SESSION_HOME / "cache" / kind).symlink_to(shared, target_is_directory=True)
    _pin_worker()


def _pin_worker() -> None:
    """Give each xdist worker its own share of the cores. Unpinned, every worker's onnxruntime and
    torch run one thread per core, and on 2 cores the two workers' spinning threads fight (the
    suite's CPU time rose from 22 to 30 minutes). Pinned, each runs on its own cores and sizes its
    thread pools to them (torch and the wizard's tuning read the affinity), as a user's machine
    with that many cores would."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and count.isdigit() and hasattr(os, "sched_setaffinity")):
        return
    cores = sorted(os.sched_getaffinity(0))
    index, workers = int(worker[2:]), int(count)
    if workers < 2 or workers > len(cores):
        return
    share = len(cores) // workers
    os.sched_setaffinity(0, cores[index * share:(index + 1) * share])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_HOME is not None:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)
    if _OWNS_SHARED:
        shutil.rmtree(os.environ[_SHARED_ENV], ignore_errors=True)


_SPEED: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """The machine's speed as the run starts, printed with the summary beside the CPU's name: this
    machine is shared and its speed moves (a pure-Python loop took 0.5 s one day and 1.9 s another),
    so a suite's time is compared with another's only at like figures. About half a second, in the
    first process only."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    import time

    from wizard_steps.measurement.machine import cpu_name, read_bandwidth
    from wizard_steps.measurement.tune import usable_cpus

    started, total = time.perf_counter(), 0
    for step in range(2_000_000):
        total += step
    loop = 2_000_000 / (time.perf_counter() - started) / 1e6
    bandwidth = read_bandwidth(256 << 20, 1, runs=2) / 1e9
    _SPEED.append(f"machine: {cpu_name()}, {usable_cpus()} usable cores; speed as the run began: Python loop "
                  f"{loop:.1f} M steps/s, memory read {bandwidth:.1f} GB/s (one core)")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for line in _SPEED:
        terminalreporter.write_line(line)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def _shared(name: str) -> tuple[Path, FileLock]:
    """A folder made once per run for every worker, and the lock to hold while making it."""
    root = Path(os.environ[_SHARED_ENV])
    return root / name, FileLock(str(root / f"{name}.lock"))


@pytest.fixture(scope="session")
def session_home() -> Path:
    assert _SESSION_HOME is not None
    return _SESSION_HOME


@pytest.fixture(scope="session")
def demo_model(session_home: Path) -> Path:
    """The demo model as an fp32 Hugging Face folder (prepared once per run, about 12 s), always in
    the session home, whatever home the test that first asks for it has set."""
    from wizard_steps.model import model_source

    shared, lock = _shared("SmolLM2-135M-Instruct")
    with lock:
        reuse = os.environ.get("SLMOPS_TEST_DEMO")
        if reuse and model_source.demo_is_ready(Path(reuse)) and not shared.exists():
            shutil.copytree(reuse, shared)
        final = None
        for event in model_source.prepare_demo(shared):
            final = event
        assert model_source.demo_is_ready(shared), final
    target = session_home / "cache" / "demo" / "SmolLM2-135M-Instruct"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(shared, target_is_directory=True)
    return target


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SLMOPS_HOME for one test (for tests that must see an empty home)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SLMOPS_HOME", str(home))
    return home


SHARED_CONVERSIONS = {"demo_int4": "demo-int4", "demo_int8": "demo-int8"}  # fixture -> its shared folder


def _convert_once(demo: Path, name: str, precision: str) -> Path:
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Int4Settings, Precision
    from wizard_steps.core.events import Failed, Finished

    assert _SESSION_HOME is not None
    shared, lock = _shared(name)
    with lock:
        if not (shared / "genai_config.json").is_file():
            plan = convert.make_plan(demo, shared, Precision(precision), int4=Int4Settings())
            final = None
            for event in convert.convert(plan):
                if isinstance(event, (Finished, Failed)):
                    final = event
            assert isinstance(final, Finished), final
    listed = _SESSION_HOME / "data" / "models" / name  # where this worker's home lists its models
    if not listed.exists():
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.symlink_to(shared, target_is_directory=True)
    return shared  # the folder its saved config names; shared read-only: a test copies it to write


@pytest.fixture(scope="session")
def demo_int4(demo_model: Path) -> Path:
    """The demo converted to INT4 once per run, by the default road ("auto": QuaRot + GPTQ on a
    Llama), as the wizard and ``slmops demo`` convert it. Shared: tests copy it before writing."""
    return _convert_once(demo_model, SHARED_CONVERSIONS["demo_int4"], "int4")


@pytest.fixture(scope="session")
def demo_int8(demo_model: Path) -> Path:
    """The demo converted to INT8 once per run (rotated, ModelBuilder fp32, then 8-bit RTN)."""
    return _convert_once(demo_model, SHARED_CONVERSIONS["demo_int8"], "int8")


@pytest.fixture(scope="session")
def tiny_llama(demo_model: Path) -> Path:
    """A 2-layer random Llama with the demo's tokenizer, built once per run for every worker: Olive
    converts it in seconds. Its path has spaces and non-ASCII letters, as users' paths do. Shared
    read-only: a test copies it before writing."""
    from tests.reliability.helpers import make_tiny_model

    shared, lock = _shared("tiny")
    target, done = shared / "modèle ünïcode" / "with space", shared / "built"
    with lock:
        if not done.is_file():
            shutil.rmtree(shared, ignore_errors=True)
            make_tiny_model(demo_model, target)
            done.touch()
    return target


# The tiny Llama's conversions that several files read (each made once per run, shared read-only,
# not tuned): name -> (precision, INT4 algorithm, embeddings quantized too)
TINY_CONVERSIONS = {"fp32": ("fp32", None, False), "int8": ("int8", None, False),
                    "int4-rtn": ("int4", "rtn", False), "int4-rtn-embeddings": ("int4", "rtn", True)}


@pytest.fixture(scope="session")
def tiny_converted(tiny_llama: Path):
    """``tiny_converted(name)``: the tiny Llama converted as ``TINY_CONVERSIONS[name]`` says, made
    once per run by whichever worker asks first. Shared read-only: a test copies it to write."""
    from dataclasses import replace

    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
    from wizard_steps.core.events import Finished

    def converted(name: str) -> Path:
        precision, algorithm, embeddings = TINY_CONVERSIONS[name]
        shared, lock = _shared(f"tiny-{name}")
        with lock:
            if not (shared / "genai_config.json").is_file():
                int4 = Int4Settings(algorithm=Int4Algorithm(algorithm), quantize_embeddings=embeddings) \
                    if algorithm else None
                plan = convert.make_plan(tiny_llama, shared, Precision(precision), int4=int4)
                final = list(convert.convert(replace(plan, tune=False)))[-1]
                assert isinstance(final, Finished), final
        return shared

    return converted


_FIRST_ITEM: list[pytest.Item] = []  # the first test this process sets up


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _FIRST_ITEM:
        _FIRST_ITEM.append(item)


@pytest.fixture(scope="session", autouse=True)
def _shared_conversions_start_together(request: pytest.FixtureRequest) -> None:
    """With two workers or more, each starts one of the shared conversions as the run begins,
    side by side, so that no worker sits waiting on another's lock later: first the ones its own
    first test needs, else one that no other worker has started. Which file a worker gets first is
    xdist's choice; a fixed worker-to-conversion map made the worker given ``test_convert.py`` (it
    needs the INT4) convert the INT8 first and then wait on the other's INT4 (90 s of a 2-worker
    run idle). A run that needs neither (the quick loop, one test) converts nothing."""
    if "PYTEST_XDIST_WORKER" not in os.environ or not _FIRST_ITEM:
        return
    wanted = [name for name in SHARED_CONVERSIONS
              if any(name in getattr(item, "fixturenames", ()) for item in request.session.items)]
    first_needs = [name for name in wanted if name in getattr(_FIRST_ITEM[0], "fixturenames", ())]
    if first_needs:
        return  # the first test's own setup converts them, under their locks
    for name in reversed(wanted):  # the INT8 first: the longest-first files open with the INT4's
        shared, lock = _shared(SHARED_CONVERSIONS[name])
        if (shared / "genai_config.json").is_file():
            continue
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another worker is converting it
        lock.release()
        request.getfixturevalue(name)
        return


@pytest.fixture(autouse=True)
def _no_measuring_on_arrival(monkeypatch: pytest.MonkeyPatch) -> None:
    """The precision step measures INT4 and INT8 on arrival, as the default road does (minutes on
    the demo). Tests of other things open that step without it; the tests of the measurement turn
    it back on (tests/tui/test_precision_screen.py)."""
    from tui.screens.precision import PrecisionScreen

    monkeypatch.setattr(PrecisionScreen, "AUTO_MEASURE", ())


# The files that take longest (measured with --durations on 2 cores, 2026-12-03), started first and
# longest first so that the workers finish together. The first opens with the demo's INT4 (its
# worker converts it), the second needs neither shared conversion (its worker converts the INT8
# meanwhile: above).
LONGEST_FIRST = (
    "tests/test_convert.py", "tests/test_quarot_reach.py", "tests/test_quality.py",
    "tests/tui/test_benchmark_screen.py", "tests/reliability/test_faults.py", "tests/test_tune.py",
    "tests/tui/test_precision_screen.py", "tests/reliability/test_soak.py", "tests/test_compare.py",
    "tests/test_adapter.py", "tests/test_plain.py", "tests/tui/test_benchmark_fix.py",
    "tests/tui/test_convert_screen.py", "tests/tui/test_tune_screen.py", "tests/test_evaluation.py",
    "tests/test_cli.py", "tests/tui/test_chat_screen.py", "tests/tui/test_deploy_screen.py",
    "tests/test_deploy.py", "tests/test_model_source.py", "tests/tui/test_walkthrough.py",
    "tests/tui/test_template_screen.py",
    "tests/tui/test_app.py", "tests/test_engine.py", "tests/tui/test_browser.py", "tests/test_engine_foundry.py",
    "tests/reliability/test_bad_input_matrix.py", "tests/test_source_model.py", "tests/test_i18n.py",
    "tests/tui/test_i18n_screens.py", "tests/tui/test_snapshots.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()
        return rank.get(path, len(rank))

    items.sort(key=place)  # stable: each file's tests keep their order
