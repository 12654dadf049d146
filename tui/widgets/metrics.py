"""Live figures of a run: metric cards (a big value over its label) and a chart of generation speed
and latency per run, redrawn as each sample arrives."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from wizard_steps.core.i18n import _

PLACEHOLDER = "—"


class MetricCard(Vertical):
    """One figure: its value in bold (a dash until there is one) and what it measures."""

    DEFAULT_CLASSES = "metric-card"

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.value = PLACEHOLDER

    def compose(self) -> ComposeResult:
        yield Static(self.value, classes="metric-value")
        yield Static(self.label, classes="metric-label")

    def show(self, value: str) -> None:
        self.value = value
        self.query_one(".metric-value", Static).update(value)

    def reset(self) -> None:
        self.show(PLACEHOLDER)


class RunChart(PlotextPlot):
    """Generation tok/s (left axis) and latency in seconds (right axis) of every run in order;
    the x axis is marked where each prompt length starts. The legend is the border title."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.speeds: list[float] = []
        self.latencies: list[float] = []
        self.starts: dict[int, int] = {}  # run number where each prompt length begins
        self.border_title = _("[cyan]━ gen tok/s[/] (left) · [magenta]━ latency s[/] (right) · per run")

    def clear_runs(self) -> None:
        self.speeds.clear()
        self.latencies.clear()
        self.starts.clear()
        self.redraw()

    def add_run(self, length: int, tokens_per_s: float, latency_s: float) -> None:
        self.speeds.append(tokens_per_s)
        self.latencies.append(latency_s)
        self.starts.setdefault(length, len(self.speeds))
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not self.speeds:
            plt.title(_("waiting for the first run"))
            self.refresh()
            return
        runs = list(range(1, len(self.speeds) + 1))
        plt.plot(runs, self.speeds, color="cyan", marker="braille")
        plt.plot(runs, self.latencies, color="magenta", marker="braille",
                 yside="right")
        plt.xticks(list(self.starts.values()), [f"{n} tok" for n in self.starts])
        plt.xlim(0.5, max(len(runs), 2) + 0.5)
        # textual-plotext's stub types ylim's yside as a number; plotext takes "left"/"right", as plot() does
        plt.ylim(0, max(self.speeds) * 1.15 or 1, yside="left")  # type: ignore[arg-type]  # stub is wrong
        plt.ylim(0, max(self.latencies) * 1.15 or 1, yside="right")  # type: ignore[arg-type]  # stub is wrong
        self.refresh()
