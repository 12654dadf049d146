"""Every headless command: check, convert, deploy, list, remove, bench, quality, chat, tune, and the whole
road (``demo``, ``run --answers``). Each returns an exit code; errors users can cause are
WizardError, turned into one sentence by ``tui.cli.main``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

from tui import exit_codes
from tui.pipeline import run_pipeline
from tui.progress import ProgressPrinter, drive
from tui.repl import chat_repl
from wizard_steps.conversion import convert
from wizard_steps.conversion import convert as conversion
from wizard_steps.conversion.precision import ExecutionProvider, chosen_int4, human_size, parse_precision
from wizard_steps.core import i18n
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Failed
from wizard_steps.core.i18n import N_, _
from wizard_steps.deployment import deploy
from wizard_steps.measurement import benchmark, evaluation, machine, tune
from wizard_steps.measurement.tune_quick import describe
from wizard_steps.model import model_source
from wizard_steps.prompt import detection, templates
from wizard_steps.prompt.generation import model_config
from wizard_steps.road import answers, models, prereqs
from wizard_steps.road.answers import Answers
from wizard_steps.road.models import template_for_folder as for_folder
from wizard_steps.verdict import compare, compare_report, quality
from wizard_steps.verdict.remedy import remedy_for

GREEDY_REPLY_TOKENS = 200


def _fail(message: str, code: int = exit_codes.BAD_INPUT) -> int:
    print(f"slmops: {message}", file=sys.stderr)
    return code


def json_values() -> contextlib.AbstractContextManager[None]:
    """Machine output is English whatever the language: wrap what makes --json values."""
    return i18n.using("en")


def cmd_check(args: argparse.Namespace) -> int:
    if args.json:
        with json_values():
            checks = prereqs.run_all()
        print(json.dumps([{"name": c.name, "status": c.status.value, "detail": c.detail,
                           "fix": c.fix} for c in checks], indent=2))
    else:
        checks = prereqs.run_all()
        marks = {status: _(mark) for status, mark in CHECK_MARKS.items()}
        width = max(map(len, marks.values()))
        for c in checks:
            print(f"[{marks[c.status.value].ljust(width)}] {_(c.name)}: {c.detail}")
            if c.status.value != "ok" and c.fix:
                print(" " * (width + 3) + _("fix: {fix}").format(fix=c.fix))
    worst = prereqs.worst(checks)
    return exit_codes.STEP_FAILED if worst.value == "fail" else exit_codes.OK


CHECK_MARKS = {"ok": N_("ok"), "warn": N_("warn"), "fail": N_("FAIL")}


def _resolve_model(value: str, printer: ProgressPrinter) -> Path:
    if value != "demo":
        return Path(value)

    final = drive(model_source.prepare_demo(), printer)
    if isinstance(final, Failed):
        raise WizardError(final.reason)
    return final.path


def _config_stamp(folder: Path) -> int | None:
    """When the folder's genai_config.json was last written (None: there is none)."""
    try:
        return (Path(folder) / "genai_config.json").stat().st_mtime_ns
    except OSError:
        return None


def cmd_convert(args: argparse.Namespace) -> int:
    printer = ProgressPrinter(verbose=args.verbose)
    precision = parse_precision(args.precision)
    int4 = chosen_int4(args.int4_algo, args.block_size, args.symmetric, args.accuracy_level,
                       args.quantize_embeddings)
    provider = ExecutionProvider(args.provider)
    model_dir = _resolve_model(args.model, printer)
    plan = conversion.make_plan(model_dir, args.out, precision, provider, int4,
                                method=args.method, replace_existing=args.replace,
                                base=getattr(args, "base", None),
                                calibration_text=getattr(args, "calibration_text", None))
    if plan.model.eos is not None and plan.model.eos.note:  # said before the conversion starts
        print("slmops: " + _("note: {note}").format(note=plan.model.eos.note), file=sys.stderr)
    if getattr(args, "no_tune", False):
        plan = replace(plan, tune=False)
    stop = threading.Event()
    before = _config_stamp(plan.output_dir)
    try:
        final = drive(conversion.convert(plan, cancel=stop), printer)
    except KeyboardInterrupt:
        stop.set()
        if _config_stamp(plan.output_dir) not in (None, before):  # stopped in the short tuning
            return _fail(_("interrupted after the conversion: {folder} is in place, converted and checked, "
                           "but not tuned for this machine (slmops tune {folder} does it).").format(
                               folder=plan.output_dir), exit_codes.INTERRUPTED)
        return _fail(_("conversion interrupted; nothing was written."), exit_codes.INTERRUPTED)
    if isinstance(final, Failed):
        log = _(" (full log: {path})").format(path=final.log_path) if final.log_path else ""
        return _fail(final.reason + log, exit_codes.STEP_FAILED)
    done = final.result
    if args.json:
        print(json.dumps({"output_dir": str(final.path), **done.to_json()}, indent=2))
    else:
        print(_("Converted to {precision} in {seconds} s: {path}").format(
            precision=done.precision.upper(), seconds=i18n.number(done.duration_s, None), path=final.path))
        print("  " + _("size {size} (source {source}, {percent} smaller)").format(
            size=human_size(done.size_bytes), source=human_size(done.source_bytes),
            percent=i18n.percent(done.reduction * 100)))
        if done.int4 is not None:
            algorithm, block_size, symmetric = done.int4
            print("  " + _("INT4: {algorithm} · block {size} · {symmetry}").format(
                algorithm=algorithm, size=block_size, symmetry=_("symmetric") if symmetric else _("asymmetric")))
        if done.rotated:
            print("  " + _("rotated first (QuaRot): the same model, with outliers spread before quantizing"))
        if done.adapter is not None:
            print("  " + _("LoRA adapter {adapter} merged into the base {base}").format(
                adapter=done.adapter, base=done.base))
        print("  " + _("loaded with onnxruntime-genai, sample: {sample!r}").format(
            sample=done.sample_text.strip()))
        print("  " + _("repeat by hand: {command}").format(command=done.rerun))
        if done.tuned is not None:
            print("  " + describe(done.tuned))
    return exit_codes.OK


def template_for_folder(folder: Path):
    return for_folder(folder)


def resolve_target(target: str) -> tuple[Path, str | None]:
    """A converted folder or a deployed model name[:version]: its folder and deployed id."""

    found = models.resolve(target)
    return found.folder, found.model_id


def open_backend(target: str):
    """onnxruntime-genai on a converted folder, or Foundry Local on a deployed model: the backend,
    the folder's stop strings and the model's name."""

    found = models.resolve(target)
    template, stop = models.template_for_folder(found.folder)
    return models.open_backend(found, template), stop, found.name


def _model_config(args: argparse.Namespace):
    return model_config(max_length=args.max_length, temperature=args.temperature,
                        top_p=args.top_p, repetition_penalty=args.repetition_penalty)


def cmd_deploy(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser()
    key = detection.detect(folder).preset_key if args.template == "auto" else args.template
    template = templates.preset_for_folder(key, folder if folder.is_dir() else None).template
    settings = _model_config(args)
    deploy.check_request(folder, args.name, template, settings, args.template_source)  # bad input: exit 2
    with i18n.using("en") if args.json else contextlib.nullcontext():  # --json values are English
        final = drive(deploy.deploy(folder, args.name, template, settings, description=args.description,
                                    template_source=args.template_source, tune=not args.no_tune),
                      ProgressPrinter())
    if isinstance(final, Failed):
        return _step_failed(final)
    done = final.result
    if args.json:
        print(json.dumps(done.to_json(), indent=2))
    else:
        print(_("Deployed {model} to Foundry Local ({path}).").format(model=done.model_id, path=done.path))
        print("  " + _("loaded in {seconds} s; it answered: {reply!r}").format(
            seconds=i18n.number(done.load_s, 2), reply=done.proof_reply))
        for note in done.template_notes:
            print("  " + _("note: {note}").format(note=note))
        if done.tuned is not None:
            print("  " + _("the deployed copy: {line}").format(line=describe(done.tuned)))
    return exit_codes.OK


def cmd_list(args: argparse.Namespace) -> int:
    models = deploy.list_deployed()
    if args.json:
        print(json.dumps([{**asdict(m), "path": str(m.path)} for m in models], indent=2))
        return exit_codes.OK
    if not models:
        print(_("No models deployed yet. Deploy one with: slmops deploy DIR --name NAME"))
    for m in sorted(models, key=lambda m: (i18n.sort_key(m.name), m.version)):
        print(f"{m.id:32s} {m.precision or '?':6s} {human_size(m.size_bytes):>8s}  {m.path}")
    return exit_codes.OK


def cmd_remove(args: argparse.Namespace) -> int:
    removed = deploy.undeploy(args.name)
    print(json.dumps({"removed": removed}) if args.json else _("Removed {models}.").format(
        models=", ".join(removed)))
    return exit_codes.OK


def cmd_bench(args: argparse.Namespace) -> int:
    lengths = benchmark.parse_lengths(args.lengths, "--lengths")
    plan = benchmark.BenchPlan(lengths, args.new_tokens, args.runs, args.warmup).validate()
    before = benchmark.process_rss()
    backend, _stop, name = open_backend(args.target)
    plan.validate(backend.context_length)
    printer = ProgressPrinter()
    summary = None
    for event in benchmark.run(backend, plan, model_name=name, base_rss=before):
        if isinstance(event, benchmark.BenchSample):
            if not event.warmup:
                printer.line(_("{length} tokens  run {run}: TTFT {ttft} ms  prompt {prompt} tok/s  "
                               "generation {speed} tok/s  RSS {rss} MB").format(
                    length=f"{event.length:5d}", run=event.run, ttft=i18n.number(event.ttft_s * 1000).rjust(6),
                    prompt=i18n.number(event.prompt_tokens_per_s).rjust(6),
                    speed=i18n.number(event.tokens_per_s, 1).rjust(6),
                    rss=i18n.number(event.rss_bytes / 1e6).rjust(5)))
        elif isinstance(event, benchmark.BenchSummary):
            summary = event
        else:
            printer.show(event)
    printer.done()
    assert summary is not None
    if args.export:
        path = benchmark.export(summary, Path(args.export))
        printer.line(_("Report written to {path}").format(path=path))
    found = machine.measure(getattr(backend, "folder", None))  # what limits the speed here
    medians = {r.length: r.tps_median for r in summary.per_length}
    if args.json:
        data = json.loads(benchmark.to_json(summary))
        data["machine"] = {**dataclasses.asdict(found), "kernels": found.kernels,
                           "memory_bound_tok_s": {str(n): round(found.bound_for_run(n, plan.new_tokens) or 0, 1)
                                                  for n in medians}}
        print(json.dumps(data, indent=2))
    else:
        print(benchmark.to_markdown(summary))
        print(found.describe())
        print(found.against(medians, plan.new_tokens))
    return exit_codes.OK


def cmd_quality(args: argparse.Namespace) -> int:
    text = evaluation.read_text_file(args.text) if args.text else None
    if args.source:  # the text and the two vocabularies, checked before a model is loaded (exit 2)
        found = models.resolve(args.target)
        evaluation.check_pair(Path(args.source).expanduser(), found.folder, text)
    backend, _stop, _name = open_backend(args.target)
    queries = args.prompts or quality.demo_queries()
    checks = []
    marks = {status: _(mark) for status, mark in QUALITY_MARKS.items()}
    width = max(map(len, marks.values()))
    with i18n.using("en") if args.json else contextlib.nullcontext():  # --json values are English
        for check in quality.iter_checklist(backend, queries=queries, source=args.source,
                                            converted=getattr(backend, "folder", None), eval_text=text):
            checks.append(check)
            if not args.json:
                print(f"[{marks[check.status].ljust(width)}] {_(check.name)}: {check.evidence}", flush=True)
    if args.json:
        print(json.dumps([{"name": c.name, "status": c.status, "evidence": c.evidence}
                          for c in checks], indent=2))
    elif args.source:
        folder = getattr(backend, "folder", None)
        fix = remedy_for(checks, convert.precision_in_config(folder), args.source)
        if fix is not None:
            print(_("Fix: {reason}").format(reason=fix.reason))
            print(f"  slmops convert {args.source} --precision {fix.precision.value}")
    return exit_codes.STEP_FAILED if any(c.passed is False for c in checks) else exit_codes.OK


QUALITY_MARKS = {"pass": N_("ok"), "fail": N_("FAIL"), "skipped": N_("skip")}


def cmd_compare(args: argparse.Namespace) -> int:
    chosen = compare.parse_candidates(args.precisions)  # bad names: one sentence before any work
    queries = quality.load_queries(args.prompts) if args.prompts else None
    export = Path(args.export).expanduser() if args.export else None
    if export is not None:
        compare.check_writable(export.parent)
        if export.is_dir():
            raise WizardError(_("{path} is a folder.").format(path=export), _("Give a file name ending in .md."))
    printer = ProgressPrinter()
    model_dir = _resolve_model(args.model, printer)
    stop = threading.Event()
    with json_values() if args.json else contextlib.nullcontext():
        try:
            final = drive(compare.as_step(compare.compare(model_dir, chosen, stop, queries=queries), printer.line),
                          printer)
            if isinstance(final, Failed):
                return _step_failed(final)
            result = final.result
        except KeyboardInterrupt:
            stop.set()
            printer.done()
            return _fail(_("comparison interrupted; finished folders are kept, nothing half-written."),
                         exit_codes.INTERRUPTED)
        table = compare_report.to_markdown(result)
        text = compare_report.to_json(result) if args.json else table
        if export is not None:
            export.write_text(compare_report.to_json(result) if export.suffix == ".json" else table,
                              encoding="utf-8")
    print(text)
    return exit_codes.OK


def cmd_chat(args: argparse.Namespace) -> int:
    backend, stop, name = open_backend(args.target)
    return chat_repl(backend, stop, name, system=args.system)


def _step_failed(final: Failed) -> int:
    log = _(" (full log: {path})").format(path=final.log_path) if final.log_path else ""
    print(f"slmops: {final.reason}{log}", file=sys.stderr)
    return exit_codes.INTERRUPTED if final.cancelled else exit_codes.STEP_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    return run_pipeline(answers.load(args.answers), json_output=args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    return run_pipeline(Answers(model="demo", precision=args.precision, deploy_name="smollm2-demo",
                                bench_lengths=[16, 128], bench_runs=2, bench_new_tokens=32), json_output=args.json)



def cmd_tune(args: argparse.Namespace) -> int:
    folder, model_id = resolve_target(args.target)
    deployed = model_id is not None
    if args.undo:
        restored = tune.undo(folder)
        message = _("Restored the original genai_config.json.") if restored else _("Nothing to undo.")
        print(json.dumps({"restored": restored}) if args.json else message)
        return exit_codes.OK
    template, _stops = template_for_folder(folder)
    printer = ProgressPrinter()
    result = None
    with i18n.using("en") if args.json else contextlib.nullcontext():  # --json values are English
        width = max(len(c.label) for c in tune.candidates())  # the labels line up in a column
        for event in tune.measure(folder, template, focus_length=args.focus):
            if isinstance(event, tune.TuneSample):
                printer.line(_("{candidate} {length} tokens run {run}: {speed} tok/s").format(
                    candidate=event.candidate.label.ljust(width), length=f"{event.length:4d}", run=event.run,
                    speed=i18n.number(event.tokens_per_s, 1).rjust(6)))
            elif isinstance(event, tune.TuneResult):
                result = event
            else:
                printer.show(event)
    printer.done()
    assert result is not None
    if args.json:
        print(json.dumps({"folder": str(folder), "best": result.best.label,
                          "before": result.current.label, "changed": result.changed,
                          "speeds": result.speeds, "reason": result.reason}, indent=2))
        return exit_codes.OK
    print(result.reason)
    for label, speeds in result.speeds.items():
        cells = "  ".join(_("{length} tokens {speed} tok/s").format(length=n, speed=i18n.number(v, 1).rjust(6))
                          for n, v in sorted(speeds.items()))
        print(f"  {label.ljust(width)} {cells}")
    if result.changed and deployed:
        print(_("Foundry Local reads the tuned file the next time it loads the model."))
    return exit_codes.OK
