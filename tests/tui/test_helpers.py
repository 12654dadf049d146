"""The shared Pilot helpers can fail: a screen too wide is caught, text is read as drawn, and a
wait that never comes true fails with what was awaited."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from tests.tui.helpers import assert_fits, text_of, wait_for


class Wide(App[None]):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("first line\nsecond line", id="words")
            yield Static("x", id="box")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#box").styles.width = self.width


async def test_assert_fits_passes_a_screen_that_fits_and_fails_one_that_does_not() -> None:
    async with Wide(40).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert_fits(pilot.app)
    async with Wide(120).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        with pytest.raises(AssertionError, match="scrolls sideways|ends at column"):
            assert_fits(pilot.app)


async def test_text_of_reads_a_widget_a_container_and_the_screen() -> None:
    async with Wide(40).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert text_of(pilot.app.screen, "#words") == "first line\nsecond line"
        assert text_of(pilot.app.screen, "#body") == "first line\nsecond line\nx"
        assert text_of(pilot.app.screen).splitlines()[:2] == ["first line", "second line"]


async def test_wait_for_fails_saying_what_it_waited_for() -> None:
    async with Wide(40).run_test(size=(80, 24)) as pilot:
        with pytest.raises(AssertionError, match="waited 0 s for the moon, in vain"):
            await wait_for(pilot, lambda: False, "the moon", timeout=0.3)
        await wait_for(pilot, lambda: True, "nothing")
