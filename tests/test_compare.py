"""Precisions compared on this machine: candidates by name, folders reused when converted with the
same settings, measured rows judged against the source, the recommendation, bad input, cancel."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tui import plain
from tui.cli import build_parser, main
from tui.progress import ProgressPrinter, drive
from wizard_steps.conversion.precision import Precision
from wizard_steps.core.events import Failed, Progress
from wizard_steps.measurement import evaluation
from wizard_steps.measurement.machine import cpu_name
from wizard_steps.model.model_source import folder_size
from wizard_steps.road import answers, unattended
from wizard_steps.verdict import compare, compare_report, domain, quality
from wizard_steps.verdict.compare import CandidateEvent, CompareError, Recommendation, Row


def test_candidates_are_parsed_in_order_without_repeats() -> None:
    chosen = compare.parse_candidates("int8, INT4-rtn,int8")
    assert [c.name for c in chosen] == ["int8", "int4-rtn"]
    assert chosen[1].int4.algorithm.value == "rtn"


def test_an_unknown_precision_is_one_sentence_naming_the_known_ones() -> None:
    with pytest.raises(CompareError, match="'int3' is unknown") as raised:
        compare.parse_candidates("int4,int3")
    assert "int4-rtn" in raised.value.hint and "fp32" in raised.value.hint


def test_cli_refuses_an_unknown_precision_with_exit_2_before_any_work(tmp_home: Path, capsys) -> None:
    code = main(["compare", "demo", "--precisions", "int4,bf3"])
    err = capsys.readouterr().err
    assert code == 2 and "'bf3' is unknown" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not tmp_home.exists()  # not even the demo was prepared


def test_cli_refuses_an_export_path_it_cannot_write(tmp_home: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main(["compare", "demo", "--precisions", "int8", "--export", str(blocker / "report.md")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be written" in err and "Traceback" not in err
    assert not tmp_home.exists()


def test_compare_has_help_with_an_example(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["compare", "--help"])
    assert exited.value.code == 0 and "example: slmops compare" in capsys.readouterr().out


# --- on the real demo model ----------------------------------------------------------------------


EVAL_WINDOWS = 2


def forget_saved(model: Path) -> None:
    """Remove the saved comparison: other tests' precision screens must start from estimates."""
    (compare.compare_root(compare.inspect_model(model)) / compare.RESULT_NAME).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def compared(demo_model: Path, demo_int4: Path, demo_int8: Path) -> Iterator[list[object]]:
    """Two candidates the session has converted already (int8, and the default int4), so nothing is
    converted again; short speed runs, the first windows of the evaluation text."""
    chosen = compare.parse_candidates("int8,int4")
    before = {p: (p / "genai_config.json").read_bytes() for p in (demo_int4, demo_int8)}
    events = list(compare.compare(demo_model, chosen, lengths=(32, 64), new_tokens=8, runs=1,
                                  eval_windows=EVAL_WINDOWS, queries=quality.demo_queries()[:5]))
    after = {p: (p / "genai_config.json").read_bytes() for p in (demo_int4, demo_int8)}
    assert before == after  # reused folders are read, never written
    yield events
    forget_saved(demo_model)


@pytest.mark.slow
def test_folders_converted_with_the_same_settings_are_reused(compared: list[object], demo_int4: Path,
                                                             demo_int8: Path) -> None:
    rows = [e for e in compared if isinstance(e, Row)]
    # found where the home lists them: the same folders, whichever path leads there
    assert [(r.candidate, Path(r.folder).resolve(), r.reused) for r in rows] == [
        ("int8", demo_int8.resolve(), True), ("int4", demo_int4.resolve(), True)]
    stages = [e.event.stage for e in compared if isinstance(e, CandidateEvent)
              and isinstance(e.event, Progress)]
    assert not any("Olive" in stage for stage in stages)  # no conversion ran


@pytest.mark.slow
def test_each_row_holds_figures_measured_here(compared: list[object], demo_model: Path) -> None:
    for row in (e for e in compared if isinstance(e, Row)):
        m = row.measurement
        assert m is not None, row.error
        assert m.size_bytes == folder_size(Path(row.folder))
        assert set(m.gen_tps) == set(m.prompt_tps) == {32, 64}
        assert all(v > 0 for v in [*m.gen_tps.values(), *m.prompt_tps.values()])
        # against the source on the first windows of the evaluation text, as the harness measures
        # it (a quantized model may land on either side of the source: the rotated INT8 does)
        again = evaluation.measure(demo_model, Path(row.folder), limit=EVAL_WINDOWS)
        assert m.eval_tokens == again.tokens == EVAL_WINDOWS * (evaluation.WINDOW - 1)
        assert m.source_perplexity == pytest.approx(again.source_perplexity, rel=1e-6)
        assert m.perplexity == pytest.approx(again.perplexity, rel=1e-3)
        assert m.ratio <= m.ratio_high and m.perplexity < 2 * m.source_perplexity
        assert m.kl_mean == pytest.approx(again.kl_mean, rel=1e-2, abs=1e-6)
        assert 0.0 <= m.agreement <= 1.0 and m.threads >= 1
        # judged against the fp32 source, which answers every demo query on any CPU
        assert m.domain_total == m.source_answered == 5
        assert m.domain_passed is (m.domain_losses <= domain.allowed_losses(m.source_answered))
        assert m.domain_answered >= m.source_answered - m.domain_losses
        assert row.passed is (m.domain_passed and m.fidelity_passed)


def judged(row: Row, passed: bool, speed: float) -> Row:
    """A measured row with its verdicts and its generation speed set (the rest as measured)."""
    m = row.measurement
    assert m is not None, row.error
    return replace(row, measurement=replace(m, domain_passed=passed, fidelity_passed=passed,
                                            gen_tps={n: speed for n in m.gen_tps}))


@pytest.mark.slow
def test_the_recommendation_is_the_fastest_row_that_passes(compared: list[object], demo_model: Path) -> None:
    result = compared[-1]
    assert isinstance(result, Recommendation)
    # The verdicts of quantized models depend on the CPU: here, the one its rows give...
    passing = [r for r in result.rows if r.passed]
    fastest = max(passing, key=lambda r: r.measurement.gen_tps_focus) if passing else None  # type: ignore[union-attr]
    assert result.candidate == (fastest.candidate if fastest else None)
    # ...and the same measured rows judged each way, with speeds set:
    int8, int4 = result.rows
    model = str(demo_model)
    both = compare.recommend([judged(int8, True, 100.0), judged(int4, True, 150.0)], model)
    assert both.candidate == "int4" and both.reason.startswith("int4 is the fastest that passes")
    swapped = compare.recommend([judged(int8, True, 150.0), judged(int4, True, 100.0)], model)
    assert swapped.candidate == "int8" and "faster but failing" not in swapped.reason
    slower = compare.recommend([judged(int8, True, 100.0), judged(int4, False, 150.0)], model)
    assert slower.candidate == "int8" and slower.reason.startswith("int8 is the fastest that passes")
    assert f"faster but failing: int4 ({compare_report.why_not(judged(int4, False, 150.0))})" in slower.reason
    none = compare.recommend([judged(int8, False, 100.0), judged(int4, False, 150.0)], model)
    assert none.candidate is None and none.reason.startswith("No candidate passes")


@pytest.mark.slow
def test_the_comparison_is_saved_for_the_precision_step(compared: list[object], demo_model: Path) -> None:
    saved = compare.load_saved(demo_model)
    assert saved == compared[-1]
    table = compare_report.to_markdown(saved)
    assert table.count("\n| int") == 2 and "CPU: " in table
    data = json.loads(compare_report.to_json(saved))
    assert [r["candidate"] for r in data["rows"]] == ["int8", "int4"]
    assert {"size_bytes", "generation_tokens_per_s", "perplexity", "perplexity_ratio_high", "kl_mean",
            "top1_agreement", "domain_answered", "source_answered"} <= set(data["rows"][0])


@pytest.mark.slow
def test_a_cancel_mid_conversion_leaves_no_partial_folder(demo_model: Path, demo_int8: Path) -> None:
    stop = threading.Event()
    chosen = compare.parse_candidates("int4-k-quant-mixed")
    events = []
    for event in compare.compare(demo_model, chosen, stop):
        events.append(event)
        if isinstance(event, CandidateEvent) and isinstance(event.event, Progress) \
                and "Olive" in event.event.stage:
            stop.set()
    assert isinstance(events[-1], Failed) and events[-1].cancelled
    root = compare.compare_root(compare.inspect_model(demo_model))
    assert not [p for p in root.iterdir() if p.name.startswith("int4-k-quant-mixed")
                or ".partial" in p.name]
    assert (demo_int8 / "genai_config.json").is_file()


# --- the headless road's choice (precision = "auto": slmops demo, answers files, the plain wizard) --


def _follow(events):
    return drive(events, ProgressPrinter(io.StringIO()))


@pytest.mark.slow
def test_the_headless_road_measures_int4_and_int8_then_reuses_what_it_measured(
        demo_model: Path, demo_int4: Path, demo_int8: Path) -> None:
    """Measured here before it chooses (a short measurement, as the comparison tests'), the folder
    of the fastest that passes taken as it is; a second run on this CPU reuses that choice and
    measures nothing. Which precision wins depends on the CPU: read from the saved comparison."""
    forget_saved(demo_model)
    info = compare.inspect_model(demo_model)
    said: list[str] = []
    choice = unattended.measured_choice(info, said.append, _follow, lengths=(32, 64), new_tokens=8, runs=1,
                                        eval_windows=EVAL_WINDOWS, queries=quality.demo_queries()[:5])
    assert said[0].startswith("Measuring INT4 / INT8 on this machine before choosing (about ")
    assert any(line.startswith("int4: measured (") for line in said)
    assert any(line.startswith("int8: measured (") for line in said)
    saved = compare.load_saved(demo_model)
    assert saved is not None and saved.candidate is not None, saved  # INT8 passes on any CPU
    winner = next(row for row in saved.rows if row.candidate == saved.candidate)
    assert winner.passed and saved.cpu == cpu_name()
    assert choice.precision is compare.candidates()[saved.candidate].precision
    assert choice.folder is not None and choice.folder.resolve() == Path(winner.folder).resolve()
    assert choice.folder.resolve() in (demo_int4.resolve(), demo_int8.resolve())  # reused, not converted
    assert choice.reason == saved.reason and said[-1] == saved.reason

    again: list[str] = []
    second = unattended.measured_choice(info, again.append, _follow)
    assert again == [f"Measured on this machine before: {saved.reason}"]  # nothing measured
    assert second == choice
    assert plain.measured_label(demo_model) == (  # the plain wizard's first choice reads the same record
        f"Measured on this machine: {choice.precision.value.upper()} (the fastest that passes the checklist)")
    forget_saved(demo_model)
    assert plain.measured_label(demo_model).startswith("Measure INT4 and INT8 on this machine (about ")


def test_over_the_budget_the_headless_road_takes_int4_unmeasured_and_says_how_to_measure(
        demo_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forget_saved(demo_model)
    monkeypatch.setattr(compare, "MEASURE_BUDGET_S", 60.0)  # the demo's estimate is minutes
    info = compare.inspect_model(demo_model)
    said: list[str] = []
    choice = unattended.measured_choice(info, said.append, _follow)
    assert choice == unattended.Choice(Precision.INT4)
    assert len(said) == 1 and "over the 1 min budget: INT4, not measured here" in said[0]
    assert f"slmops compare {info.path})" in said[0]
    assert compare.load_saved(demo_model) is None  # nothing measured, nothing saved


def test_demo_measures_by_default_and_takes_a_named_precision() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).precision == answers.MEASURED == answers.Answers().precision
    assert parser.parse_args(["demo", "--precision", "int8"]).precision == "int8"
