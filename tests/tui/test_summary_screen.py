"""The Summary screen: where everything is, the commands that repeat the run headless, Finish."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static, TextArea

from tests.tui.helpers import click
from tui.app import SlmopsApp
from tui.screens.summary import SummaryScreen, headless_commands
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings
from wizard_steps.road.state import WizardState


def summary_state(tmp_path: Path, **changes: object) -> WizardState:
    model = tmp_path / "my-model"
    converted = tmp_path / "my model-int4-onnx"
    for folder in (model, converted):
        folder.mkdir()
    (converted / "genai_config.json").write_text("{}", encoding="utf-8")
    state = WizardState(step="summary", model_dir=str(model), precision="int4",
                        int4=Int4Settings(algorithm=Int4Algorithm.RTN, quantize_embeddings=True),
                        output_dir=str(converted), converted_dir=str(converted))
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def done_text(app: SlmopsApp) -> str:
    return str(app.screen.query_one("#summary-done", Static).render())


async def test_summary_lists_the_converted_folder_and_what_is_not_done(tmp_path: Path) -> None:
    state = summary_state(tmp_path)
    app = SlmopsApp(state, start="summary")
    async with app.run_test(size=(80, 24)):
        assert isinstance(app.screen, SummaryScreen)
        text = done_text(app)
        assert state.converted_dir in text
        assert "not done" in text  # neither deployed nor benchmarked


async def test_summary_shows_the_deployed_model(tmp_path: Path) -> None:
    app = SlmopsApp(summary_state(tmp_path, deploy_name="smollm2-demo",
                                  deployed_id="smollm2-demo:1"), start="summary")
    async with app.run_test(size=(80, 24)):
        assert "smollm2-demo:1" in done_text(app)
        commands = app.screen.query_one("#summary-commands", TextArea).text
        assert "slmops chat smollm2-demo" in commands


async def test_headless_commands_repeat_the_run(tmp_path: Path) -> None:
    state = summary_state(tmp_path)
    app = SlmopsApp(state, start="summary")
    async with app.run_test(size=(80, 24)):
        area = app.screen.query_one("#summary-commands", TextArea)
        assert area.read_only
        lines = [line for line in area.text.splitlines() if not line.startswith("#")]
        assert lines[0].startswith("slmops run --answers ")
        lines = lines[1:]
        assert lines[0].startswith("slmops convert ")
        assert "--precision int4" in lines[0] and "--int4-algo rtn" in lines[0]
        assert "--quantize-embeddings" in lines[0]
        assert f'--out "{state.converted_dir}"' in lines[0]  # quoted: the path has a space
        assert lines[1].startswith(f'slmops deploy "{state.converted_dir}" --name ')
        assert lines[2].startswith("slmops bench ") and lines[3].startswith("slmops chat ")


async def test_summary_shows_the_benchmark_medians_and_the_checklist_verdict(tmp_path: Path) -> None:
    from wizard_steps.core.checks import QualityCheck
    from wizard_steps.measurement import benchmark

    checks = [QualityCheck("Domain queries", True, ""), QualityCheck("Fidelity", False, ""),
              QualityCheck("Reply format", None, "")]
    record = benchmark.record(None, checks)
    record["per_length"] = [{"length": 16, "ttft_ms": 40.0, "prompt_tps": 400.0, "tps": 61.5},
                            {"length": 128, "ttft_ms": 120.0, "prompt_tps": 1066.0, "tps": 55.25}]
    app = SlmopsApp(summary_state(tmp_path, bench_result=record), start="summary")
    async with app.run_test(size=(80, 24)):
        text = " ".join(done_text(app).split())
        assert "not done" not in text.split("Benchmark")[1]
        assert "61.5 / 55.2 tok/s at 16 / 128 prompt tokens" in text
        assert "1 passed, 1 failed (Fidelity)" in text


async def test_the_wizard_writes_an_answers_file_that_replays_its_choices(tmp_path: Path) -> None:
    from wizard_steps.road import answers
    from wizard_steps.road.state import state_answers

    state = summary_state(tmp_path, template_key="llama3", deploy_name="mine", bench_runs=5,
                          model_config={"max_length": 512, "temperature": 0.0, "top_p": 1.0,
                                        "repetition_penalty": 1.2})
    app = SlmopsApp(state, start="summary")
    async with app.run_test(size=(80, 24)):
        text = app.screen.query_one("#summary-commands", TextArea).text
        command = next(line for line in text.splitlines() if line.startswith("slmops run --answers "))
    written = Path(command.removeprefix("slmops run --answers ").strip('"'))
    loaded = answers.load(written)
    assert loaded == state_answers(state)
    assert (loaded.model, loaded.precision, loaded.int4.algorithm.value, loaded.template) == (
        state.model_dir, "int4", "rtn", "llama3")
    assert (loaded.max_length, loaded.temperature, loaded.repetition_penalty) == (512, 0.0, 1.2)
    assert (loaded.deploy_name, loaded.bench_runs) == ("mine", 5)


async def test_next_writes_the_answers_file_as_the_wizard_goes(tmp_path: Path, tmp_home: Path) -> None:
    from wizard_steps.core import paths
    from wizard_steps.road import answers

    state = summary_state(tmp_path, step="benchmark", precision="int8")
    app = SlmopsApp(state, start="benchmark")
    async with app.run_test(size=(80, 24)) as pilot:
        await click(pilot, "#next")  # Skip ›
        await pilot.pause()
    assert answers.load(paths.config_dir() / "wizard.toml").precision == "int8"


def test_the_demo_converts_as_demo_and_defaults_stay_implicit() -> None:
    state = WizardState(use_demo=True, precision="int8", output_dir="/data/out")
    first = headless_commands(state).splitlines()[0]
    assert first == "slmops convert demo --precision int8 --out /data/out"


async def test_finish_exits_the_app(tmp_path: Path) -> None:
    app = SlmopsApp(summary_state(tmp_path), start="summary")
    async with app.run_test(size=(80, 24)) as pilot:
        assert str(app.screen.query_one("#next", Button).label) == "Finish"
        await click(pilot, "#next")
        await pilot.pause()
        assert not app.is_running
    assert "summary" in app.state.completed


async def test_summary_fits_80_columns(tmp_path: Path) -> None:
    app = SlmopsApp(summary_state(tmp_path), start="summary")
    async with app.run_test(size=(80, 24)):
        for widget in app.screen.walk_children():
            assert widget.region.right <= 80, widget
        assert app.screen.query_one("#step-body").max_scroll_x == 0


def test_the_summary_says_what_auto_chose_from_the_converted_folders_config(tmp_path: Path) -> None:
    """"auto" is resolved when the plan is made; the summary reads what it became from the saved
    olive_config.json (the state's block size may be stale), and says only "auto" before that."""
    import json

    from tui.screens.summary import done_text

    folder = tmp_path / "demo-int4"
    folder.mkdir()
    passes = {"quarot": {"type": "QuaRot"}, "gptq": {"type": "Gptq"},
              "builder": {"type": "ModelBuilder", "precision": "int4", "int4_block_size": 32,
                          "int4_is_symmetric": False, "int4_algo_config": "rtn_last"}}
    (folder / "olive_config.json").write_text(json.dumps({"passes": passes}))
    state = WizardState(precision="int4", int4=Int4Settings(block_size=16, symmetric=True))
    assert "INT4 · auto" in done_text(state).plain and "embeddings" not in done_text(state).plain
    state.converted_dir = str(folder)
    assert "INT4 · auto: quarot_gptq · block 32 · asymmetric · 20 % at 8 bits" in done_text(state).plain
    passes["builder"].update(int4_block_size=16, int4_is_symmetric=True, int4_algo_config="k_quant_mixed")
    del passes["quarot"], passes["gptq"]
    (folder / "olive_config.json").write_text(json.dumps({"passes": passes}))
    assert "auto: k_quant_mixed · block 16 · symmetric" in done_text(state).plain


def test_the_summary_says_the_int8_was_rotated_once_converted(demo_int8: Path) -> None:
    from tui.screens.summary import done_text

    state = WizardState(precision="int8")
    assert "INT8 · rotated" not in done_text(state).plain  # not converted yet: nothing to tell
    state.converted_dir = str(demo_int8)  # the demo is a Llama: its INT8 is rotated first
    assert "INT8 · rotated first (QuaRot)" in done_text(state).plain
