"""The whole road, unattended, from an Answers object: checks, model, conversion, deployment,
a short benchmark and one chat answer, then a short report (``slmops demo``, ``slmops run``)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from tui import exit_codes
from tui.progress import ProgressPrinter, drive
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision, human_size
from wizard_steps.core import i18n, paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Failed, Finished
from wizard_steps.core.i18n import _
from wizard_steps.deployment import deploy
from wizard_steps.deployment.engine_foundry import FoundryBackend
from wizard_steps.measurement import benchmark
from wizard_steps.measurement.tune_quick import describe
from wizard_steps.model import model_source
from wizard_steps.model.adapter import inspect_model_or_adapter
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt import detection, templates
from wizard_steps.prompt.generation import model_config
from wizard_steps.road import answers as answers_module
from wizard_steps.road import prereqs
from wizard_steps.road.answers import Answers
from wizard_steps.runtime.engine import Chat, ReplyDone, ReplyOptions

QUESTION = "What is the capital of France?"  # asked of the model: stays English


def _say(text: str, json_output: bool) -> None:
    print(text, file=sys.stderr if json_output else sys.stdout, flush=True)


class StepFailed(WizardError):
    """A step of the unattended run failed (exit code 1)."""


def apply_language(answers: Answers) -> None:
    """The answers file's language, unless --lang chose one on the command line."""
    if not i18n.chosen_explicitly():
        i18n.set_language(answers.lang, explicit=False)


def run_pipeline(answers: Answers, json_output: bool = False) -> int:
    """Run everything and print the report; the exit code says how it went."""
    apply_language(answers)
    try:
        report = execute(answers, json_output)
    except StepFailed as exc:
        _say(f"slmops: {exc}", json_output)
        return exit_codes.STEP_FAILED
    if json_output:
        print(json.dumps(report, indent=2))
    else:
        print(_("Done. Replay this run anywhere with: slmops run --answers {file}").format(
            file=report["answers_file"]))
    return exit_codes.OK


def execute(answers: Answers, json_output: bool = False) -> dict[str, object]:
    """Every step in order; returns the report, raises StepFailed or WizardError."""

    apply_language(answers)
    printer = ProgressPrinter()
    report: dict[str, object] = {}
    checks = prereqs.run_all()
    failed = [c for c in checks if c.status is prereqs.Status.FAIL]
    report["checks"] = {"ok": sum(c.status is prereqs.Status.OK for c in checks),
                        "warn": sum(c.status is prereqs.Status.WARN for c in checks),
                        "fail": [c.name for c in failed]}
    if failed:
        raise StepFailed("; ".join(_("{name}: {detail} Fix: {fix}").format(name=_(c.name), detail=c.detail,
                                                                            fix=c.fix) for c in failed))
    _say(_("1/6 prerequisites: {count} checks, none failed").format(count=len(checks)), json_output)

    model_dir = model_source.ensure_demo() if answers.model == "demo" else Path(answers.model)
    info = inspect_model_or_adapter(model_dir, answers.base or None)
    report["model"] = {"path": str(info.path), "architecture": info.architecture,
                       "parameters": info.num_parameters}
    _say(_("2/6 model: {name} ({parameters} M parameters)").format(
        name=info.name, parameters=i18n.number(info.num_parameters / 1e6, 1)), json_output)

    settings = model_config(max_length=answers.max_length, temperature=answers.temperature,
                            top_p=answers.top_p, repetition_penalty=answers.repetition_penalty)
    tokenizer_dir = info.adapter.base.path if info.adapter else info.path  # an adapter: its base's
    key = detection.detect(tokenizer_dir).preset_key if answers.template == "auto" else answers.template
    preset = templates.preset_for_folder(key, info.path)
    precision = Precision(answers.precision)
    out = Path(answers.output_dir) if answers.output_dir else None
    default_out = convert.default_output_dir(info, precision)
    plan = convert.make_plan(
        info.path, out, precision,
        int4=Int4Settings(answers.int4_block_size, answers.int4_symmetric,  # "auto": resolved by the plan
                          answers.int4_accuracy_level, Int4Algorithm(answers.int4_algorithm),
                          answers.int4_quantize_embeddings),
        search=settings.to_genai_search(), method=answers.method,
        replace_existing=out is None and default_out.is_dir(),  # slmops' own folder only
        base=answers.base or None)
    if not answers.tune:
        plan = replace(plan, tune=False)
    if out is None and convert.converted_before(plan):
        # slmops' own folder already holds this conversion, validated when it was made: a rerun
        # of the demo in a classroom does not pay for Olive again (the deploy loads it and answers).

        final = Finished(plan.output_dir, {"size_bytes": folder_size(plan.output_dir), "duration_s": 0.0,
                                           "reused": True})
        _say(_("Converted earlier with the same settings: {folder} is used as it is.").format(
            folder=plan.output_dir), json_output)
    else:
        final = drive(convert.convert(plan), printer)
    if isinstance(final, Failed):
        raise StepFailed(_("{reason} (log: {path})").format(reason=final.reason, path=final.log_path))
    converted = final.path
    report["converted"] = {"path": str(converted), "precision": precision.value,
                           "size_bytes": final.details["size_bytes"],
                           "duration_s": final.details["duration_s"],
                           "reused": bool(final.details.get("reused", False))}
    _say(_("3/6 converted to {precision}: {folder} ({size})").format(
        precision=precision.value.upper(), folder=converted, size=human_size(int(final.details["size_bytes"]))),
        json_output)

    if "tuned" in final.details:
        report["tuned"] = final.details["tuned"]
        _say(describe(final.details["tuned"]), json_output)  # type: ignore[arg-type]

    name = answers.deploy_name or f"{info.name.lower()}-{precision.value}"
    final = drive(deploy.deploy(converted, name, preset.template, settings,
                                template_source=answers.template_source, tune=answers.tune), printer)
    if isinstance(final, Failed):
        raise StepFailed(final.reason)
    model_id = str(final.details["model_id"])
    report["deployed"] = {"id": model_id, "path": str(final.details["path"]),
                          "load_s": final.details["load_s"]}
    _say(_("4/6 deployed to Foundry Local as {model}").format(model=model_id), json_output)

    backend = FoundryBackend(model_id, preset.template)
    try:
        bench_plan = benchmark.BenchPlan(tuple(answers.bench_lengths), answers.bench_new_tokens,
                                         answers.bench_runs, 1)
        summary = None
        for event in benchmark.run(backend, bench_plan, model_id):
            if isinstance(event, benchmark.BenchSummary):
                summary = event
        assert summary is not None
        report["benchmark"] = [{"length": r.length, "ttft_ms": round(r.ttft_median_s * 1000, 1),
                                "tokens_per_s": round(r.tps_median, 1)} for r in summary.per_length]
        _say(_("5/6 benchmark: {speeds}").format(speeds=", ".join(
            _("{length} tokens {speed} tok/s").format(length=r.length, speed=i18n.number(r.tps_median))
            for r in summary.per_length)), json_output)
        chat = Chat(backend, ReplyOptions(max_new_tokens=60, stop=preset.stop))
        reply = next(e for e in chat.send(QUESTION) if isinstance(e, ReplyDone))
    finally:
        backend.close()
    report["chat"] = {"question": QUESTION, "answer": reply.text,
                      "tokens_per_s": round(reply.stats.tokens_per_s, 1)}
    _say(_("6/6 chat: {question} -> {answer!r}").format(question=QUESTION, answer=reply.text.strip()),
         json_output)
    answers_file = paths.ensure(paths.config_dir()) / "last-run.toml"

    answers_module.save(answers, answers_file)
    report["answers_file"] = str(answers_file)
    if not reply.text.strip():
        raise StepFailed(_("The deployed model answered with empty text."))
    return report
