"""Faults: Olive killed with SIGKILL, Ctrl+C and cancel during conversion, deployment and a
benchmark, a full output disk, a read-only Foundry cache, two deployments at once. After each:
no partial folder, the registry valid JSON holding every earlier model, and the next run of the
same step succeeds.

Cancelling a conversion through its Event is tested in test_convert
(test_cancelled_conversion_leaves_no_output_folder), cancelling a deploy mid-copy and closing
its generator after registration in test_deploy; the cases here add what comes after a fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.fs_faults import private_disk_prefix, unwritable
from tests.genai_helpers import generate
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
from wizard_steps.core import paths
from wizard_steps.core.events import Failed, Finished, Progress
from wizard_steps.deployment import deploy
from wizard_steps.measurement import benchmark
from wizard_steps.prompt.templates import ModelConfig
from wizard_steps.runtime.engine import GenaiBackend

from .helpers import CHATML, registered_ids, registry_bytes, seed_home

pytestmark = pytest.mark.slow
RTN = Int4Settings(algorithm=Int4Algorithm.RTN)
HANG = 1200  # seconds: a limit that only a hang reaches, on however slow a CPU
ROOT = Path(__file__).parents[2]


def one_sentence(text: str) -> None:
    assert text.strip() and "\n" not in text and "Traceback" not in text, text


def last(events: Iterator) -> object:
    final = None
    for final in events:  # noqa: B007 - the last one is the result
        pass
    return final


def leftovers(out: Path) -> list[str]:
    """The output folder and any staging folder beside it."""
    return sorted(p.name for p in out.parent.iterdir() if p.name == out.name or
                  p.name.startswith(f".{out.name}."))


def olive_runs_left() -> list[str]:
    folder = paths.olive_cache_dir()
    return sorted(p.name for p in folder.iterdir() if p.name != "rerun") if folder.exists() else []


def olive_worker() -> psutil.Process:
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "wizard_steps.conversion._olive_worker" in child.cmdline():
                return child
    raise AssertionError("no Olive worker is running")


def slmops(*args: str, home: Path) -> subprocess.Popen:
    """``slmops ARGS`` as a user starts it in a terminal: its own process group (Ctrl+C reaches
    the group), progress on stderr."""
    env = {**os.environ, "SLMOPS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tui", *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def ctrl_c_when(process: subprocess.Popen, marker: str, timeout: float = HANG) -> tuple[str, str]:
    """Send SIGINT to the process group (what Ctrl+C does) once ``marker`` shows in its stderr."""
    assert process.stderr is not None and process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            os.killpg(process.pid, signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen)
    out, err = process.communicate(timeout=HANG)
    return out, "".join(seen) + err


# --- conversion ------------------------------------------------------------------------------------


def test_olive_killed_with_sigkill_fails_in_one_sentence_and_the_next_run_succeeds(
        tiny_model: Path, tmp_path: Path, tmp_home: Path) -> None:
    seed_home(tmp_home)
    registry = registry_bytes(paths.foundry_cache_dir())
    out = tmp_path / "sortie ünï"
    plan = convert.make_plan(tiny_model, out, Precision.INT4, int4=RTN)
    events, killed = [], None
    for event in convert.convert(plan):
        events.append(event)
        if killed is None and isinstance(event, Progress) and event.stage.startswith("Running pass"):
            killed = olive_worker()
            killed.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
    assert killed is not None
    final = events[-1]
    assert isinstance(final, Failed) and not final.cancelled, final
    one_sentence(final.reason)
    assert "killed" in final.reason or "signal" in final.reason, final.reason
    assert not killed.is_running() or killed.status() == psutil.STATUS_ZOMBIE
    assert leftovers(out) == [] and olive_runs_left() == []
    assert registry_bytes(paths.foundry_cache_dir()) == registry
    again = last(convert.convert(plan))
    assert isinstance(again, Finished), again
    assert generate(out, new_tokens=4)[0] >= 1


def test_ctrl_c_during_a_cli_conversion_leaves_nothing_and_the_next_run_succeeds(
        tiny_model: Path, tmp_path: Path, tmp_home: Path) -> None:
    out = tmp_path / "out"
    args = ("convert", str(tiny_model), "--precision", "int4", "--int4-algo", "rtn", "--out", str(out))
    process = slmops(*args, home=tmp_home)
    _, err = ctrl_c_when(process, "Running pass")
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err.splitlines()[-1], err
    assert leftovers(out) == [] and olive_runs_left() == []
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(
        p.info["cmdline"] or [])], "the Olive worker outlived Ctrl+C"
    again = slmops(*args, "--json", home=tmp_home)
    stdout, stderr = again.communicate(timeout=HANG)
    assert again.returncode == 0, stderr
    assert json.loads(stdout)["output_dir"] == str(out)


def test_a_full_output_disk_fails_in_one_sentence_and_the_next_run_succeeds(
        tiny_model: Path, tmp_path: Path, tmp_home: Path) -> None:
    # The tiny model's INT4 folder is 18 MB; the disk has 4 MB free. The conversion runs in a child
    # with a private mount namespace, where root or, through a user namespace, anyone may mount.
    prefix = private_disk_prefix(tmp_path / "probe")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    done = subprocess.run([*prefix, sys.executable, "-m", "tests.reliability.full_disk",
                           str(tiny_model), str(disk), "4"],
                          capture_output=True, text=True, cwd=ROOT, timeout=HANG)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["full"] == "Failed", seen
    one_sentence(seen["reason"])
    assert "No space left on device" in seen["reason"]
    assert seen["free_before"] < 5 * 1024 * 1024, seen  # the disk was full indeed
    assert seen["left_on_disk"] == [] and seen["grown_bytes"] < 64 * 1024, seen
    assert seen["olive_runs_left"] == [], seen
    assert seen["again"] == "Finished", seen
    assert seen["generated"] >= 1, seen


# --- deployment --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SLMOPS_HOME of the deployment faults; its Foundry cache is ``cache``."""
    return tmp_path_factory.mktemp("faults-home")


@pytest.fixture(scope="module")
def cache(home: Path, demo_int4: Path) -> Path:
    """A Foundry cache holding an earlier deployment, which every fault must leave in place."""
    folder = home / "data" / "foundry"
    done = deploy.finish(deploy.deploy(demo_int4, "earlier", CHATML, ModelConfig(), cache_dir=folder))
    assert done.result.model_id == "earlier:1"
    return folder


def assert_intact(cache: Path, ids: list[str]) -> None:
    """The registry is valid JSON listing exactly ``ids``, each with its folder, and no staging."""
    assert registered_ids(cache) == sorted(ids)
    assert sorted(m.id for m in deploy.list_deployed(cache)) == sorted(ids)
    assert all(m.path.is_dir() for m in deploy.list_deployed(cache))
    assert not [p for p in (cache / deploy.MANAGED_DIR).rglob(".*") if "staging" in p.name]


@pytest.mark.parametrize("when", ["Copying ", "Registering ", "Loading the model"])
def test_cancel_during_a_deployment_keeps_earlier_models_and_the_next_deploy_succeeds(
        when: str, cache: Path, demo_int4: Path) -> None:
    ids, before = registered_ids(cache), registry_bytes(cache)
    name = "cancel-" + when.split()[0].lower()
    stop = threading.Event()
    final = None
    for final in deploy.deploy(demo_int4, name, CHATML, ModelConfig(), cache_dir=cache, cancel=stop):
        if isinstance(final, Progress) and final.stage.startswith(when):
            stop.set()
    assert isinstance(final, Failed) and final.cancelled, final
    one_sentence(final.reason)
    assert registry_bytes(cache) == before
    assert not (cache / deploy.MANAGED_DIR / name).exists()
    assert_intact(cache, ids)
    done = deploy.finish(deploy.deploy(demo_int4, name, CHATML, ModelConfig(), cache_dir=cache))
    assert done.result.model_id == f"{name}:1" and done.result.proof_reply
    assert_intact(cache, [*ids, f"{name}:1"])


def test_ctrl_c_during_a_cli_deploy_leaves_no_trace_and_the_next_deploy_succeeds(
        home: Path, cache: Path, demo_int4: Path) -> None:
    ids, before = registered_ids(cache), registry_bytes(cache)
    process = slmops("deploy", str(demo_int4), "--name", "interrupted", home=home)
    _, err = ctrl_c_when(process, "Loading the model")
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    assert registry_bytes(cache) == before
    assert not (cache / deploy.MANAGED_DIR / "interrupted").exists()
    assert_intact(cache, ids)
    again = slmops("deploy", str(demo_int4), "--name", "interrupted", "--json", home=home)
    stdout, stderr = again.communicate(timeout=HANG)
    assert again.returncode == 0, stderr
    assert json.loads(stdout)["model_id"] == "interrupted:1"
    assert_intact(cache, [*ids, "interrupted:1"])


def test_a_read_only_cache_is_refused_and_the_next_deploy_succeeds(cache: Path, demo_int4: Path) -> None:
    ids, before = registered_ids(cache), registry_bytes(cache)
    with unwritable(cache):
        final = last(deploy.deploy(demo_int4, "read-only", CHATML, ModelConfig(), cache_dir=cache))
        assert registry_bytes(cache) == before
    assert isinstance(final, Failed), final
    one_sentence(final.reason)
    assert "cannot be written" in final.reason
    assert_intact(cache, ids)
    done = deploy.finish(deploy.deploy(demo_int4, "read-only", CHATML, ModelConfig(), cache_dir=cache))
    assert done.result.model_id == "read-only:1"
    assert_intact(cache, [*ids, "read-only:1"])


def test_two_cli_deploys_of_one_name_at_once_give_two_versions_or_one_clear_refusal(
        home: Path, cache: Path, demo_int4: Path) -> None:
    ids = registered_ids(cache)
    runs = [slmops("deploy", str(demo_int4), "--name", "same", "--json", home=home) for _ in range(2)]
    outputs = [run.communicate(timeout=HANG) for run in runs]
    results = [(run.returncode, out, err) for run, (out, err) in zip(runs, outputs, strict=True)]
    won = [json.loads(out)["model_id"] for code, out, _ in results if code == 0]
    for code, _, err in results:
        if code != 0:
            assert code == 1, err
            message = err.strip().splitlines()[-1]
            assert message.startswith("slmops: ") and "Traceback" not in err, err
            one_sentence(message)
    assert won and len(set(won)) == len(won), results
    assert_intact(cache, [*ids, *won])
    listed = subprocess.run([sys.executable, "-m", "tui", "list", "--json"], cwd=ROOT, text=True,
                            capture_output=True, env={**os.environ, "SLMOPS_HOME": str(home)})
    assert sorted(m["id"] for m in json.loads(listed.stdout)) == registered_ids(cache)


def test_a_failed_deploy_keeps_a_model_another_process_registered_meanwhile(
        home: Path, cache: Path, demo_int4: Path) -> None:
    """A deploy that fails puts the registry back as it found it, except for what others added."""
    ids = registered_ids(cache)
    stop = threading.Event()
    mine = deploy.deploy(demo_int4, "mine", CHATML, ModelConfig(), cache_dir=cache, cancel=stop)
    assert isinstance(next(mine), Progress)  # started: it holds the registry as it was
    other = slmops("deploy", str(demo_int4), "--name", "theirs", "--json", home=home)
    _, stderr = other.communicate(timeout=HANG)
    assert other.returncode == 0, stderr
    stop.set()
    final = last(mine)
    assert isinstance(final, Failed) and final.cancelled
    assert_intact(cache, [*ids, "theirs:1"])


# --- benchmark --------------------------------------------------------------------------------------


def test_cancel_during_a_benchmark_gives_a_summary_of_what_was_measured(demo_int4: Path) -> None:
    backend = GenaiBackend(demo_int4, CHATML)
    plan = benchmark.BenchPlan(lengths=(16, 64), new_tokens=16, runs=5, warmup=1)
    stop = threading.Event()
    measured, summary = 0, None
    for event in benchmark.run(backend, plan, "demo", cancel=stop):
        if isinstance(event, benchmark.BenchSample) and not event.warmup:
            measured += 1
        if isinstance(event, Progress) and measured == 3:
            stop.set()  # mid-generation of the fourth run
        if isinstance(event, benchmark.BenchSummary):
            summary = event
    assert summary is not None
    assert [(row.length, row.runs) for row in summary.per_length] == [(16, 3)]
    assert all(s.generated_tokens == 16 for s in summary.samples)
    assert summary.leak.leak is None  # too few runs to judge, and it says so
    again = last(benchmark.run(backend, benchmark.BenchPlan((16, 64), 16, 2, 1), "demo"))
    assert isinstance(again, benchmark.BenchSummary)
    assert [(row.length, row.runs) for row in again.per_length] == [(16, 2), (64, 2)]

