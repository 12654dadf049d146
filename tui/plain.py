"""The wizard without a full-screen UI: questionary prompts one step after another, the same
choices and defaults as the TUI, progress as text, an answers file written at the end, then a
chat REPL with the deployed model."""

from __future__ import annotations

from pathlib import Path

import questionary

from tui import exit_codes
from tui.commands import open_backend
from tui.pipeline import run_on_terminal
from tui.repl import chat_repl
from wizard_steps.conversion.precision import (
    ALGORITHM_ORDER,
    BLOCK_SIZES,
    Int4Algorithm,
    Int4Settings,
    algorithm_label,
    best_settings,
)
from wizard_steps.core import paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_, _, number
from wizard_steps.model import adapter, model_source
from wizard_steps.prompt import templates
from wizard_steps.prompt.detection import detect
from wizard_steps.prompt.generation import GenerationError, model_config
from wizard_steps.road import answers as answers_module
from wizard_steps.road import prereqs
from wizard_steps.road.answers import Answers
from wizard_steps.road.unattended import StepFailed, saved_choice
from wizard_steps.verdict import compare

STATUS = {"ok": N_("ok"), "warn": N_("warn"), "fail": N_("fail")}
CONFIDENCE = {"high": N_("high"), "medium": N_("medium"), "low": N_("low")}


def _ask(question: questionary.Question):
    value = question.ask(kbi_msg="\n" + _("Cancelled by user") + "\n")
    if value is None:  # Ctrl+C in a prompt
        raise KeyboardInterrupt
    return value


def _select(message: str, **options) -> questionary.Question:
    """questionary's select, with its key hint in the current language."""
    return questionary.select(message, instruction=_("(Use arrow keys)"), **options)


def _model_folder(text: str) -> bool | str:
    try:
        adapter.inspect_model_or_adapter(text)
    except WizardError as exc:
        return str(exc)
    return True


def _setting(name: str):
    def check(text: str) -> bool | str:
        try:
            model_config(context_length=None, **{name: text})  # the one setting alone
        except GenerationError as exc:
            return str(exc)
        return True
    return check


def measured_label(folder: Path) -> str:
    """The default road's choice, as the precision step offers it: measured here before (what it
    chose), or to be measured, with the time it should take."""
    try:
        info = adapter.inspect_model_or_adapter(folder)
    except WizardError:
        return _("Measure INT4 and INT8 on this machine, deploy the fastest that passes the checklist")
    saved = saved_choice(info)
    if saved is not None:
        return _("Measured on this machine: {precision} (the fastest that passes the checklist)").format(
            precision=saved.precision.value.upper())
    seconds = compare.estimate_seconds(info, compare.parse_candidates(compare.AUTO_CANDIDATES))
    if seconds > compare.MEASURE_BUDGET_S:
        return _("INT4 unmeasured: measuring here would take about {minutes} min").format(
            minutes=number(seconds / 60, 0))
    return _("Measure INT4 and INT8 on this machine (about {minutes} min), deploy the fastest that passes "
             "the checklist").format(minutes=number(max(1.0, seconds / 60), 0))


def collect() -> Answers:
    """Ask every choice, with the TUI's defaults."""
    checks = prereqs.run_all()
    for check in checks:
        if check.status is not prereqs.Status.OK:
            print(f"[{_(STATUS[check.status.value])}] {_(check.name)}: {check.detail}" +
                  ("  " + _("Fix: {fix}").format(fix=check.fix) if check.fix else ""))
    if prereqs.worst(checks) is prereqs.Status.FAIL:
        raise StepFailed(_("A prerequisite failed; fix it and run slmops again."))
    print(_("Prerequisites: {count} checks, none failed.").format(count=len(checks)))
    source = _ask(_select(_("Which model?"), choices=[
        questionary.Choice(_("The demo model (SmolLM2-135M-Instruct, works offline)"), "demo"),
        questionary.Choice(_("My own fine-tuned model folder"), "own")]))
    model = "demo"
    if source == "own":
        model = _ask(questionary.path(_("Model folder:"), only_directories=True,
                                      validate=_model_folder))
    folder = model_source.ensure_demo() if model == "demo" else Path(model)
    precision = _ask(_select(_("Precision?"), default=answers_module.MEASURED, choices=[
        questionary.Choice(measured_label(folder), answers_module.MEASURED),
        questionary.Choice(_("INT4: fastest on CPU, the most loss (the checklist says if it holds)"), "int4"),
        questionary.Choice(_("INT8: close to the source, ~1/4 of FP32"), "int8"),
        questionary.Choice(_("FP32: exact, largest"), "fp32"),
        questionary.Choice(_("FP16: needs a GPU execution provider"), "fp16", disabled=_("not on CPU"))]))
    int4 = Int4Settings()
    if precision == "int4":
        algorithm = Int4Algorithm(_ask(_select(_("INT4 algorithm?"), choices=[
            questionary.Choice(algorithm_label(a), a.value) for a in ALGORITHM_ORDER])))
        int4 = Int4Settings(algorithm=algorithm)
        if algorithm is not Int4Algorithm.AUTO:  # the automatic choice brings its own
            best = best_settings(algorithm)
            block_size = int(_ask(_select(_("INT4 block size?"), default=str(best.block_size),
                                          choices=[str(size) for size in BLOCK_SIZES])))
            symmetric = bool(_ask(questionary.confirm(_("Symmetric quantization?"), default=best.symmetric)))
            int4 = Int4Settings(block_size=block_size, symmetric=symmetric, algorithm=algorithm)
    detection = detect(folder)
    print(_("Prompt template detected: {preset} ({confidence}): {reason}").format(
        preset=detection.preset_key, confidence=_(CONFIDENCE[detection.confidence.value]),
        reason=detection.reason))
    template = _ask(_select(_("Prompt template?"), default=detection.preset_key,
                            choices=[k for k in templates.PRESETS if k != "custom"]))
    settings = {name: _ask(questionary.text(f"{name}:", default=str(default),
                                            validate=_setting(name)))
                for name, default in (("max_length", 2048), ("temperature", 0.7),
                                      ("top_p", 0.9), ("repetition_penalty", 1.1))}
    checked = model_config(**settings)
    default_name = folder.name.lower() + ("" if precision == answers_module.MEASURED else f"-{precision}")
    tune = _ask(questionary.confirm(
        _("Tune the converted model for this machine (a few seconds)?"), default=True))
    name = _ask(questionary.text(_("Deploy as (name):"), default=default_name))
    return Answers(model=model, precision=precision, template=template,
                   max_length=checked.max_length, temperature=checked.temperature,
                   top_p=checked.top_p, repetition_penalty=checked.repetition_penalty,
                   deploy_name=name, tune=tune, int4=int4)


def run_plain() -> int:
    """The whole wizard in prompts; ends in a chat REPL."""
    try:
        answers = collect()
        saved = answers_module.save(answers, paths.ensure(paths.config_dir()) / "wizard.toml")
        print(_("Answers saved to {file} (replay with: slmops run --answers {file})").format(file=saved))
        report = run_on_terminal(answers)
    except KeyboardInterrupt:
        print("\n" + _("Stopped; nothing half-done was kept."))
        return exit_codes.INTERRUPTED
    except StepFailed as exc:
        print(f"slmops: {exc}")
        return exit_codes.STEP_FAILED
    if not _ask(questionary.confirm(_("Chat with the deployed model now?"), default=True)):
        return exit_codes.OK

    backend, stop, name = open_backend(report.deployed.model_id)
    try:
        return chat_repl(backend, stop, name)
    finally:
        backend.close()
