"""Benchmark (optional): the plan, a live run on the converted or deployed model (metric cards and a
chart per sample, a median / p95 table per prompt length), the quality checklist, and the report
exported as Markdown, JSON and CSV."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Static, Switch

from tui.screens.base import StepScreen
from tui.screens.tune import TuneScreen
from tui.widgets.metrics import MetricCard, RunChart
from tui.widgets.run_panel import RunFactory, RunPanel
from wizard_steps.core import paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Failed
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.deployment.engine_foundry import FoundryBackend
from wizard_steps.measurement import benchmark
from wizard_steps.measurement.benchmark import BenchPlan, BenchSample, BenchSummary, parse_lengths
from wizard_steps.measurement.machine import Machine
from wizard_steps.model.adapter import is_adapter_folder
from wizard_steps.prompt.templates import PromptTemplate
from wizard_steps.road import models
from wizard_steps.road.checkup import CHECKS, CheckStarted, Checkup, run_checkup
from wizard_steps.road.state import state_template
from wizard_steps.runtime.engine import Backend
from wizard_steps.verdict import quality
from wizard_steps.verdict.quality import QualityCheck
from wizard_steps.verdict.remedy import Converted, Remedy, convert_and_check, describe_converted, remedy_for

CARDS = (("ttft", N_("TTFT ms")), ("prompt-tps", N_("prompt tok/s")), ("tps", N_("gen tok/s")),
         ("rss", N_("RSS MB")), ("cpu", N_("CPU %")))
MARKS = {"pass": (N_("✓ pass"), "green"), "fail": (N_("✗ fail"), "bold red"),
         "skipped": (N_("– skipped"), "dim")}
SUMMARY_COLUMNS = (("length", N_("Prompt")), ("runs", N_("Runs")), ("ttft", N_("TTFT ms")),
                   ("prompt", N_("Prompt tok/s")), ("tps", N_("Gen tok/s")), ("latency", N_("Latency s")))


def pair(median: float, p95: float, digits: int) -> str:
    return f"{number(median, digits)} / {number(p95, digits)}"


class BenchmarkScreen(StepScreen):
    STEP = "benchmark"
    HELP = N_("Optional. Measures the model where it will run: Foundry Local when it is deployed, "
            "otherwise onnxruntime-genai on the converted folder. Each prompt length is run once "
            "to warm up, then the number of runs you choose, generating exactly the number of new "
            "tokens given. TTFT is the time to the first token; prompt tok/s is the prompt's "
            "length over TTFT; gen tok/s counts the tokens after the first. The table gives the "
            "median and the 95th percentile per length.\n\n"
            "The quality checklist follows: the demo domain queries (judged against the source "
            "model's own answers), reply format, memory in long use, speed across lengths, edge "
            "cases, and fidelity to the source on the evaluation text (about 22,000 tokens; the "
            "source runs once per machine with torch in a child process, then the model: a minute or "
            "two on 2 cores; switch it off to skip). Export writes report.md, report.json and "
            "report.csv.\n\n"
            "When the checklist fails on the answers or the fidelity, the screen names the precision "
            "that keeps closer to the source (or the one a comparison here found to pass) and offers "
            "to convert to it and check again (key f).\n\n"
            "Keys: s start, escape stop, q quality checks only, e export, f the fix.")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    QUERIES: tuple[quality.DomainQuery, ...] | None = None  # the checklist's queries (None: the demo's)
    EVAL_WINDOWS: int | None = None  # fidelity on the first windows only (None: the whole evaluation text)
    BINDINGS = [
        Binding("s", "start", N_("Start")),
        Binding("escape", "stop", N_("Stop")),
        Binding("q", "quality", N_("Quality checks"), show=False),  # the footer fits 80 columns
        Binding("e", "export", N_("Export")),
        Binding("t", "tune", N_("Tune for this machine"), show=False),
        Binding("f", "fix", N_("Fix"), show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan: BenchPlan | None = None
        self.plan_error = ""
        self.summary: BenchSummary | None = None
        self.samples: list[BenchSample] = []
        self.checks: dict[str, QualityCheck] = {}
        self.check_running: str | None = None
        self.check_started = 0.0
        self.remedy: Remedy | None = None

    def compose_body(self) -> ComposeResult:
        state = self.state
        yield Label(_("Benchmark (optional)"), classes="step-title")
        yield Static("", id="bench-backend")
        with Container(id="bench-options"):
            with Horizontal(id="bench-plan"):
                yield Label(_("Prompt lengths"), classes="bench-field-label")
                yield Input(",".join(map(str, state.bench_lengths)), id="bench-lengths",
                            placeholder="16,128,512")
                yield Label(_("Runs"), classes="bench-field-label")
                yield Input(str(state.bench_runs), type="integer", id="bench-runs")
                yield Label(_("New tokens"), classes="bench-field-label")
                yield Input(str(state.bench_new_tokens), type="integer", id="bench-new-tokens")
            with Horizontal(id="bench-fidelity-row"):
                yield Switch(True, id="bench-fidelity")
                yield Label(_("Compare with the source (slow)"), id="bench-fidelity-label")
        yield Label("", id="bench-error", classes="error-line")
        quality_button = Button(_("Quality checks"), id="bench-quality", tooltip=_("Only the checklist (key q)"))
        yield RunPanel("bench", prepare=self.prepare_run, start_label=_("Start"), cancel_label=_("Stop"),
                       cancelling_label=_("Stopping…"), extra_buttons=[quality_button],
                       cancel_id="bench-stop")
        with Horizontal(id="bench-cards"):
            for key, label in CARDS:
                yield MetricCard(_(label), id=f"card-{key}")
        yield RunChart(id="bench-chart")
        with Vertical(id="bench-results"):
            yield Label(_("Per prompt length"), classes="section-title")
            yield Static(_("Each cell: median / p95 over the measured runs (warm-up left out)."),
                         classes="hint")
            yield DataTable(id="bench-summary", cursor_type="row", zebra_stripes=True)
            yield Static("", id="bench-summary-note")
            yield Static("", id="bench-machine", classes="hint")
        with Vertical(id="bench-quality-box"):
            yield Label(_("Quality checklist"), classes="section-title")
            yield Static("", id="bench-quality-table")
            with Vertical(id="bench-fix-row"):
                yield Static("", id="bench-fix-reason", classes="error-line")
                yield Button("", id="bench-fix", variant="warning")
        with Horizontal(id="bench-export-row"):
            yield Label(_("Reports folder"), classes="bench-field-label")
            yield Input(str(paths.data_dir() / "reports"), id="bench-export-dir")
            yield Button(_("Export"), id="bench-export", variant="primary")
        yield Static("", id="bench-export-result")
        with Horizontal(id="bench-tune-row", classes="row"):
            yield Button(_("Tune for this machine"), id="bench-tune",
                         tooltip=_("Measure onnxruntime's thread settings here and keep the fastest (key t)"))
            yield Static(_("onnxruntime's default can leave cores idle; about a minute."),
                         classes="hint", id="bench-tune-hint")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#bench-summary", DataTable)
        for key, label in SUMMARY_COLUMNS:
            table.add_column(_(label), key=key)
        self.query_one("#bench-results").display = False
        self.query_one("#bench-quality-box").display = False
        self.query_one("#bench-fix-row").display = False
        self.query_one("#bench-chart", RunChart).redraw()
        self.query_one("#bench-backend", Static).update(self.describe_backend())
        self.query_one("#bench-stage", Label).update(_("Press s to start."))
        self.replan()
        self.query_one("#bench-start", Button).focus()
        self.set_interval(1.0, self.tick)

    def on_resize(self) -> None:
        # a tall terminal gives the chart its height; the cards and the chart stay on screen together
        self.query_one("#bench-chart").styles.height = max(10, min(30, self.size.height - 26))

    # --- the plan and the backend ---------------------------------------------------------------

    def describe_backend(self) -> Text:
        state = self.state
        if state.deployed_id:
            return Text.assemble(("Foundry Local", "bold"), " · " + _("the deployed model {model}").format(
                model=state.deployed_id))
        if state.converted_dir:
            return Text.assemble(("onnxruntime-genai", "bold"), " " + _("in this process") + " · ",
                                 state.converted_dir)
        return Text(_("Nothing to measure yet: convert the model first (or deploy it)."), style="red")

    def template(self) -> PromptTemplate:
        return state_template(self.state)[0]

    def open_backend(self) -> Backend:
        """Foundry Local when the model is deployed, else onnxruntime-genai on the converted folder."""
        state = self.state
        if state.deployed_id:  # measured as deployed, or refused: never silently another model

            return FoundryBackend(state.deployed_id, self.template())
        return models.open_backend(models.for_wizard(None, state.converted_dir), self.template())

    def model_name(self) -> str:
        return self.state.deployed_id or Path(self.state.converted_dir or "model").name

    def build_plan(self) -> BenchPlan:
        if not (self.state.deployed_id or self.state.converted_dir):
            raise WizardError(_("There is no converted or deployed model to measure."))
        lengths = parse_lengths(self.query_one("#bench-lengths", Input).value, _("Prompt lengths"))
        numbers = []
        for selector, what in (("#bench-runs", _("Runs must be a whole number.")),
                               ("#bench-new-tokens", _("New tokens must be a whole number."))):
            try:
                numbers.append(int(self.query_one(selector, Input).value))
            except ValueError:
                raise WizardError(what) from None
        return BenchPlan(lengths, new_tokens=numbers[1], runs=numbers[0]).validate()

    def replan(self) -> None:
        try:
            self.plan, self.plan_error = self.build_plan(), ""
        except WizardError as exc:
            self.plan, self.plan_error = None, exc.message
        self.query_one("#bench-error", Label).update(self.plan_error)
        self.show_controls()

    @on(Input.Changed, "#bench-plan Input")
    def plan_changed(self) -> None:
        self.replan()

    def save_plan(self) -> None:
        if self.plan is not None:
            self.state.bench_lengths = list(self.plan.lengths)
            self.state.bench_runs = self.plan.runs
            self.state.bench_new_tokens = self.plan.new_tokens

    def before_next(self) -> bool:
        self.save_plan()
        return True

    def refresh_nav(self) -> None:
        super().refresh_nav()
        done = self.summary is not None or bool(self.checks)
        self.query_one("#next", Button).label = _("Next ›") if done else _("Skip ›")

    # --- controls ---------------------------------------------------------------------------------

    def show_controls(self) -> None:
        self.panel.set_ready(self.plan is not None)
        can_measure = bool(self.state.deployed_id or self.state.converted_dir)
        self.query_one("#bench-quality", Button).disabled = self.running or not can_measure
        self.query_one("#bench-export", Button).disabled = self.running or self.summary is None
        for widget in self.query("#bench-plan Input, #bench-fidelity"):
            widget.disabled = self.running
        self.refresh_bindings()
        self.refresh_nav()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "quality"):
            return not self.running
        if action == "fix":
            return not self.running and self.remedy is not None
        if action == "stop":
            return self.running
        if action == "export":
            return not self.running and self.summary is not None
        return super().check_action(action, parameters)

    def action_start(self) -> None:
        self.panel.start()

    def action_stop(self) -> None:
        self.panel.cancel()

    def prepare_run(self) -> RunFactory | None:
        """Start: the benchmark, then the checklist."""
        self.replan()
        if self.plan is None:
            self.notify(self.plan_error, severity="error")
            return None
        self.save_plan()
        self.summary, self.samples = None, []
        for card in self.query(MetricCard):
            card.reset()
        self.query_one("#bench-chart", RunChart).clear_runs()
        self.query_one("#bench-summary", DataTable).clear()
        self.query_one("#bench-results").display = False
        return self.begin(self.job(self.plan))

    @on(Button.Pressed, "#bench-quality")
    def action_quality(self) -> None:
        if self.running:
            return
        if not (self.state.deployed_id or self.state.converted_dir):
            self.notify(_("There is no converted or deployed model to check."), severity="error")
            return
        self.panel.run(self.begin(self.job(None)))

    def job(self, plan: BenchPlan | None) -> Checkup:
        folder = self.state.model_dir
        source = folder if folder and ((Path(folder) / "config.json").is_file()
                                       or is_adapter_folder(folder)) else None  # base + adapter
        return Checkup(plan, source, self.query_one("#bench-fidelity", Switch).value,
                   self.state.converted_dir, self.model_name(), self.QUERIES or quality.demo_queries(),
                   self.EVAL_WINDOWS)

    def begin(self, job: Checkup) -> RunFactory:
        self.checks, self.check_running = {}, None
        self.show_remedy(None)
        self.query_one("#bench-quality-box").display = False
        self.query_one("#bench-export-result", Static).update("")
        self.query_one("#bench-machine", Static).update("")
        backend = self.open_backend  # opened in the worker: loading a model takes a while
        return lambda stop: run_checkup(job, backend, stop)

    def show_remedy(self, remedy: Remedy | None) -> None:
        """The fix a failed checklist calls for, as one line and one button (key f)."""
        self.remedy = remedy
        self.query_one("#bench-fix-row").display = remedy is not None
        if remedy is not None:
            self.query_one("#bench-fix-reason", Static).update(remedy.reason)
            self.query_one("#bench-fix", Button).label = remedy.action
        self.refresh_bindings()

    @on(Button.Pressed, "#bench-fix")
    def action_fix(self) -> None:
        """Convert to the remedy's precision, then run the checklist again on the new folder."""
        remedy, model_dir = self.remedy, self.state.model_dir
        if self.running or remedy is None or not model_dir:
            return
        job = self.job(None)
        self.checks, self.check_running = {}, None
        self.show_remedy(None)
        self.query_one("#bench-quality-box").display = False
        self.panel.run(lambda stop: convert_and_check(model_dir, remedy.precision, self.template(), job.queries,
                                                      stop, job.source if job.fidelity else None,
                                                      job.eval_windows))

    @on(Button.Pressed, "#bench-tune")
    def action_tune(self) -> None:
        """Measure the thread settings on the model this screen measures (not while it runs)."""
        if self.is_busy():
            self.notify(_("Stop the benchmark first."), severity="warning")
            return
        folder, deployed = self.tuned_folder()
        if folder is None:
            self.notify(_("There is no converted or deployed model to tune."), severity="warning")
            return
        self.app.push_screen(TuneScreen(folder, self.template(), deployed))

    def tuned_folder(self) -> tuple[Path | None, bool]:
        """The deployed copy when the model is deployed (Foundry reads it), else the converted folder."""
        try:
            target = models.for_wizard(self.state.deployed_id, self.state.converted_dir)
        except WizardError:
            return None, False
        return target.folder, target.deployed

    def set_stage(self, text: str) -> None:
        self.panel.set_stage(text)

    def tick(self) -> None:
        if self.check_running:
            self.show_checks()

    # --- the run, in the panel's worker ---------------------------------------------------------

    @on(RunPanel.Event, "#bench-run")
    def show_event(self, message: RunPanel.Event) -> None:
        event = message.event
        if isinstance(event, BenchSample):
            self.show_sample(event)
        elif isinstance(event, BenchSummary):
            self.show_summary(event)
        elif isinstance(event, Machine):
            self.show_machine(event)
        elif isinstance(event, Converted):
            self.use_converted(event)
        elif isinstance(event, CheckStarted):
            self.query_one("#bench-quality-box").display = True
            self.check_running, self.check_started = event.name, time.monotonic()
            self.show_checks()
        elif isinstance(event, QualityCheck):
            self.checks[event.name] = event
            later = [name for name in CHECKS if name not in self.checks]
            self.check_running = later[0] if later else None
            self.check_started = time.monotonic()
            self.panel.set_progress(len(self.checks) / len(CHECKS))
            self.show_checks()

    def use_converted(self, event: Converted) -> None:
        """The remedy's folder is now the wizard's model; the deployed one is of the old precision,
        so the next steps use the folder until it is deployed again."""
        self.state.converted_dir = str(event.path)
        self.state.precision = event.precision.value
        self.state.deployed_id = None
        self.state.save()
        self.query_one("#bench-backend", Static).update(self.describe_backend())
        self.set_stage(describe_converted(event))
        self.query_one("#bench-quality-box").display = True
        self.check_running, self.check_started = CHECKS[0], time.monotonic()
        self.show_checks()

    def show_sample(self, sample: BenchSample) -> None:
        self.samples.append(sample)
        figures = {"ttft": number(sample.ttft_s * 1000), "prompt-tps": number(sample.prompt_tokens_per_s),
                   "tps": number(sample.tokens_per_s, 1), "rss": number(sample.rss_bytes / 1e6),
                   "cpu": number(sample.cpu_percent)}
        for key, value in figures.items():
            self.query_one(f"#card-{key}", MetricCard).show(value)
        self.query_one("#bench-chart", RunChart).add_run(sample.length, sample.tokens_per_s,
                                                         sample.latency_s)

    def show_summary(self, summary: BenchSummary) -> None:
        self.summary = summary
        table = self.query_one("#bench-summary", DataTable)
        table.clear()
        for row in summary.per_length:
            table.add_row(str(row.length), str(row.runs), pair(row.ttft_median_s * 1000, row.ttft_p95_s * 1000, 0),
                          number(row.prompt_tps_median), pair(row.tps_median, row.tps_p95, 1),
                          pair(row.latency_median_s, row.latency_p95_s, 2), key=str(row.length))
        model = summary.model_rss_bytes
        memory = (_("model and runtime {model} MB (the wizard's process: {rss} MB)").format(
                      model=number(model / 1e6), rss=number(summary.peak_rss_bytes / 1e6)) if model is not None
                  else _("Peak RSS {rss} MB").format(rss=number(summary.peak_rss_bytes / 1e6)))
        by_length = _("peak by prompt length: {values} MB").format(values=" / ".join(
            f"{row.length}: {number(row.rss_peak_bytes / 1e6)}" for row in summary.per_length))
        self.query_one("#bench-summary-note", Static).update(
            f"{memory} · {by_length} · {summary.backend} · {summary.leak.note}")
        self.query_one("#bench-results").display = bool(summary.per_length)
        self.refresh_nav()

    def show_machine(self, machine: Machine) -> None:
        """The CPU, its kernels and bandwidth, and the medians as fractions of the memory bound."""
        lines = [machine.describe()]
        if self.summary is not None:
            lines.append(machine.against({r.length: r.tps_median for r in self.summary.per_length},
                                         self.summary.plan.new_tokens))
        self.query_one("#bench-machine", Static).update(Text("\n".join(line for line in lines if line)))

    def show_checks(self) -> None:
        if self.check_running and not self.panel.stop.is_set():
            self.set_stage(_("Checking fidelity on the evaluation text (a minute or two)…")
                           if self.check_running == quality.FIDELITY
                           else _("Checking: {check}…").format(check=_(self.check_running)))
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column(_("Check"), ratio=2)
        table.add_column(_("Result"), no_wrap=True, min_width=10)
        table.add_column(_("Evidence"), ratio=5)
        for name in CHECKS:
            check = self.checks.get(name)
            if check is not None:
                mark, style = MARKS[check.status]
                table.add_row(_(name), Text(_(mark), style=style), check.evidence)
            elif name == self.check_running:
                seconds = int(time.monotonic() - self.check_started)
                note = (_("the source (torch, once per machine) and the model on the evaluation text")
                        if name == quality.FIDELITY else "")
                table.add_row(_(name), Text(f"… {seconds} s", style="yellow"), Text(note, style="dim"))
            else:
                table.add_row(_(name), Text(_("stopped") if not self.running else _("waiting"), style="dim"), "")
        self.query_one("#bench-quality-table", Static).update(table)

    @on(RunPanel.Ended, "#bench-run")
    def finish(self, message: RunPanel.Ended) -> None:
        stopped = message.cancelled
        checking = bool(self.checks) or self.check_running is not None
        self.check_running = None
        measured = sum(not s.warmup for s in self.samples)
        if isinstance(message.outcome, Failed) and not stopped:
            self.set_stage(_("Failed"))
        elif stopped:
            self.set_stage(_("Stopped during the quality checks.") if checking
                           else _("Stopped after {count} measured runs.").format(count=measured))
        else:
            self.set_stage(_("Done."))
            self.panel.set_progress(1.0)
        if self.checks or self.query_one("#bench-quality-box").display:
            self.show_checks()
        if not stopped and self.checks:
            self.show_remedy(remedy_for(list(self.checks.values()), self.state.precision, self.state.model_dir))
        self.record()
        self.show_controls()

    def record(self) -> None:
        """The medians and the checklist's verdict, kept in the state for the summary."""
        if self.summary is None and not self.checks:
            return
        self.state.bench_result = benchmark.record(self.summary, [self.checks[n] for n in CHECKS
                                                                  if n in self.checks])
        if self.remedy is not None:  # the summary names the fix too
            self.state.bench_result["fix"] = {"precision": self.remedy.precision.value,
                                              "reason": self.remedy.reason}
        self.state.save()

    # --- export -----------------------------------------------------------------------------------

    @on(Button.Pressed, "#bench-export")
    def action_export(self) -> None:
        if self.summary is None:
            self.notify(_("Run the benchmark first."), severity="warning")
            return
        folder = Path(self.query_one("#bench-export-dir", Input).value.strip() or
                      paths.data_dir() / "reports").expanduser()
        result = self.query_one("#bench-export-result", Static)
        try:
            paths.ensure(folder)
            markdown = benchmark.to_markdown(self.summary)
            if self.checks:
                markdown += "\n" + quality.to_markdown([self.checks[n] for n in CHECKS if n in self.checks])
            tmp = folder / ".report.md.tmp"
            tmp.write_text(markdown, encoding="utf-8")
            tmp.replace(folder / "report.md")
            for suffix in (".json", ".csv"):
                benchmark.export(self.summary, folder / f"report{suffix}")
        except OSError as exc:
            result.update(Text(_("Cannot write the reports to {folder}: {error}.").format(
                folder=folder, error=exc.strerror or exc), style="red"))
            return
        result.update(Text.assemble(("✓ ", "green"), _("Wrote report.md, report.json and report.csv to") + " ",
                                    (str(folder), "bold")))
        result.scroll_visible()
