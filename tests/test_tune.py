"""Tuning the thread setting of a converted folder for this machine: the full search (slmops
tune) and the short one on the default road (convert's last stage). No timing assertions: where a
test needs the "faster" branch, it sets the keep margin so that any measured speed qualifies."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.genai_helpers import drain, generate
from tests.reliability.helpers import make_tiny_model
from wizard_steps.core.events import Finished, LogLine, Progress
from wizard_steps.measurement import tune, tune_quick
from wizard_steps.measurement.tune_quick import QuickTune
from wizard_steps.prompt.templates import get_preset

pytestmark = pytest.mark.slow
CHATML = get_preset("chatml").template


@pytest.fixture
def folder(demo_int4: Path, tmp_path: Path) -> Path:
    """The demo INT4 as Olive wrote it (the shared one went through the default road's tuning)."""
    copy = tmp_path / "int4"
    shutil.copytree(demo_int4, copy)
    tune.undo(copy)
    return copy


def run(folder: Path, **kwargs) -> tune.TuneResult:
    events = list(tune.measure(folder, CHATML, lengths=(32,), focus_length=32, new_tokens=8,
                               runs=1, **kwargs))
    assert isinstance(events[-1], tune.TuneResult)
    return events[-1]


def test_tuning_writes_a_setting_that_loads_and_never_exceeds_the_cpus(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = (folder / "genai_config.json").read_bytes()
    cpus = tune.usable_cpus()
    assert all(c.threads is None or 1 <= c.threads <= cpus for c in tune.candidates())
    # The real search keeps or changes the setting as this CPU measures; either way the file
    # holds exactly what the result reports.
    result = run(folder)
    assert {c.label for c in tune.candidates()} == set(result.speeds)
    assert tune.current_candidate(folder) == result.best
    if result.changed:
        assert (folder / tune.BACKUP_NAME).read_bytes() == original
        assert tune.recorded(folder) == {"threads": result.best.threads, "spinning": result.best.spinning,
                                         "gain": round(result.gain, 2)}
    else:
        assert result.best == result.current == tune.Candidate(None)
        assert (folder / "genai_config.json").read_bytes() == original
        assert not (folder / tune.BACKUP_NAME).exists() and tune.recorded(folder) is None
    # A write that must happen: no setting is x101 faster than another, so the near tie goes to
    # the usable core count, which the file as Olive wrote it (onnxruntime's default) is not.
    tune.undo(folder)
    monkeypatch.setattr(tune, "KEEP_MARGIN", 100.0)
    written = run(folder)
    assert written.changed and written.current == tune.Candidate(None)
    assert tune.current_candidate(folder) == written.best == tune.Candidate(cpus)
    options = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["session_options"]
    assert options["intra_op_num_threads"] == cpus and tune.SPIN_KEY not in options
    assert (folder / tune.BACKUP_NAME).read_bytes() == original
    assert tune.recorded(folder) == {"threads": cpus, "spinning": True, "gain": round(written.gain, 2)}
    assert generate(folder, new_tokens=20)[0] == 20  # the written file loads and generates


def test_a_near_tie_goes_to_the_usable_core_count(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "KEEP_MARGIN", 100.0)  # no setting is x101 faster: every result is a tie
    result = run(folder)
    assert result.best == tune.Candidate(tune.usable_cpus()) and result.current == tune.Candidate(None)
    assert result.changed and tune.current_candidate(folder) == tune.Candidate(tune.usable_cpus())
    assert run(folder).changed is False  # already there: nothing to write


def test_undo_restores_the_original_bytes(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    tune.apply(folder, tune.Candidate(1))
    assert tune.current_candidate(folder).threads == 1
    tune.apply(folder, tune.Candidate(2 if tune.usable_cpus() > 1 else 1))
    assert tune.undo(folder) is True
    assert (folder / "genai_config.json").read_bytes() == original
    assert tune.undo(folder) is False


def test_cancelled_tuning_stops_and_leaves_the_file_untouched(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    stop = threading.Event()
    events = []
    for event in tune.measure(folder, CHATML, lengths=(32,), focus_length=32, new_tokens=8,
                              runs=2, cancel=stop):
        events.append(event)
        if isinstance(event, tune.TuneSample):
            stop.set()
    samples = [e for e in events if isinstance(e, tune.TuneSample)]
    assert len(samples) == 1  # nothing measured after the cancel
    assert not any(isinstance(e, tune.TuneResult) for e in events)
    assert (folder / "genai_config.json").read_bytes() == original
    assert not (folder / tune.BACKUP_NAME).exists() and not (folder / tune.RECORD_NAME).exists()


@pytest.mark.parametrize("damage", ["missing", "broken"])
def test_missing_or_broken_config_is_a_clear_error(folder: Path, damage: str) -> None:
    path = folder / "genai_config.json"
    if damage == "missing":
        path.unlink()
    else:
        path.write_text("{not json")
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(tune.TuneError, match="no genai_config.json|is broken"):
        next(tune.measure(folder, CHATML))
    assert sorted(p.name for p in folder.iterdir()) == before


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """The folder and its files made unwritable: chmod for an ordinary user, chattr +i as root
    (chmod does not stop root)."""
    if sys.platform == "win32":
        pytest.skip("read-only folders are tested on POSIX only (chmod and chattr)")
    paths = [folder, *folder.iterdir()]
    as_root = os.geteuid() == 0
    if as_root:
        chattr = shutil.which("chattr")
        if not chattr or subprocess.run([chattr, "-R", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("tests run as root, where chmod does not stop writes, and chattr +i "
                        "(immutable) is not available on this file system")
    else:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
        else:
            for path in paths:
                path.chmod(0o755 if path.is_dir() else 0o644)


def test_unwritable_config_is_a_clear_error(folder: Path) -> None:
    path = folder / "genai_config.json"
    before = path.read_bytes()
    with read_only(folder):
        with pytest.raises(tune.TuneError, match="cannot be written"):
            tune.apply(folder, tune.Candidate(1))
        with pytest.raises(tune.TuneError, match="cannot be written"):
            next(tune.measure(folder, CHATML))
        result = drain(tune_quick.quick(folder))
    assert path.read_bytes() == before
    assert not (folder / tune.BACKUP_NAME).exists()
    assert result.applied is False and "cannot be written" in str(result.error)


def test_tuned_folder_deployed_to_foundry_loads_and_answers(folder: Path, tmp_path: Path) -> None:
    from wizard_steps.deployment.deploy import deploy, finish
    from wizard_steps.prompt.generation import ModelConfig

    tune.apply(folder, tune.Candidate(tune.usable_cpus()))
    done = finish(deploy(folder, "tuned", CHATML, ModelConfig(temperature=0.0),
                         cache_dir=tmp_path / "foundry"))
    deployed = json.loads((Path(done.result.path) / "genai_config.json").read_text())
    assert deployed["model"]["decoder"]["session_options"]["intra_op_num_threads"] == tune.usable_cpus()
    assert done.result.proof_reply.strip()


def test_deploying_a_folder_never_tuned_tunes_its_copy_and_not_the_folder(folder: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from wizard_steps.deployment.deploy import deploy, finish
    from wizard_steps.prompt.generation import ModelConfig

    assert tune_quick.needs_tuning(folder)  # as Olive wrote it: onnxruntime's default threads
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.stat().st_size < 10**7}
    monkeypatch.setattr(tune, "KEEP_MARGIN", 1.0)  # any measured speed is enough for the core count
    monkeypatch.setattr(tune, "SLEEP_MARGIN", 100.0)  # and sleeping threads never x101 faster
    events = list(deploy(folder, "untuned", CHATML, ModelConfig(temperature=0.0), cache_dir=tmp_path / "foundry"))
    done = events[-1]
    assert isinstance(done, Finished), done
    copy = Path(done.result.path)
    tuned = done.result.tuned
    assert tuned is not None and tuned.applied is True and tuned.threads == tune.usable_cpus()
    assert tune.current_candidate(copy) == tune.Candidate(tune.usable_cpus())
    assert not tune_quick.needs_tuning(copy) and done.result.proof_reply.strip()
    assert any("deployed copy is tuned for this machine" in e.text for e in events if isinstance(e, LogLine))
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.stat().st_size < 10**7}
    assert after == before  # the user's folder: not a byte changed, no backup or record added
    # with the tuning turned off, the copy keeps the folder's setting and nothing is measured
    off = finish(deploy(folder, "untuned", CHATML, ModelConfig(temperature=0.0), cache_dir=tmp_path / "foundry",
                        tune=False))
    assert off.result.tuned is None
    assert tune.current_candidate(Path(off.result.path)) == tune.current_candidate(folder)


def test_a_measurement_that_kept_the_setting_is_recorded_so_it_is_not_repeated(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = (folder / "genai_config.json").read_bytes()
    monkeypatch.setattr(tune, "KEEP_MARGIN", -100.0)  # the core count would need x101: the setting is kept
    monkeypatch.setattr(tune, "SLEEP_MARGIN", 100.0)  # and so would sleeping threads
    result = drain(tune_quick.quick(folder))
    assert result.applied is False and result.tuned_tokens_per_s > 0
    assert (folder / "genai_config.json").read_bytes() == original and not (folder / tune.BACKUP_NAME).exists()
    assert not tune_quick.needs_tuning(folder)
    note = json.loads((folder / tune.RECORD_NAME).read_text())
    assert note["cpus"] == tune.usable_cpus() and note["threads"] is None
    note["cpus"] = tune.usable_cpus() + 6  # measured on another machine: measure again here
    (folder / tune.RECORD_NAME).write_text(json.dumps(note))
    assert tune_quick.needs_tuning(folder)
    note["cpus"] = tune.usable_cpus()
    (folder / tune.RECORD_NAME).write_text(json.dumps(note))
    assert not tune_quick.needs_tuning(folder)
    # undo forgets a measurement that changed nothing: the folder is as Olive wrote it again
    assert tune.undo(folder) is False and not (folder / tune.RECORD_NAME).exists()
    assert (folder / "genai_config.json").read_bytes() == original and tune_quick.needs_tuning(folder)


def test_sleeping_threads_are_written_where_they_win_and_foundry_local_runs_them(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wizard_steps.deployment.deploy import deploy, finish
    from wizard_steps.prompt.generation import ModelConfig

    original = (folder / "genai_config.json").read_bytes()
    monkeypatch.setattr(tune, "SLEEP_MARGIN", -100.0)  # any measured speed is enough for sleeping threads
    result = drain(tune_quick.quick(folder))
    assert result.applied is True and result.spinning is False and result.threads == tune.usable_cpus()
    options = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["session_options"]
    assert options[tune.SPIN_KEY] == "0" and options["intra_op_num_threads"] == tune.usable_cpus()
    assert tune.current_candidate(folder) == tune.Candidate(tune.usable_cpus(), spinning=False)
    assert tune.recorded(folder) == {"threads": tune.usable_cpus(), "spinning": False, "gain": result.gain}
    assert not tune_quick.needs_tuning(folder)
    assert tune_quick.describe(result).startswith(
        f"tuned for this machine: {tune.Candidate(tune.usable_cpus()).label}, no spin-wait")
    count, text = generate(folder, new_tokens=12)
    assert count == 12 and text.strip()
    # Foundry Local's own runtime (onnxruntime-genai-core) takes the key too: the deployed copy loads and answers
    done = finish(deploy(folder, "sleeping", CHATML, ModelConfig(temperature=0.0), cache_dir=tmp_path / "foundry"))
    deployed = json.loads((Path(done.result.path) / "genai_config.json").read_text())
    assert deployed["model"]["decoder"]["session_options"][tune.SPIN_KEY] == "0"
    assert done.result.proof_reply.strip()
    # a full search knows the setting as one of its candidates and undo takes it away
    assert tune.Candidate(tune.usable_cpus(), spinning=False) in tune.candidates()
    assert tune.undo(folder) is True and (folder / "genai_config.json").read_bytes() == original


DETAIL_KEYS = {"threads", "spinning", "tried", "gain", "applied", "cancelled"}


def test_short_tuning_keeps_the_faster_under_the_5_percent_rule(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    result = drain(tune_quick.quick(folder))
    assert DETAIL_KEYS <= set(result.to_json()) and result.tried == tune.usable_cpus()
    assert result.default_tokens_per_s > 0 and result.tuned_tokens_per_s > 0
    assert result.gain == pytest.approx(result.tuned_tokens_per_s / result.default_tokens_per_s, rel=0.02)
    assert result.applied is (result.gain >= 1 - tune.KEEP_MARGIN)  # unless the default is 5 % faster
    if result.applied:  # the core count, its idle threads spin-waiting or (5 % faster still) sleeping
        assert tune.current_candidate(folder) == tune.Candidate(tune.usable_cpus(), result.spinning)
        assert result.threads == tune.usable_cpus()
        assert (folder / tune.BACKUP_NAME).read_bytes() == original
        assert tune.recorded(folder) == {"threads": result.threads, "spinning": result.spinning,
                                         "gain": result.gain}
    else:
        assert (folder / "genai_config.json").read_bytes() == original and result.threads is None
    count, text = generate(folder, new_tokens=12)
    assert count == 12 and text.strip()


def test_short_tuning_stops_once_no_single_round_could_change_the_choice() -> None:
    """Rounds whose medians choose the same with any one round left out end the measurement, one
    outlier among them included; a choice at the rule's edge, or rounds split two ways, keep it
    going to QUICK_ROUNDS' most or the budget."""
    current, tried, calm = tune.Candidate(None), tune.Candidate(2), tune.Candidate(2, spinning=False)
    agree = {current: [100.0, 101.0, 99.0], tried: [120.0, 118.0, 122.0], calm: [90.0, 91.0, 89.0]}
    assert tune_quick._choose({c: v[0] for c, v in agree.items()}, current, tried, calm) == tried
    assert tune_quick._decided(agree, current, tried, calm)
    outlier = {**agree, tried: [120.0, 90.0, 122.0]}  # round 2 alone would keep the current setting
    assert tune_quick._choose({c: v[1] for c, v in outlier.items()}, current, tried, calm) == current
    assert tune_quick._decided(outlier, current, tried, calm)
    split = {**agree, tried: [120.0, 90.0, 91.0, 122.0]}  # two rounds each way: one more could decide
    split[current], split[calm] = [100.0, 101.0, 99.0, 100.0], [90.0, 91.0, 89.0, 90.0]
    assert not tune_quick._decided(split, current, tried, calm)
    edge = {**agree, tried: [95.0, 94.0, 96.0]}  # the core count within a round's noise of 5 % slower
    assert not tune_quick._decided(edge, current, tried, calm)
    sleeping = {**agree, calm: [119.0, 126.0, 127.0]}  # sleeping threads at the edge of beating the core count
    assert not tune_quick._decided(sleeping, current, tried, calm)
    assert not tune_quick._decided({current: [100.0], tried: [120.0], calm: [90.0]}, current, tried, calm)
    assert not tune_quick._decided({current: [], tried: [], calm: []}, current, tried, calm)


def test_short_tuning_cancelled_leaves_the_file_untouched(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    stop = threading.Event()
    events = tune_quick.quick(folder, cancel=stop)
    while True:
        try:
            event = next(events)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(event, Progress):  # the measurement has begun
            stop.set()
    assert result.cancelled is True and result.applied is False
    assert result.tuned_tokens_per_s is None
    assert (folder / "genai_config.json").read_bytes() == original
    assert not (folder / tune.BACKUP_NAME).exists()
    assert "cancelled" in tune_quick.describe(result)


@pytest.fixture(scope="module")
def tiny_conversions(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """A tiny model converted on the default road (any measured speed kept, so the tuned branch
    runs whatever this machine's speed) and with the tuning off."""
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision

    root = tmp_path_factory.mktemp("tiny-tune")
    model = make_tiny_model(demo_model, root / "tiny")
    finished: dict[str, Finished] = {}
    for name in ("road", "no-tune"):
        plan = convert.make_plan(model, root / name, Precision.INT4,
                                 int4=Int4Settings(algorithm=Int4Algorithm.RTN))
        if name == "no-tune":
            plan = replace(plan, tune=False)
        assert plan.tune is (name == "road")  # the default road tunes
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tune, "KEEP_MARGIN", 1.0)  # the core count whatever the measurement
            patch.setattr(tune, "SLEEP_MARGIN", 100.0)  # its threads spin-waiting
            events = list(convert.convert(plan))
        assert isinstance(events[-1], Finished), events[-1]
        finished[name] = events[-1]
        finished[name + "-logs"] = [e for e in events if isinstance(e, LogLine)]  # type: ignore[assignment]
    return finished


def test_default_road_leaves_a_tuned_config_that_loads_and_generates(tiny_conversions) -> None:
    done, plain = tiny_conversions["road"], tiny_conversions["no-tune"]
    tuned = done.result.tuned
    assert tuned is not None and tuned.applied is True and tuned.cancelled is False
    assert tuned.threads == tuned.tried == tune.usable_cpus() and tuned.gain > 0
    assert DETAIL_KEYS <= set(tuned.to_json())
    assert tune.current_candidate(done.path) == tune.Candidate(tune.usable_cpus())
    # the undo backup is Olive's own file: the same bytes as the conversion without tuning
    assert (done.path / tune.BACKUP_NAME).read_bytes() == (plain.path / "genai_config.json").read_bytes()
    assert tune.recorded(done.path) == {"threads": tuned.threads, "spinning": True, "gain": tuned.gain}
    assert any("Tuning:" in line.text for line in tiny_conversions["road-logs"])
    assert tune_quick.describe(tuned).startswith("tuned for this machine: ")
    count, _text = generate(done.path, new_tokens=8)
    assert count == 8
    assert tune.undo(done.path) is True
    assert (done.path / "genai_config.json").read_bytes() == (plain.path / "genai_config.json").read_bytes()
    assert tune.recorded(done.path) is None and not (done.path / tune.RECORD_NAME).exists()


def test_no_tune_leaves_the_config_as_olive_wrote_it(tiny_conversions) -> None:
    plain = tiny_conversions["no-tune"]
    assert plain.result.tuned is None
    assert not (plain.path / tune.BACKUP_NAME).exists() and not (plain.path / tune.RECORD_NAME).exists()
    assert "intra_op_num_threads" not in json.loads((plain.path / "genai_config.json").read_text())[
        "model"]["decoder"].get("session_options", {})
    assert not any("Tuning" in line.text for line in tiny_conversions["no-tune-logs"])


def test_cli_no_tune_flag_and_the_tuning_line(demo_model: Path, tmp_path: Path) -> None:
    model = make_tiny_model(demo_model, tmp_path / "tiny")
    base = [sys.executable, "-m", "tui", "convert", str(model), "--precision", "int4", "--int4-algo", "rtn"]
    env = {**os.environ, "SLMOPS_HOME": str(tmp_path / "home")}
    off = subprocess.run([*base, "--out", str(tmp_path / "off"), "--no-tune", "--json"], capture_output=True,
                         text=True, env=env, timeout=900, stdin=subprocess.DEVNULL)
    assert off.returncode == 0, off.stderr
    assert "tuned" not in json.loads(off.stdout) and not (tmp_path / "off" / tune.BACKUP_NAME).exists()
    # what the conversion was made with, read back from the saved config
    from wizard_steps.conversion.precision import Int4Algorithm, best_settings

    chosen = best_settings(Int4Algorithm.RTN)  # a named algorithm starts from its best settings
    assert json.loads(off.stdout)["int4"] == {"algorithm": "rtn", "block_size": chosen.block_size,
                                              "symmetric": chosen.symmetric}
    assert json.loads(off.stdout)["rotated"] is False
    on = subprocess.run([*base, "--out", str(tmp_path / "on")], capture_output=True, text=True, env=env,
                        timeout=900, stdin=subprocess.DEVNULL)
    assert on.returncode == 0, on.stderr
    line = next(text.strip() for text in on.stdout.splitlines()
                if text.strip().startswith(("tuned for", "not tuned")))
    applied = (tmp_path / "on" / tune.BACKUP_NAME).exists()
    assert line.startswith("tuned for this machine: ") and (" kept (" not in line) is applied, on.stdout
    assert f"INT4: rtn · block {chosen.block_size} · symmetric" in on.stdout and "rotated first" not in on.stdout


def test_answers_key_turns_the_tuning_off() -> None:
    from wizard_steps.road import answers

    assert answers.Answers().tune is True
    assert answers.parse("tune = false\n").tune is False


def test_describe_says_the_setting_and_the_gain() -> None:
    assert tune_quick.describe(QuickTune(threads=2, tried=2, gain=1.4, applied=True)) == (
        "tuned for this machine: 2 threads, x1.40")
    kept = tune_quick.describe(QuickTune(threads=None, tried=2, gain=0.9, applied=False, tuned_tokens_per_s=45.0,
                                         default_tokens_per_s=50.0))
    assert "onnxruntime's default threads kept" in kept and "2 threads was x0.90, more than 5 % slower" in kept
    sleeping = tune_quick.describe(QuickTune(threads=2, spinning=False, tried=2, gain=1.6, applied=True))
    assert sleeping == "tuned for this machine: 2 threads, no spin-wait, x1.60"
    tie = tune_quick.describe(QuickTune(threads=2, tried=2, gain=0.98, applied=True))
    assert tie == "tuned for this machine: 2 threads (x0.98 here, within noise of onnxruntime's default)"
    assert "not tuned" in tune_quick.describe(QuickTune(threads=None, tried=2, gain=1.0, applied=False,
                                                         cancelled=False, error="read-only"))
