"""The wizard in a real browser: ``slmops serve`` on a free port, Debian's Chromium driven by
Playwright, the screen read from the page's xterm.js buffer (the page draws into a canvas, so the
page's text is empty). Welcome, the page sizes, the theme and language keys, prerequisites, a
closed tab ending its wizard, and Ctrl+C ending the server and its wizards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CAP_MS = 180_000  # only guards against a hang (2 shared cores: a wizard process starts in ~8 s)
# textual-serve's page keeps its xterm.js Terminal in a closure; the test exposes it to read the
# screen (the page is otherwise the one the server sends).
HOOK = "this.terminal.open(e),"
SCREEN_JS = """
window.__slmopsScreen = () => {
  const t = window.__slmopsTerm;
  if (!t) return null;
  const buffer = t.buffer.active, lines = [];
  for (let i = 0; i < t.rows; i++) {
    const line = buffer.getLine(buffer.viewportY + i);
    lines.push(line ? line.translateToString(true, 0, t.cols) : "");
  }
  const box = t.element.querySelector(".xterm-screen").getBoundingClientRect();
  return {cols: t.cols, rows: t.rows, lines: lines, text: lines.join("\\n"),
          width: box.width, height: box.height};
};
window.__slmopsBackground = (row, col) => {
  const t = window.__slmopsTerm, b = t.buffer.active;
  const cell = b.getLine(b.viewportY + row).getCell(col);
  return cell.isBgDefault() ? -1 : cell.getBgColor();
};
"""


@dataclass(frozen=True)
class Served:
    process: subprocess.Popen
    url: str
    started: float  # time.monotonic() just before `slmops serve` was started
    stderr: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`slmops serve` in its own process group (so that a Ctrl+C can reach it and its wizards the
    way a terminal's does), with its own SLMOPS_HOME."""
    port = free_port()
    env = dict(os.environ, SLMOPS_HOME=str(tmp_path / "home"), SLMOPS_LANG="en")
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "tui", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        while url not in out.read_text():
            assert process.poll() is None, err.read_text()
            assert time.monotonic() - started < CAP_MS / 1000, "slmops serve printed no address"
            time.sleep(0.05)
        yield Served(process, url, started, err)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def browser(tmp_path: Path):
    """Chromium with a fresh profile, the page's terminal exposed to the test."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    ".ci/run does this on a fresh machine.")
    from playwright.sync_api import sync_playwright

    def expose_terminal(route) -> None:
        response = route.fetch()
        script = response.text()
        assert HOOK in script, "textual-serve's page script changed: update HOOK in this test"
        route.fulfill(response=response, body=script.replace(HOOK, HOOK + "window.__slmopsTerm=this.terminal,"))

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 720})
        context.route("**/static/js/textual.js", expose_terminal)
        context.add_init_script(SCREEN_JS)
        try:
            yield context
        finally:
            context.close()


def screen(page) -> dict:
    return page.evaluate("() => window.__slmopsScreen()") or {"text": "", "lines": []}


def wait_for(page, condition: str, arg: object = None, what: str = "") -> dict:
    """Wait until the JS ``condition(screen, arg)`` holds (polled on every frame); fail with the
    screen as it is if it never does."""
    try:
        page.wait_for_function(f"(arg) => {{ const s = window.__slmopsScreen(); return s && ({condition}); }}",
                               arg=arg, timeout=CAP_MS)
    except Exception as exc:
        pytest.fail(f"{what or condition} not seen in {CAP_MS // 1000} s ({type(exc).__name__}); "
                    f"the screen:\n{screen(page)['text']}")
    return screen(page)


def wait_text(page, *needles: str) -> dict:
    return wait_for(page, "arg.every(n => s.text.includes(n))", list(needles), " and ".join(map(repr, needles)))


def wait_full_page(page, *needles: str) -> dict:
    """The wizard fills the page: its header on the first row, its footer on the last, the
    terminal within one cell of the page's size, from below and from above (after the page
    shrinks, the old, larger terminal must not count as filling it)."""
    view = page.viewport_size
    return wait_for(page, "s.lines[0].includes(arg.top) && s.lines[s.rows - 1].includes('palette')"
                    " && arg.needles.every(n => s.text.includes(n))"
                    " && s.width > arg.w - s.width / s.cols && s.height > arg.h - s.height / s.rows"
                    " && s.width <= arg.w + 1 && s.height <= arg.h + 1",
                    {"top": "step 1/10", "needles": list(needles), "w": view["width"], "h": view["height"]},
                    f"the wizard filling a {view['width']}x{view['height']} page")


def wizard_processes(served: Served) -> list[psutil.Process]:
    """The server's wizard processes. A child that has just ended (a prerequisite check's
    subprocess not yet reaped by its thread) has no command line to read and is no wizard."""
    found = []
    for child in psutil.Process(served.process.pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
        if "tui.serve" in command:
            found.append(child)
    return found


def click_title_row(page) -> None:
    """Keys reach the app only after a click on the page; the title row takes no focus."""
    state = screen(page)
    page.mouse.click(state["width"] * 0.75, state["height"] / state["rows"] / 2)


def test_the_wizard_in_a_browser_tab(served: Served, browser, capsys) -> None:
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.goto(served.url)
    wait_text(page, "step 1/10", "Use the demo model")
    to_welcome = time.monotonic() - served.started

    # Projector sizes and 80x24: the whole wizard, header to footer, fills the page. (Until the
    # page is clicked, the app has no focus and its footer shows no keys.)
    click_title_row(page)
    shown = wait_full_page(page, "Use the demo model", "Use my own model")
    (ROOT / "screenshots").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "screenshots" / "browser-welcome.png"))
    page.set_viewport_size({"width": 1920, "height": 1080})
    large = wait_full_page(page, "Use the demo model")
    assert large["cols"] > shown["cols"] and large["rows"] > shown["rows"]
    cell_w, cell_h = large["width"] / large["cols"], large["height"] / large["rows"]
    page.set_viewport_size({"width": int(80 * cell_w) + 2, "height": int(24 * cell_h) + 2})
    small = wait_full_page(page, "Use the demo model")
    assert (small["cols"], small["rows"]) == (80, 24)
    page.set_viewport_size({"width": 1280, "height": 720})
    wait_full_page(page)

    # The theme key: F2 turns the page's background light, F2 again dark.
    row, col = shown["rows"] // 2, shown["cols"] // 2
    dark = page.evaluate("([r, c]) => window.__slmopsBackground(r, c)", [row, col])
    page.keyboard.press("F2")
    wait_for(page, "window.__slmopsBackground(arg.r, arg.c) !== arg.was", {"r": row, "c": col, "was": dark},
             "the light theme")
    light = page.evaluate("([r, c]) => window.__slmopsBackground(r, c)", [row, col])
    assert sum(light.to_bytes(3, "big")) > sum(dark.to_bytes(3, "big")), (hex(dark), hex(light))
    page.keyboard.press("F2")
    wait_for(page, "window.__slmopsBackground(arg.r, arg.c) === arg.was", {"r": row, "c": col, "was": dark},
             "the dark theme again")

    # Enter on the focused "Use the demo model": the prerequisites step and its checks.
    pressed = time.monotonic()
    page.keyboard.press("Enter")
    wait_text(page, "step 2/10", "Prerequisites")
    to_next_step = time.monotonic() - pressed
    checks = wait_text(page, "Python 3.", "onnxruntime-genai", "Re-run checks")
    assert any(mark in checks["text"] for mark in (" ok ", " warn ", " FAIL ")), checks["text"]

    # The language key: the same step in Turkish.
    page.keyboard.press("F3")
    wait_text(page, "Ön koşullar", "Denetimleri yinele")

    # Closing the tab ends its wizard process.
    (wizard,) = wizard_processes(served)
    page.close()
    psutil.wait_procs([wizard], timeout=CAP_MS / 1000)
    assert not wizard.is_running(), "the wizard of a closed tab is still running"

    # A second tab gets a wizard of its own; Ctrl+C (to the whole process group, as a terminal
    # sends it) stops the server and that wizard, cleanly.
    second = browser.new_page()
    second.goto(served.url)
    wait_text(second, "step 1/10", "Use the demo model")
    (wizard,) = wizard_processes(served)
    os.killpg(served.process.pid, signal.SIGINT)
    assert served.process.wait(timeout=CAP_MS / 1000) == 0
    psutil.wait_procs([wizard], timeout=10)
    assert not wizard.is_running(), "Ctrl+C left a wizard process running"
    errors = served.stderr.read_text()
    assert "Traceback" not in errors and "stopped." in errors, errors

    with capsys.disabled():
        print(f"\nbrowser: `slmops serve` start -> welcome text {to_welcome:.1f} s; "
              f"Enter -> prerequisites text {to_next_step:.2f} s")
