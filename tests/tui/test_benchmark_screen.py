"""The Benchmark screen: the plan validated as typed, a real small run on the demo INT4 with live
cards, chart and a per-length table, stopping a run, the quality checklist, and the export."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Label, Switch

from tests.tui.helpers import HANG_LIMIT, assert_fits, click, wait_for
from tests.tui.helpers import text_of as shown
from tui.app import SlmopsApp
from tui.screens.benchmark import BenchmarkScreen
from tui.screens.tune import TuneScreen
from tui.widgets.help import HelpScreen
from tui.widgets.metrics import PLACEHOLDER, MetricCard, RunChart
from tui.widgets.run_panel import RunPanel
from wizard_steps.measurement import benchmark
from wizard_steps.road.state import WizardState
from wizard_steps.verdict import quality


@pytest.fixture(autouse=True)
def five_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checklist asks the demo's first five queries: these tests check the screen, not the set."""
    monkeypatch.setattr(BenchmarkScreen, "QUERIES", quality.demo_queries()[:5])


def bench_app(converted: Path | str, model: Path | str | None = None, **state: object) -> SlmopsApp:
    plan = {"bench_lengths": [16, 64], "bench_runs": 2, "bench_new_tokens": 8} | state
    return SlmopsApp(WizardState(converted_dir=str(converted), model_dir=str(model) if model else None,
                                 template_key="chatml", **plan),
                     start="benchmark")


async def opened(pilot: Pilot, fidelity: bool = False) -> BenchmarkScreen:
    screen = pilot.app.screen
    assert isinstance(screen, BenchmarkScreen)
    screen.query_one("#bench-fidelity", Switch).value = fidelity  # the torch comparison takes ~20 s
    await pilot.pause()
    return screen


def text_of(screen: BenchmarkScreen, selector: str) -> str:
    """What the widget shows, with its wrapping undone."""
    return " ".join(shown(screen, selector).split())


async def test_bad_lengths_show_an_error_and_start_refuses(tmp_path: Path) -> None:
    app = bench_app(tmp_path / "int4")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        screen.query_one("#bench-lengths", Input).value = "16,abc"
        await pilot.pause()
        assert "whole numbers" in str(screen.query_one("#bench-error", Label).render())
        assert screen.query_one("#bench-start", Button).disabled
        await pilot.press("s")
        await pilot.pause()
        assert not screen.is_busy() and not screen.running
        screen.query_one("#bench-lengths", Input).value = "4,16"
        await pilot.pause()
        assert "8 tokens or more" in str(screen.query_one("#bench-error", Label).render())
        screen.query_one("#bench-lengths", Input).value = "16,128"
        await pilot.pause()
        assert str(screen.query_one("#bench-error", Label).render()) == ""
        assert not screen.query_one("#bench-start", Button).disabled


async def test_next_is_allowed_without_a_run_and_says_skip(tmp_path: Path) -> None:
    app = bench_app(tmp_path / "int4")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        next_button = screen.query_one("#next", Button)
        assert not next_button.disabled
        assert str(next_button.label) == "Skip ›"
        assert "onnxruntime-genai" in text_of(screen, "#bench-backend")
        assert_fits(app)


async def test_a_deployed_model_is_measured_on_foundry_local(tmp_path: Path) -> None:
    app = bench_app(tmp_path / "int4", deployed_id="demo-int4:1")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        assert "Foundry Local" in text_of(screen, "#bench-backend")
        assert "demo-int4:1" in text_of(screen, "#bench-backend")


@pytest.mark.slow
async def test_a_run_fills_the_cards_the_chart_and_the_summary(demo_int4: Path, demo_model: Path) -> None:
    app = bench_app(demo_int4, demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        await click(pilot, "#bench-start")
        await pilot.pause()
        assert screen.is_busy()
        assert screen.query_one("#bench-start", Button).disabled
        assert not screen.query_one("#bench-stop", Button).disabled
        await wait_for(pilot, lambda: not screen.running, "the run to end")

        for card in screen.query(MetricCard):
            assert card.value != PLACEHOLDER and float(card.value) > 0, card.label
        assert len(screen.query_one("#bench-chart", RunChart).speeds) == 2 * (1 + 2)  # warm-up + runs
        table = screen.query_one("#bench-summary", DataTable)
        assert table.row_count == 2
        assert [table.get_row_at(i)[0] for i in range(2)] == ["16", "64"]
        assert "Done" in str(screen.query_one("#bench-stage", Label).render())
        assert str(screen.query_one("#next", Button).label) == "Next ›"
        assert app.state.bench_lengths == [16, 64] and app.state.bench_runs == 2
        # what limits the speed here: the CPU, its bandwidth, the medians against the memory bound
        await wait_for(pilot, lambda: "This machine:" in shown(screen, "#bench-machine"), "the machine line")
        line = shown(screen, "#bench-machine")
        line = " ".join(line.split())  # as drawn: wrapped at 80 columns
        assert "memory read" in line and "(16 tokens)" in line and "(64 tokens)" in line, line
        assert_fits(app)


@pytest.mark.slow
async def test_the_checklist_follows_the_run_and_is_kept_for_the_summary(demo_int4: Path,
                                                                      demo_model: Path) -> None:
    app = bench_app(demo_int4, demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running, "the run and the checklist to end")

        domain = screen.checks[quality.DOMAIN]  # judged against the source on this machine
        assert domain.figures.relative is True
        assert domain.passed is (domain.figures.losses <= domain.figures.allowed_losses)  # one near-tie may flip
        assert "the source answers" in " ".join(domain.evidence.split())
        assert screen.checks[quality.LENGTHS].passed is not None  # fed the run's speeds
        assert screen.checks[quality.FIDELITY].passed is None  # switched off
        table_text = text_of(screen, "#bench-quality-table")
        assert "Domain queries" in table_text
        assert ("✓ pass" in table_text) == any(c.passed for c in screen.checks.values())
        assert {"pass": "✓ pass", "fail": "✗ fail"}[domain.status] in table_text
        record = app.state.bench_result  # kept for the summary
        assert record is not None and [row["length"] for row in record["per_length"]] == [16, 64]
        assert record["checks"]["pass"] == sum(c.passed is True for c in screen.checks.values())
        assert_fits(app)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["key", "button"])
async def test_quality_checks_run_alone(demo_int4: Path, demo_model: Path, how: str) -> None:
    app = bench_app(demo_int4, demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        if how == "key":
            await pilot.press("q")
        else:
            await click(pilot, "#bench-quality")
        await wait_for(pilot, lambda: not screen.running and screen.checks, "the checklist to end")

        assert screen.summary is None and not screen.samples
        assert set(screen.checks) == set(quality_checks())
        assert screen.checks[quality.MEMORY].passed is None  # no benchmark samples to judge
        assert "Domain queries" in text_of(screen, "#bench-quality-table")


@pytest.mark.slow
async def test_export_writes_the_reports_with_the_checklist(demo_int4: Path, demo_model: Path,
                                                            tmp_path: Path) -> None:
    app = bench_app(demo_int4, demo_model)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: not screen.running, "the run to end")
        screen.query_one("#bench-export-dir", Input).value = str(tmp_path / "reports")
        await click(pilot, "#bench-export")
        await wait_for(pilot, lambda: (tmp_path / "reports" / "report.md").is_file(), "the report")

        markdown = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
        assert "| 16 |" in markdown and "| 64 |" in markdown
        assert markdown.index("# Benchmark") < markdown.index("## Quality checklist")
        assert (tmp_path / "reports" / "report.json").is_file()
        assert (tmp_path / "reports" / "report.csv").read_text(encoding="utf-8").startswith("length,")
        # a long folder name wraps mid-word at 80 columns: compared without the line breaks' spaces
        assert str(tmp_path / "reports") in "".join(text_of(screen, "#bench-export-result").split())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["button", "key"])
async def test_stop_ends_a_run_and_the_screen_stays_responsive(demo_int4: Path, how: str) -> None:
    app = bench_app(demo_int4, bench_runs=200)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: len(screen.samples) >= 2, "two samples")
        if how == "button":
            await click(pilot, "#bench-stop")
        else:
            await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.is_busy(), "the stopped run to end")

        assert "stopped" in text_of(screen, "#bench-stage").lower()
        assert len(screen.samples) < 2 * 201
        assert not screen.checks  # the checklist does not start after a stop
        assert not isinstance(app.screen, TuneScreen)  # Stop stops; it does not open tuning
        assert not screen.query_one("#bench-start", Button).disabled
        assert screen.query_one("#bench-stop", Button).disabled
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_the_tune_button_opens_tuning_only_when_idle(demo_int4: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The real benchmark, its event stream held after its first event until the test lets go:
    # the run stays busy, however fast this CPU generates, until the key and the click have landed.
    started, release = threading.Event(), threading.Event()
    real_run = benchmark.run

    def held_run(*args: object, **kwargs: object) -> Iterator[object]:
        events = real_run(*args, **kwargs)
        yield next(events)
        started.set()
        release.wait(HANG_LIMIT)
        yield from events

    monkeypatch.setattr(benchmark, "run", held_run)
    app = bench_app(demo_int4)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot)
        said: list[str] = []
        notify = screen.notify
        monkeypatch.setattr(screen, "notify",
                            lambda message, **how: said.append(str(message)) or notify(message, **how))
        try:
            await pilot.press("s")
            await wait_for(pilot, started.is_set, "the benchmark to start")
            await click(pilot, "#bench-tune")
            await pilot.press("t")
            await pilot.pause()
            assert screen.is_busy() and not release.is_set()  # both landed while the run was busy
            assert app.screen is screen and not isinstance(app.screen, TuneScreen)
            assert said == ["Stop the benchmark first."] * 2
            await pilot.press("escape")  # stop the run; it sees the stop once let go
            await wait_for(pilot, lambda: screen.query_one(RunPanel).stop.is_set(), "the stop")
        finally:
            release.set()
        await wait_for(pilot, lambda: not screen.is_busy(), "the stopped run to end")

        await click(pilot, "#bench-tune")  # idle now: it opens
        await wait_for(pilot, lambda: isinstance(app.screen, TuneScreen), "the tune dialog")
        assert app.screen.folder == demo_int4
        app.screen.query_one("#tune-cancel", Button).press()
        await wait_for(pilot, lambda: not app.screen.query_one(RunPanel).running, "tuning to stop")
        app.screen.query_one("#tune-close", Button).press()
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")


def quality_checks() -> tuple[str, ...]:
    from tui.screens.benchmark import CHECKS

    return CHECKS
