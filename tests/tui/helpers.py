"""Helpers shared by the Pilot tests: wait on a state (never on the clock), read what a widget
shows, and check that a screen fits the terminal."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.containers import ScrollableContainer
from textual.errors import NoWidget
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import Footer

# Only guards against a hang: a run that takes minutes on a slow, busy CPU must still pass.
HANG_LIMIT = 600.0
# A run told to stop ends within a token or a pass: waiting longer than this is a bug, not a slow CPU.
STOP_LIMIT = 60.0


async def wait_for(pilot: Pilot, condition: Callable[[], object], what: str | Callable[[], str],
                   timeout: float = HANG_LIMIT, interval: float = 0.02) -> None:
    """Let the app run until condition() is true; after timeout seconds, fail saying what was
    awaited (what() is called then, so it can describe the state the app was left in)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:.0f} s for {said}, in vain")
        await pilot.pause(interval)
    await pilot.pause()  # let the refresh that follows the change happen


def _busy_workers(app: App) -> list[str]:
    return [repr(w) for w in app.workers if w.is_running]


async def wait_idle(pilot: Pilot, timeout: float = HANG_LIMIT) -> None:
    """Wait until no worker of the app runs (a screen's loading, a check, a run has ended), and
    none starts on the results of the last one."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause()
        await wait_for(pilot, lambda: not _busy_workers(app),
                       lambda: f"the workers to end (still running: {_busy_workers(app)})",
                       max(deadline - time.monotonic(), 0))
        if not _busy_workers(app):
            return


def _leaf_text(widget: Widget) -> list[str]:
    if not widget.size.area:
        return []
    strips = widget.render_lines(Region(0, 0, *widget.size))
    return [strip.text.rstrip() for strip in strips]


def text_of(target: Widget, selector: str | None = None) -> str:
    """What a widget shows, line by line, as drawn at its size (also the part scrolled out of
    view). A screen or container gives the text of its displayed widgets, in order."""
    widget = target.query_one(selector) if selector else target
    if isinstance(widget, Screen):
        lines = [strip.text.rstrip() for strip in widget._compositor.render_strips()]
        return "\n".join(lines).rstrip("\n")
    children = [child for child in widget.children if child.display]
    if not children:
        return "\n".join(_leaf_text(widget)).strip("\n")
    parts = [] if isinstance(widget, ScrollableContainer) else _leaf_text(widget)
    parts = [line for line in parts if line.strip()]
    parts += [text for child in children if (text := text_of(child))]
    return "\n".join(parts)


def overflows(app: App) -> list[str]:
    """Widgets of the current screen past the terminal's right edge, sticking out sideways of a
    parent that cannot scroll sideways, containers of widgets that scroll sideways, and footer keys hidden
    under the command palette's key."""
    problems = []
    width = app.size.width
    for widget in app.screen.query("*"):
        if not widget.display or not widget.region.width:
            continue
        parent = widget.parent
        if widget.region.right > width:
            problems.append(f"{widget!r} ends at column {widget.region.right} (> {width})")
        elif (isinstance(parent, Widget) and parent.region.width and not parent.allow_horizontal_scroll
              and widget.region.right > parent.region.right):
            problems.append(f"{widget!r} sticks out of {parent!r}")
        # A container of widgets must not scroll sideways (inputs, tables and logs may).
        if (isinstance(widget, ScrollableContainer) and not isinstance(widget, ScrollView)
                and widget.max_scroll_x > 0):
            problems.append(f"{widget!r} scrolls sideways by {widget.max_scroll_x} columns")
    footers = list(app.screen.query(Footer))
    if footers:
        keys = list(footers[0].query("FooterKey"))
        palette = [k.region.x for k in keys if k.has_class("-command-palette")]
        ends = [k.region.right for k in keys if not k.has_class("-command-palette")]
        if palette and ends and max(ends) > palette[0]:
            problems.append(f"the footer's keys run under the palette key ({max(ends)} > {palette[0]})")
    return problems


def assert_fits(app: App) -> None:
    """The current screen fits the terminal's width: nothing cut off, nothing scrolls sideways."""
    problems = overflows(app)
    assert not problems, f"{app.screen!r} at {app.size.width}x{app.size.height}: " + "; ".join(problems)


def _layout_pending(app: App) -> bool:
    """A layout, scroll, repaint or after-refresh callback (a focus scrolls its widget into view
    that way) the screen has been asked for and not yet done: until they are, widget.region is
    where the widget was, not where it will be when a click arrives."""
    screen = app.screen
    return bool(screen._layout_required or screen._scroll_required or screen._recompose_required
                or screen._repaint_required or screen._callbacks)


def _at_its_corner(app: App, widget: Widget) -> Widget | None:
    """The widget a click on this widget's top-left corner lands on, or None where it has no place."""
    region = widget.region
    if not region.area:
        return None
    try:
        return app.get_widget_at(region.x, region.y)[0]
    except NoWidget:
        return None


def _under_its_corner(app: App, widget: Widget) -> bool:
    under = _at_its_corner(app, widget)
    return under is not None and (under is widget or widget in under.ancestors)


async def click(pilot: Pilot, selector: str) -> None:
    """Click a widget as a user does: scrolled into view first (a small terminal hides the lower
    part of a screen), and only once it stays where it is drawn. On a busy CPU the layout and the
    scroll that follow a screen's mount (its focused widget brought into view) come late, and a
    click aimed by the old layout lands on another widget. A widget just shown (display set on a
    row that follows a result) has no place until that layout is done, so a scroll asked for
    before it goes nowhere: the widget is scrolled into view again each time a finished layout
    still leaves it out of sight."""
    app = pilot.app
    widget = app.screen.query_one(selector)
    widget.scroll_visible(animate=False, immediate=True)
    seen: list[Region] = []

    def still() -> bool:
        if _layout_pending(app):
            seen.clear()
            return False
        if not _under_its_corner(app, widget):
            seen.clear()
            widget.scroll_visible(animate=False, immediate=True)
            return False
        seen.append(widget.region)
        return len(seen) >= 3 and len(set(seen[-3:])) == 1

    def state() -> str:
        return (f"{selector} to stay where it is drawn (at {widget.region} on a {app.size.width}x"
                f"{app.size.height} screen, layout pending: {_layout_pending(app)}, there: "
                f"{_at_its_corner(app, widget)!r})")

    # An idle screen's layout settles in well under a second on a slow, busy CPU: a minute is a bug.
    await wait_for(pilot, still, state, timeout=STOP_LIMIT, interval=0.05)
    if not await pilot.click(selector):
        raise AssertionError(f"the click on {selector} at {widget.region} landed on another widget (now there: "
                             f"{_at_its_corner(app, widget)!r})")
