"""Summary: what the wizard did and where everything is, and the commands that do it all again
without the wizard (slmops convert / deploy / bench / chat)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Label, Static, TextArea

from tui.screens.base import StepScreen
from wizard_steps.conversion.convert import int4_in_config, rotated_in_config
from wizard_steps.conversion.precision import Int4Algorithm, human_size
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.measurement.tune import recorded
from wizard_steps.measurement.tune_quick import QuickTune, describe
from wizard_steps.model.adapter import is_adapter_folder, tokenizer_folder
from wizard_steps.model.model_source import folder_size
from wizard_steps.road.state import WizardState, save_answers

NOT_DONE = N_("not done")  # shown with _()
_SHELL_SPECIAL = set(" \t\"'&;|()<>$`*?[]{}!#~")


def shell_arg(value: str) -> str:
    """A path or name as one argument, quoted only when it needs it (POSIX and Windows shells)."""
    return f'"{value}"' if not value or _SHELL_SPECIAL & set(value) else value


def precision_flags(state: WizardState) -> list[str]:
    """The ``slmops convert`` flags that reproduce the precision chosen in the wizard."""
    flags = ["--precision", state.precision]
    if state.precision == "int4":
        int4 = state.int4
        flags += ["--int4-algo", int4.algorithm.value]
        if int4.algorithm is not Int4Algorithm.AUTO:  # "auto" brings its own
            flags += ["--block-size", str(int4.block_size), "--symmetric" if int4.symmetric else "--asymmetric"]
        if int4.accuracy_level != 4:
            flags += ["--accuracy-level", str(int4.accuracy_level)]
        if int4.quantize_embeddings:
            flags.append("--quantize-embeddings")
    return flags


def deploy_name(state: WizardState) -> str:
    if state.deploy_name:
        return state.deploy_name
    if state.deployed_id:
        return state.deployed_id.split(":")[0]
    return "my-model"


def headless_commands(state: WizardState) -> str:
    """The wizard's run as four commands a user can paste into a terminal or a script."""
    model = "demo" if state.use_demo or not state.model_dir else shell_arg(state.model_dir)
    out = state.converted_dir or state.output_dir
    convert = ["slmops", "convert", model, *precision_flags(state)]
    if out:
        convert += ["--out", shell_arg(out)]
    name = shell_arg(deploy_name(state))
    folder = shell_arg(out) if out else "CONVERTED_DIR"
    return "\n".join([" ".join(convert), f"slmops deploy {folder} --name {name}",
                      f"slmops bench {name}", f"slmops chat {name}"])


def _folder(value: str | None) -> Text:
    """A folder with its size, or why it cannot be shown."""
    if not value:
        return not_done()
    path = Path(value)
    if not path.is_dir():
        return Text(_("{folder} (no longer there)").format(folder=value), style="yellow")
    try:
        return Text(f"{value} ({human_size(folder_size(path))})")
    except OSError as exc:
        raise WizardError(_("{folder} cannot be read ({error}).").format(
            folder=value, error=exc.strerror)) from None


def _tuned(value: str | None) -> Text:
    """The thread setting the converted folder runs with, and the gain measured when it was chosen."""

    if not value or not Path(value).is_dir():
        return not_done()
    note = recorded(value)
    if note is None:
        return Text(_("onnxruntime's default threads (not tuned)"), style="dim")
    gain = note["gain"]
    return Text(describe(QuickTune(threads=note["threads"], tried=note["threads"], spinning=note["spinning"],
                                   gain=1.0 if gain is None else gain, applied=gain is not None)))


def _benchmark(state: WizardState) -> Text:
    """The measured medians per prompt length and the checklist's verdict, or "not done"."""
    record = state.bench_result if isinstance(state.bench_result, dict) else {}
    per_length = record.get("per_length")
    rows = [r for r in per_length if isinstance(r, dict)] if isinstance(per_length, list) else []
    checks = record.get("checks")
    if not isinstance(checks, dict):
        checks = {}
    if not rows and not checks:
        return not_done()
    text = Text()
    if rows:
        text.append(_("generation {speeds} tok/s at {lengths} prompt tokens").format(
            speeds=" / ".join(number(float(r.get("tps", 0)), 1) for r in rows),
            lengths=" / ".join(str(r.get("length")) for r in rows)))
        text.append(" · " + _("TTFT {ms} ms").format(ms=" / ".join(number(float(r.get("ttft_ms", 0)))
                                                                   for r in rows)))
    if checks:
        failed = [_(str(name)) for name in checks.get("failed") or []]
        verdict = (_("checklist: {passed} passed, {failed} failed ({names})").format(
                       passed=checks.get("pass", 0), failed=len(failed), names=", ".join(failed))
                   if failed else _("checklist: {passed} passed").format(passed=checks.get("pass", 0)))
        text.append(("\n" if rows else "") + verdict, style="red" if failed else "green")
    fix = record.get("fix")
    if isinstance(fix, dict) and fix and checks.get("failed"):
        text.append("\n" + _("Fix: {reason}").format(reason=fix.get("reason", "")), style="yellow")
        model = "demo" if state.use_demo or not state.model_dir else shell_arg(state.model_dir)
        text.append(f"\n  slmops convert {model} --precision {fix.get('precision')}", style="bold")
    if state.bench_export_path:
        text.append("\n" + str(state.bench_export_path), style="dim")
    return text


def not_done() -> Text:
    return Text(_(NOT_DONE), style="dim italic")


def done_text(state: WizardState) -> Text:
    """One line per part of the run: what it produced and where, or "not done"."""
    precision = state.precision.upper()
    if state.precision == "int4":
        used = int4_in_config(state.converted_dir) if state.int4.algorithm is Int4Algorithm.AUTO else None
        if used is not None and used[0] in {a.value for a in Int4Algorithm}:  # what auto chose, once converted
            chosen = replace(state.int4, algorithm=Int4Algorithm(used[0]), block_size=used[1], symmetric=used[2])
            precision += " · auto: " + chosen.describe()
        else:
            precision += " · " + state.int4.describe()
    elif state.precision == "int8" and rotated_in_config(state.converted_dir):
        precision += " · " + _("rotated first (QuaRot)")
    rows = [
        (_("Model"), _folder(state.model_dir)),
        *([(_("Base model"), _folder(str(tokenizer_folder(state.model_dir))))]  # a LoRA adapter: its base
          if state.model_dir and is_adapter_folder(state.model_dir) else []),
        (_("Precision"), Text(precision)),
        (_("Converted"), _folder(state.converted_dir)),
        (_("Speed"), _tuned(state.converted_dir)),
        (_("Deployed"), Text(state.deployed_id) if state.deployed_id else not_done()),
        (_("Benchmark"), _benchmark(state)),
    ]
    width = max(11, *(len(label) + 2 for label, _value in rows))  # the values line up in every language
    text = Text()
    for label, value in rows:
        text.append(label.ljust(width), style="bold")
        text.append_text(value)
        text.append("\n")
    text.rstrip()
    return text


class SummaryScreen(StepScreen):
    STEP = "summary"
    BINDINGS = [Binding("ctrl+n", "next_step", N_("Finish"), priority=True)]
    HELP = N_("What the wizard did and where everything is. The commands below repeat the whole "
            "run without the wizard (in a script, or on 30 classroom machines): select them with "
            "the mouse, or f7 then ctrl+c, or press “Copy commands”. Finish closes slmops; your "
            "choices stay saved.")

    def compose_body(self) -> ComposeResult:
        yield Label(_("What was done"), classes="step-title")
        yield Static("", id="summary-done")
        yield Label(_("Do it again without the wizard"), classes="step-title")
        yield TextArea("", read_only=True, soft_wrap=True, show_line_numbers=False,
                       id="summary-commands")
        with Horizontal(classes="row"):
            yield Button(_("Copy commands"), id="summary-copy")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#next", Button).label = _("Finish")
        try:
            done = done_text(self.state)
        except WizardError as exc:
            done = Text(str(exc), style="red")
        self.query_one("#summary-done", Static).update(done)
        saved = save_answers(self.state)
        commands = headless_commands(self.state)
        if saved is not None:
            commands = "\n".join([_("# the whole run again, in one command:"),
                                   f"slmops run --answers {shell_arg(str(saved))}",
                                   _("# or step by step:"), commands])
        self.query_one("#summary-commands", TextArea).text = commands

    @on(Button.Pressed, "#summary-copy")
    def copy_commands(self) -> None:
        self.app.copy_to_clipboard(self.query_one("#summary-commands", TextArea).text)
        self.notify(_("Commands copied to the clipboard."))

    def before_next(self) -> bool:
        self.state.complete(self.STEP)
        self.state.save()
        self.app.exit()
        return False
