"""Tuning the thread setting of a converted folder for this machine (no timing assertions)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from tests.genai_helpers import generate
from wizard_steps import tune
from wizard_steps.templates import get_preset

pytestmark = pytest.mark.slow
CHATML = get_preset("chatml").template


@pytest.fixture
def folder(demo_int4: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "int4"
    shutil.copytree(demo_int4, copy)
    return copy


def run(folder: Path, **kwargs) -> tune.TuneResult:
    events = list(tune.measure(folder, CHATML, lengths=(32,), focus_length=32, new_tokens=8,
                               runs=1, **kwargs))
    assert isinstance(events[-1], tune.TuneResult)
    return events[-1]


def test_tuning_writes_a_setting_that_loads_and_never_exceeds_the_cpus(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    result = run(folder)
    assert {c.label for c in tune.candidates()} == set(result.speeds)
    threads = tune.current_candidate(folder).threads
    assert threads is None or 1 <= threads <= tune.usable_cpus()
    if result.changed:
        assert tune.current_candidate(folder) == result.best
        assert (folder / tune.BACKUP_NAME).read_bytes() == original
    else:
        assert (folder / "genai_config.json").read_bytes() == original
    count, text = generate(folder, new_tokens=20)
    assert count == 20 and text.strip()


def test_undo_restores_the_original_bytes(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    tune.apply(folder, tune.Candidate(1))
    assert tune.current_candidate(folder).threads == 1
    tune.apply(folder, tune.Candidate(2 if tune.usable_cpus() > 1 else 1))
    assert tune.undo(folder) is True
    assert (folder / "genai_config.json").read_bytes() == original
    assert tune.undo(folder) is False


def test_cancelled_tuning_leaves_the_file_untouched(folder: Path) -> None:
    original = (folder / "genai_config.json").read_bytes()
    stop = threading.Event()
    for event in tune.measure(folder, CHATML, lengths=(32,), focus_length=32, new_tokens=8,
                              runs=1, cancel=stop):
        if isinstance(event, tune.TuneSample):
            stop.set()
    assert (folder / "genai_config.json").read_bytes() == original
    assert not (folder / tune.BACKUP_NAME).exists()


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


def test_unwritable_config_is_a_clear_error(folder: Path) -> None:
    import subprocess

    path = folder / "genai_config.json"
    subprocess.run(["chattr", "+i", str(path)], check=False)
    try:
        writable = True
        try:
            path.open("r+b").close()
        except OSError:
            writable = False
        if writable:
            pytest.skip("cannot make a file read-only here (root without chattr)")
        before = path.read_bytes()
        with pytest.raises(tune.TuneError, match="cannot be written"):
            tune.apply(folder, tune.Candidate(1))
        assert path.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_tuned_folder_deployed_to_foundry_loads_and_answers(folder: Path, tmp_path: Path) -> None:
    from wizard_steps.deploy import deploy, finish
    from wizard_steps.generation import ModelConfig

    tune.apply(folder, tune.Candidate(tune.usable_cpus()))
    done = finish(deploy(folder, "tuned", CHATML, ModelConfig(temperature=0.0),
                         cache_dir=tmp_path / "foundry"))
    deployed = json.loads((Path(done.details["path"]) / "genai_config.json").read_text())
    assert deployed["model"]["decoder"]["session_options"]["intra_op_num_threads"] == tune.usable_cpus()
    assert str(done.details["proof_reply"]).strip()
