"""Time from process start to the first painted screen: `slmops` (the welcome screen) against a
bare Textual "hello" app, alternating in one run. Prints medians and the ratio (target <= 1.5)
and the first screen's absolute time (target <= 1 s).

    .venv/bin/python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SLMOPS = """
from tui.app import SlmopsApp
from wizard_steps.road.state import WizardState
class Once(SlmopsApp):
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: self.call_after_refresh(self.exit))
Once(WizardState()).run(headless=True, size=(80, 24))
"""

HELLO = """
from textual.app import App
from textual.widgets import Footer, Static
class Hello(App):
    def compose(self):
        yield Static("hello")
        yield Footer()
    def on_mount(self):
        self.call_after_refresh(lambda: self.call_after_refresh(self.exit))
Hello().run(headless=True, size=(80, 24))
"""


def once(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ours, hello = [], []
    once(SLMOPS), once(HELLO)  # warm the file cache
    for run in range(args.runs):
        pair = [(ours, SLMOPS), (hello, HELLO)]
        for bucket, code in pair if run % 2 == 0 else reversed(pair):
            bucket.append(once(code))
    median_ours, median_hello = statistics.median(ours), statistics.median(hello)
    print(f"slmops first screen: median {median_ours * 1000:.0f} ms (target <= 1000 ms)")
    print(f"bare Textual hello:  median {median_hello * 1000:.0f} ms")
    print(f"ratio slmops / hello = {median_ours / median_hello:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
