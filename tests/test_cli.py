"""The headless command line: help, exit codes, one-sentence errors, the unattended demo."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import main
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings
from wizard_steps.road import answers

COMMANDS = ("check", "convert", "deploy", "list", "remove", "bench", "quality", "chat", "tune", "demo",
            "run")


def slmops(*args: str, home: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if home is not None:
        env["SLMOPS_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "example: slmops" in capsys.readouterr().out


def test_bad_usage_is_exit_2_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["convert", "demo"])  # --precision is required
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--precision" in err


def test_bad_input_is_exit_2_with_one_sentence_and_no_traceback(tmp_path: Path, capsys) -> None:
    code = main(["convert", str(tmp_path / "nope"), "--precision", "int4", "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_check_json_is_machine_readable(capsys) -> None:
    assert main(["check", "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert {c["status"] for c in checks} <= {"ok", "warn", "fail"}
    assert any(c["name"] == "onnxruntime-genai" for c in checks)


def test_unknown_deployed_model_is_exit_2(tmp_home: Path, capsys) -> None:
    assert main(["chat", "never-deployed"]) == 2
    assert "No converted folder or deployed model is called never-deployed" in capsys.readouterr().err


def test_bench_lengths_must_be_numbers(capsys) -> None:
    assert main(["bench", "x", "--lengths", "16,abc"]) == 2
    assert "--lengths" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ("precison = 'int4'\n", "Unknown key 'precison'"),
    ("bench_runs = 'three'\n", "'bench_runs' must be a whole number"),
    ("temperature = 5.0\n", "'temperature' = 5.0 is out of range; allowed: 0 to 2"),
    ("precision = 'int3'\n", "choose one of: auto, fp32, fp16, int8, int4"),
    ("int4_block_size = 48\n", "choose one of: 16, 32, 64, 128, 256"),
])
def test_answers_file_errors_name_the_key_and_the_allowed_values(
        tmp_path: Path, capsys, text: str, message: str) -> None:
    file = tmp_path / "wizard.toml"
    file.write_text(text)
    assert main(["run", "--answers", str(file)]) == 2
    assert message in capsys.readouterr().err


def test_answers_round_trip() -> None:
    original = answers.Answers(model="/m", precision="int8", bench_lengths=[16, 64],
                               temperature=0.0, deploy_name='a "quoted" name')
    assert answers.parse(answers.dump(original)) == original
    named = answers.Answers(int4=Int4Settings(algorithm=Int4Algorithm.QUAROT_GPTQ, block_size=64, symmetric=True))
    written = answers.dump(named)
    assert answers.parse(written) == named  # written settings are kept as written
    assert "\n[int4]" in written and 'algorithm = "quarot_gptq"' in written and "block_size = 64" in written


def test_an_answers_file_with_the_old_flat_int4_keys_still_loads() -> None:
    old = answers.parse('precision = "int4"\nint4_algorithm = "rtn"\n'
                        'int4_block_size = 64\nint4_symmetric = false\n')
    assert old.int4 == Int4Settings(algorithm=Int4Algorithm.RTN, block_size=64, symmetric=False)
    table = answers.parse('precision = "int4"\n[int4]\nalgorithm = "rtn"\nblock_size = 64\nsymmetric = false\n')
    assert table == old
    with pytest.raises(answers.AnswersError, match="'int4.block_size' = 48 is not allowed"):
        answers.parse("[int4]\nblock_size = 48\n")
    with pytest.raises(answers.AnswersError, match="Unknown key 'int4.size'"):
        answers.parse("[int4]\nsize = 48\n")


def test_answers_name_an_int4_algorithm_and_get_its_best_settings() -> None:
    """As on the command line: "auto" (the default) brings its own block size and symmetry; a named
    algorithm without them starts from its best measured ones."""
    assert answers.parse("").int4.algorithm is Int4Algorithm.AUTO
    quarot = answers.parse('[int4]\nalgorithm = "quarot_gptq"\n').int4
    assert (quarot.block_size, quarot.symmetric) == (32, False)
    given = answers.parse('[int4]\nalgorithm = "quarot_gptq"\nblock_size = 16\n').int4
    assert (given.block_size, given.symmetric) == (16, False)
    assert answers.parse('[int4]\nalgorithm = "rtn"\n').int4.block_size == 16


@pytest.mark.slow
def test_demo_runs_the_whole_road_and_reports_json(demo_model: Path, demo_int4: Path, tmp_path: Path) -> None:
    """The whole road in a fresh home. Its conversion was made before with the same settings (the
    session's default INT4, copied where the demo puts it): the demo uses it rather than paying for
    Olive again, and says so; deploy, benchmark and chat run for real."""
    import shutil

    home = tmp_path / "home"
    (home / "cache" / "demo").mkdir(parents=True)
    os.symlink(demo_model, home / "cache" / "demo" / demo_model.name)
    converted = home / "data" / "models" / f"{demo_model.name}-int4-onnx"
    shutil.copytree(demo_int4, converted)
    # a named precision: the default (auto: INT4 and INT8 measured here first) is tested in
    # test_compare.py on a short measurement, as the precision step's is
    done = slmops("demo", "--json", "--precision", "int4", home=home, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["converted"]["precision"] == "int4"
    assert report["converted"]["reused"] is True and Path(report["converted"]["path"]) == converted
    assert "chosen_here" not in report["converted"] and "Measuring" not in done.stderr  # named: not measured
    assert "Converted earlier with the same settings" in done.stderr
    assert Path(report["converted"]["path"], "genai_config.json").is_file()
    assert report["deployed"]["id"] == "smollm2-demo:1"
    assert [row["length"] for row in report["benchmark"]] == [16, 128]
    assert all(row["tokens_per_s"] > 0 for row in report["benchmark"])
    assert report["chat"]["answer"].strip()
    replay = answers.load(report["answers_file"])
    assert replay.deploy_name == "smollm2-demo" and replay.precision == "int4"
    listed = slmops("list", "--json", home=home)
    assert [m["id"] for m in json.loads(listed.stdout)] == ["smollm2-demo:1"]

    # the same road replayed from its answers file with a shorter context: the deployed copy
    # allocates that (genai_config.json), Foundry Local loads it, and the chat step answers through it
    file = tmp_path / "short.toml"
    file.write_text(answers.dump(dataclasses.replace(replay, max_length=1024)), encoding="utf-8")
    again = slmops("run", "--answers", str(file), "--json", home=home, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["chat"]["answer"].strip()
    listed = {m["id"]: m for m in json.loads(slmops("list", "--json", home=home).stdout)}
    genai = json.loads(Path(listed["smollm2-demo:2"]["path"], "genai_config.json").read_text())
    assert genai["model"]["context_length"] == genai["search"]["max_length"] == 1024
    first = json.loads(Path(listed["smollm2-demo:1"]["path"], "genai_config.json").read_text())
    assert first["model"]["context_length"] == first["search"]["max_length"] == 2048  # the default


def test_without_a_terminal_the_wizard_runs_the_demo_the_default_way(monkeypatch, capsys) -> None:
    """No terminal at all (a CI job, a pipe): the unattended demo, precision measured here first."""
    import io

    from tui import cli

    seen: list = []
    monkeypatch.setattr(cli, "cmd_demo", lambda args: seen.append(args) or 0)  # the road itself: test_compare
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert cli.start_wizard(plain=False) == 0
    assert len(seen) == 1 and seen[0].precision == answers.MEASURED and seen[0].json is False
    assert "running the demo unattended" in capsys.readouterr().err
