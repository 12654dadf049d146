"""Precision: the four options for this model with their estimated size, and the INT4 settings;
a comparison run on this machine replaces the estimates with measured figures and preselects the
fastest precision that passes the quality checklist."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, TypedDict, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Collapsible, DataTable, Label, Select, Static, Switch
from textual.worker import get_current_worker

from tui.screens.base import StepScreen
from tui.widgets.compare_table import CompareTable
from tui.widgets.run_panel import RunFactory, RunPanel
from wizard_steps.conversion.precision import (
    ACCURACY_LEVELS,
    ALGORITHM_ORDER,
    BLOCK_SIZES,
    FIGURES_CPU,
    ExecutionProvider,
    Int4Algorithm,
    Int4Settings,
    Precision,
    PrecisionOption,
    algorithm_label,
    algorithm_note,
    human_size,
    int8_rotated,
    options,
    recommended,
    recommended_int4,
    rotation_refusal,
)
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.model import adapter
from wizard_steps.model.model_source import ModelInfo
from wizard_steps.verdict import compare
from wizard_steps.verdict.domain import DomainQuery

PROVIDER = ExecutionProvider.CPU  # the wizard converts for CPU; GPU providers are not offered yet
# (key, header, wraps); "quality" and "use" are shown as columns only when the screen is wide.
COLUMNS = (("precision", N_("precision"), False), ("ratio", N_("size ratio"), True),
           ("speed", N_("speed (estimate)"), True), ("quality", N_("quality"), True),
           ("use", N_("recommended use"), True), ("size", N_("est. size"), False))
WIDE_ONLY = ("quality", "use")
WIDE = 110
MARKS = {"chosen": "● ", "free": "○ ", "unavailable": "✗ "}


class CompareSettings(TypedDict, total=False):
    """What the screen passes on to ``compare.compare`` besides the model and candidates."""

    lengths: tuple[int, ...]
    new_tokens: int
    runs: int
    queries: Sequence[DomainQuery] | None
    eval_windows: int | None


def unbroken(figures: str) -> str:
    """Measured figures with the space before % dropped: "+2.2 %" wraps into "+2.2" and a lone
    "%" on the next line (a no-break space does not help: the wrapper splits at any whitespace)."""
    return re.sub(r"(\d) %", r"\1%", figures)


def column_widths(table_width: int, texts: dict[str, list[str]]) -> dict[str, int]:
    """Widths that fit ``table_width``: fixed columns get their longest text; wrapping ones get their
    longest word, then share what is left; the wide-only columns are left out when narrow."""
    keys = [key for key, _header, _wraps in COLUMNS if table_width >= WIDE or key not in WIDE_ONLY]
    headers = {key: _(header) for key, header, _wraps in COLUMNS}
    natural = {key: max(len(t) for t in [headers[key], *texts[key]]) for key in keys}
    wrapping = [key for key, _header, wraps in COLUMNS if key in keys and wraps]
    widths = {key: natural[key] for key in keys if key not in wrapping}
    for key in wrapping:
        widths[key] = max(len(word) for t in [headers[key], *texts[key]] for word in t.split())
    room = table_width - 2 * len(keys) - sum(widths.values())  # one cell of padding each side
    slack = {key: natural[key] - widths[key] for key in wrapping}
    for key in wrapping:
        if room > 0 and slack[key]:
            widths[key] += min(slack[key], room * slack[key] // sum(slack.values()))
    return widths


class PrecisionScreen(StepScreen):
    STEP = "precision"
    HELP = N_("Choose how the weights are stored. Smaller formats load faster and generate faster on "
            "a CPU but lose some quality. FP16 needs a GPU execution provider (Olive refuses it on "
            "CPU).\n\n"
            "INT4 'auto' picks the closest INT4 measured for this model's architecture: QuaRot "
            "rotations, then GPTQ calibrated on a shipped text (asymmetric, block 32) for Llama-like "
            "models, k_quant_mixed at block 16 for the others. INT8 is rotated first where QuaRot "
            "keeps the model exact. Smaller INT4 blocks keep more quality and cost a little size; "
            "quantizing the embeddings gives the smallest folder.\n\n"
            "On arrival the step measures INT4 and INT8 on this machine when that fits its time "
            "budget (a few minutes for the demo): it converts each (the convert step then goes on with "
            "the chosen one's folder), measures size, speed, perplexity and KL divergence against the "
            "source on the evaluation text and the domain answers, then stars and preselects the "
            "fastest that passes the checklist. Next › goes on at any time with the choice as it "
            "stands. Until then the sizes and speeds are estimates and the quality notes come from the "
            "demo model on another CPU; no row is starred. “Measure here” measures INT4, INT4 RTN, "
            "INT8 and FP32.\n\n"
            "Keys: up/down move in the table, enter chooses the highlighted option.")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    COMPARE_CANDIDATES = compare.DEFAULT_CANDIDATES  # what "Measure here" measures
    AUTO_MEASURE: ClassVar[tuple[str, ...]] = compare.AUTO_CANDIDATES  # measured on arrival ((): never)
    COMPARE_SETTINGS: ClassVar[CompareSettings] = {}  # compare()'s lengths, new_tokens, runs (tests: shorter)

    def __init__(self) -> None:
        super().__init__()
        self.info: ModelInfo | None = None
        self.error: str | None = None
        self.rows: list[PrecisionOption] = []
        self.choice = next((p for p in Precision if p.value == self.state.precision),
                           recommended(PROVIDER))
        self.compared: compare.Recommendation | None = None
        self.compare_rows: list[compare.Row] = []
        self.measuring: tuple[str, ...] = ()  # the candidates of the run about to start or running

    def compose_body(self) -> ComposeResult:
        saved = self.state.int4  # checked when the state was loaded: every value is one a control offers
        yield Label(_("Precision"), classes="step-title")
        yield Static(_("Reading the model…"), id="precision-model", classes="hint")
        yield Static("", id="precision-error", classes="error-line")
        yield Static("", id="precision-decision")
        yield DataTable(id="precision-table", cursor_type="row", zebra_stripes=True)
        yield RunPanel("compare", prepare=self.prepare_compare, start_label=_("Measure here"),
                       cancel_label=_("Cancel"),
                       start_tooltip=_("Convert to int4, int4-rtn, int8 and fp32 and measure each here "
                                       "(a few minutes; folders are kept and reused)"))
        with Collapsible(title=_("Measured on this machine"), id="compare-box"):
            yield CompareTable(id="compare-table")
            yield Static("", id="compare-reason")
        with Collapsible(title=_("INT4 settings"), id="int4-settings"):
            yield Static("", id="int4-estimate", classes="ok-line")
            with Grid(id="int4-grid"):
                with Vertical(classes="int4-setting"):
                    yield Label(_("block size (smaller: more exact)"))
                    yield Select([(str(size), size) for size in BLOCK_SIZES], allow_blank=False,
                                 value=saved.block_size, id="int4-block-size")
                with Vertical(classes="int4-setting"):
                    yield Label(_("algorithm"))
                    yield Select([(algorithm_label(a), a) for a in ALGORITHM_ORDER], allow_blank=False,
                                 id="int4-algorithm",
                                 value=saved.algorithm)
                with Vertical(classes="int4-setting"):
                    yield Label(_("accuracy level (compute type)"))
                    yield Select([(f"{level}: {name}", level) for level, name in ACCURACY_LEVELS.items()],
                                 allow_blank=False, value=saved.accuracy_level,
                                 id="int4-accuracy")
                with Vertical(classes="int4-setting"):
                    yield Label(_("symmetric"))
                    with Horizontal(classes="switch-row"):
                        yield Switch(saved.symmetric, id="int4-symmetric")
                        yield Label(_("off: adds zero points"), classes="switch-label")
                with Vertical(classes="int4-setting"):
                    yield Label(_("quantize embeddings"))
                    with Horizontal(classes="switch-row"):
                        yield Switch(saved.quantize_embeddings, id="int4-embeddings")
                        yield Label(_("smallest"), classes="switch-label")
        with Collapsible(title=_("Details and estimates"), id="precision-details"):
            yield Static("", id="precision-measured")
            yield Static("", id="precision-unavailable", classes="hint")
            yield Static(_("Sizes and speeds in the table are estimates, not measured on this machine."),
                         id="compare-note", classes="hint")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#int4-settings").display = False
        self.query_one("#precision-error").display = False
        self.query_one("#precision-table").display = False
        self.query_one("#compare-box").display = False
        self.inspect()

    def blocked_reason(self) -> str | None:
        if self.error:
            return _("Go back and choose a model that can be read.")
        if self.info is None:
            return _("Reading the model…")
        option = self.option(self.choice)
        if not option.available:
            return option.unavailable_reason
        resolved = self.int4_settings().resolve(self.info.architecture)
        if self.choice is Precision.INT4 and resolved.algorithm.rotated \
                and rotation_refusal(self.info.architecture):
            return _("QuaRot + GPTQ does not fit this model: choose another algorithm.")
        return None

    def before_next(self) -> bool:
        # Next while measuring goes on with the choice as it stands; the measurement stops, and the
        # folders it finished are kept (the convert step goes on with the chosen one's)
        self.query_one(RunPanel).cancel()
        settings = self.int4_settings()
        self.state.precision = self.choice.value
        self.state.int4 = settings
        return True

    # --- the model --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="inspect")
    def inspect(self) -> None:
        folder = self.state.model_dir
        try:
            if not folder:
                raise WizardError(_("No model has been chosen yet."), _("Go back to the Model step."))
            result: ModelInfo | str = adapter.inspect_model_or_adapter(folder)
        except WizardError as exc:
            result = str(exc)
        saved = compare.load_saved(folder) if folder and isinstance(result, ModelInfo) else None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_model, result, saved)

    def show_model(self, result: ModelInfo | str, saved: compare.Recommendation | None = None) -> None:
        if isinstance(result, str):
            self.error = result
            error = self.query_one("#precision-error", Static)
            error.update(Text(result))
            error.display = True
            self.query_one("#precision-model", Static).update("")
            self.refresh_nav()
            return
        self.info = result
        self.query_one("#precision-model", Static).update(Text(
            _("{name}: {parameters} M parameters, {size} on disk ({dtype}); target: {target}").format(
                name=result.name, parameters=number(result.num_parameters / 1e6, 1),
                size=human_size(result.size_bytes), dtype=result.weights_dtype, target=PROVIDER.device.upper())))
        self.follow_auto()
        self.rows = self.compute_rows()
        if not self.option(self.choice).available:
            self.choice = recommended(PROVIDER)
        self.build_table()
        notes = [f"✗ {o.label}: {o.unavailable_reason}" for o in self.rows if not o.available]
        notes.append(_("enter chooses the highlighted row; ★ marks the precision measured best on this "
                       "machine, once measured here"))
        self.query_one("#precision-unavailable", Static).update(Text("\n".join(notes)))
        self.show_choice()
        self.query_one("#precision-table").focus(scroll_visible=False)
        if saved is not None:
            self.show_comparison(saved)
        elif self.AUTO_MEASURE and self.measure_estimate(self.AUTO_MEASURE) <= compare.MEASURE_BUDGET_S:
            self.measuring = self.AUTO_MEASURE  # the default road: measured here before it chooses
            self.query_one("#compare-run", RunPanel).start()
        self.show_decision()

    # --- the table --------------------------------------------------------------------------

    def int4_settings(self) -> Int4Settings:
        return Int4Settings(
            # both Selects have allow_blank=False and int values: never Select.BLANK
            block_size=cast(int, self.query_one("#int4-block-size", Select).value),
            symmetric=self.query_one("#int4-symmetric", Switch).value,
            accuracy_level=cast(int, self.query_one("#int4-accuracy", Select).value),
            algorithm=Int4Algorithm(self.query_one("#int4-algorithm", Select).value),
            quantize_embeddings=self.query_one("#int4-embeddings", Switch).value,
        )

    def follow_auto(self) -> None:
        """With the automatic algorithm, the block size and symmetry are its choice for this model:
        shown, not editable; with a named one, the user's."""
        auto = self.query_one("#int4-algorithm", Select).value == Int4Algorithm.AUTO
        block = self.query_one("#int4-block-size", Select)
        symmetric = self.query_one("#int4-symmetric", Switch)
        block.disabled = symmetric.disabled = auto
        if auto and self.info is not None:
            chosen = recommended_int4(self.info.architecture)
            if block.value != chosen.block_size:
                block.value = chosen.block_size
            if symmetric.value != chosen.symmetric:
                symmetric.value = chosen.symmetric

    def compute_rows(self) -> list[PrecisionOption]:
        assert self.info is not None
        return options(self.info.num_parameters, self.info.vocab_size, self.info.hidden_size,
                       PROVIDER, tied_embeddings=self.info.tied_embeddings,
                       int4=self.int4_settings().resolve(self.info.architecture))

    def recommended_precision(self) -> Precision | None:
        """The comparison's recommendation once one has run here; nothing is starred before that
        (a figure measured on another CPU does not decide for this one)."""
        if self.compared is not None and self.compared.candidate is not None:
            return compare.candidates()[self.compared.candidate].precision
        return None

    def option(self, precision: Precision) -> PrecisionOption:
        return next(o for o in self.rows if o.precision is precision)

    def cells(self, option: PrecisionOption) -> dict[str, Text]:
        mark = ("chosen" if option.precision is self.choice else
                "free" if option.available else "unavailable")
        star = " ★" if option.precision is self.recommended_precision() else ""
        texts = {"precision": MARKS[mark] + option.label + star, "ratio": option.size_ratio,
                 "speed": option.speed, "quality": option.quality, "use": option.use,
                 "size": human_size(option.estimated_bytes)}
        style = "" if option.available else "dim"
        return {key: Text(text, style=style) for key, text in texts.items()}

    def build_table(self) -> None:
        """(Re)build the rows with column widths that fit the table's current width."""
        if not self.rows:
            return
        table = self.query_one("#precision-table", DataTable)
        table.display = True
        cursor = table.cursor_row if table.row_count else self.rows.index(self.option(self.choice))
        texts = {key: [cells[key].plain for cells in map(self.cells, self.rows)]
                 for key, _header, _wraps in COLUMNS}
        widths = column_widths(self.size.width - 6, texts)  # body padding and scrollbar
        table.clear(columns=True)
        for key, header, _wraps in COLUMNS:
            if key in widths:
                table.add_column(_(header), key=key, width=widths[key])
        for option in self.rows:
            cells = self.cells(option)
            table.add_row(*(cells[key] for key, _header, _wraps in COLUMNS if key in widths),
                          key=option.precision.value, height=None)
        table.move_cursor(row=cursor, animate=False)
        self.show_details(cursor)

    def refresh_cells(self) -> None:
        table = self.query_one("#precision-table", DataTable)
        for option in self.rows:
            cells = self.cells(option)
            for key in ("precision", "size"):
                table.update_cell(option.precision.value, key, cells[key])

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.build_table)

    @on(DataTable.RowHighlighted, "#precision-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_details(event.cursor_row)

    def show_details(self, row: int) -> None:
        """The highlighted option's measured figures, and the columns a narrow table leaves out."""
        if not self.rows or row >= len(self.rows):
            return
        option = self.rows[row]
        lines = [Text.assemble((_("{label} on the demo model, on the evaluation text, measured on an {cpu} "
                                  "(not here): ").format(label=option.label, cpu=FIGURES_CPU), "bold"),
                               unbroken(option.demo_measured))]
        if option.precision is Precision.INT8 and self.info is not None:
            lines.append(Text(_("For this model ({architecture}): rotated first (QuaRot), closer to the "
                                "source's answers.").format(architecture=self.info.architecture)
                              if int8_rotated(self.info.architecture) else
                              _("For this model ({architecture}): not rotated (QuaRot is checked only for "
                                "Llama-like models).").format(architecture=self.info.architecture)))
        if len(self.query_one("#precision-table", DataTable).columns) < len(COLUMNS):
            lines += [Text.assemble((_("quality: "), "bold"), option.quality),
                      Text.assemble((_("use: "), "bold"), option.use)]
        self.query_one("#precision-measured", Static).update(Text("\n").join(lines))

    @on(DataTable.RowSelected, "#precision-table")
    def selected(self, event: DataTable.RowSelected) -> None:
        option = self.rows[event.cursor_row]
        if not option.available:
            self.notify(option.unavailable_reason, title=_("{label} is not available").format(label=option.label),
                        severity="warning")
            return
        self.choice = option.precision
        self.show_choice()

    def show_choice(self) -> None:
        self.refresh_cells()
        self.query_one("#int4-settings").display = self.choice is Precision.INT4
        self.show_estimate()
        self.show_decision()
        self.refresh_nav()

    # --- INT4 settings ----------------------------------------------------------------------

    @on(Select.Changed, ".int4-setting Select")
    @on(Switch.Changed, ".int4-setting Switch")
    def int4_changed(self) -> None:
        if self.info is None:
            return
        self.follow_auto()
        self.rows = self.compute_rows()
        self.refresh_cells()
        self.show_estimate()
        self.refresh_nav()

    def show_estimate(self) -> None:
        if self.info is None:
            return
        size = human_size(self.option(Precision.INT4).estimated_bytes)
        algorithm = Int4Algorithm(self.query_one("#int4-algorithm", Select).value)
        resolved = self.int4_settings().resolve(self.info.architecture).algorithm
        refusal = rotation_refusal(self.info.architecture) if resolved.rotated else None
        self.query_one("#int4-settings", Collapsible).title = _("INT4 settings: {settings}").format(
            settings=self.int4_settings().resolve(self.info.architecture).describe())
        estimate = self.query_one("#int4-estimate", Static)
        estimate.set_class(refusal is None, "ok-line").set_class(refusal is not None, "error-line")
        if refusal:  # what holds Next back is shown, not folded away
            self.query_one("#int4-settings", Collapsible).collapsed = False
        estimate.update(
            _("INT4 with these settings: about {size} (source folder {source})").format(
                size=size, source=human_size(self.info.size_bytes)) + "\n"
            + (" ".join(refusal) if refusal else unbroken(algorithm_note(algorithm)))
            + ("\n" + _("For this model ({architecture}): {algorithm}.").format(
                architecture=self.info.architecture, algorithm=resolved.value)
               if algorithm is Int4Algorithm.AUTO else ""))

    # --- the comparison on this machine -------------------------------------------------------

    def measure_estimate(self, names: Sequence[str]) -> float:
        """Seconds a comparison of ``names`` should take for this model here (an estimate)."""
        if self.info is None:
            return float("inf")
        return compare.estimate_seconds(self.info, compare.parse_candidates(names))

    def prepare_compare(self) -> RunFactory | None:
        if self.info is None:
            self.notify(_("The model has not been read yet."), severity="warning")
            return None
        names = self.measuring or self.COMPARE_CANDIDATES
        self.measuring = names
        model, chosen = self.info.path, compare.parse_candidates(names)
        self.compare_rows = []
        self.query_one("#compare-reason").display = False
        return lambda stop: compare.compare(model, chosen, stop, **self.COMPARE_SETTINGS)

    def show_decision(self) -> None:
        """The step's one decision and its one-line reason, above the table: what is chosen and
        whether that was measured here."""
        if self.info is None or not self.rows:
            return
        line = self.query_one("#precision-decision", Static)
        chosen = self.option(self.choice).label
        if self.query_one("#compare-run", RunPanel).running:
            minutes = max(1, round(self.measure_estimate(self.measuring) / 60))
            line.update(Text(_("Measuring {names} here (about {minutes} min, an estimate) to choose the fastest "
                               "that keeps the source's answers. Next › now goes on with {choice}, "
                               "unmeasured.").format(names=", ".join(n.upper() for n in self.measuring),
                                                     minutes=minutes, choice=chosen), style="yellow"))
        elif self.compared is not None and self.compared.candidate is not None:
            best = compare.candidates()[self.compared.candidate].precision
            lead = _("★ {label}, measured here: ").format(label=self.option(best).label)
            tail = "" if best is self.choice else " " + _("(You chose {choice}.)").format(choice=chosen)
            line.update(Text.assemble((lead, "bold green"), unbroken(self.compared.reason) + tail))
        elif self.compared is not None:
            line.update(Text.assemble((_("Nothing measured here passes the checklist. "), "bold yellow"),
                                      unbroken(self.compared.reason)))
        else:
            line.update(Text(_("{choice} is chosen, not measured on this machine: “Measure here” converts "
                               "and checks each precision against the source.").format(choice=chosen)))

    @on(RunPanel.RunningChanged, "#compare-run")
    def compare_running(self) -> None:
        self.show_decision()
        self.refresh_nav()

    @on(RunPanel.Event, "#compare-run")
    def compare_event(self, message: RunPanel.Event) -> None:
        event, panel = message.event, message.panel
        if isinstance(event, compare.CandidateEvent) and isinstance(event.event, Progress):
            panel.set_stage(f"{event.candidate}: {event.event.stage}")
            panel.set_progress((event.index + (event.event.fraction or 0.0) * 0.8) / event.total)
        elif isinstance(event, compare.Row):
            self.compare_rows.append(event)
            self.query_one("#compare-box").display = True
            self.query_one("#compare-table", CompareTable).show(self.compare_rows)
        elif isinstance(event, compare.Recommendation):
            self.show_comparison(event)

    @on(RunPanel.Ended, "#compare-run")
    def compare_ended(self, message: RunPanel.Ended) -> None:
        if message.cancelled:
            message.panel.show_result(Text(_("Cancelled: the folders finished so far are kept and reused "
                                             "next time; nothing half-written stays."), style="yellow"))
        self.measuring = ()
        self.show_decision()
        self.refresh_nav()

    def show_comparison(self, result: compare.Recommendation) -> None:
        """The measured table replaces the estimates; the recommended precision is preselected."""
        self.compared = result
        box = self.query_one("#compare-box", Collapsible)
        box.display = True
        box.collapsed = self.app.size.height < 40  # on a tall terminal the measured table has room
        self.query_one("#compare-table", CompareTable).show(result.rows, result.candidate)
        note = _("Measured on this machine ({cpu}); the table above holds estimates.").format(cpu=result.cpu)
        self.query_one("#compare-note", Static).update(Text(note))
        reason = self.query_one("#compare-reason", Static)
        reason.update(Text("★ " + result.reason))
        reason.display = True
        if result.candidate is not None:
            self.preselect(compare.candidates()[result.candidate])
        self.show_decision()

    def preselect(self, candidate: compare.Candidate) -> None:
        if self.info is None or not self.option(candidate.precision).available:
            return
        self.choice = candidate.precision
        if candidate.precision is Precision.INT4:
            settings = candidate.int4
            self.query_one("#int4-block-size", Select).value = settings.block_size
            self.query_one("#int4-algorithm", Select).value = settings.algorithm
            self.query_one("#int4-accuracy", Select).value = settings.accuracy_level
            self.query_one("#int4-symmetric", Switch).value = settings.symmetric
            self.query_one("#int4-embeddings", Switch).value = settings.quantize_embeddings
            self.rows = self.compute_rows()
        table = self.query_one("#precision-table", DataTable)
        if table.row_count:
            table.move_cursor(row=self.rows.index(self.option(self.choice)), animate=False)
        self.show_choice()

