"""The whole road, unattended, from an Answers object: checks, model, conversion, deployment,
a short benchmark and one chat answer, then a short report (``slmops demo``, ``slmops run``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tui import exit_codes
from tui.progress import ProgressPrinter, drive
from wizard_steps.answers import Answers
from wizard_steps.errors import WizardError
from wizard_steps.events import Failed

QUESTION = "What is the capital of France?"


def _say(text: str, json_output: bool) -> None:
    print(text, file=sys.stderr if json_output else sys.stdout, flush=True)


class StepFailed(WizardError):
    """A step of the unattended run failed (exit code 1)."""


def run_pipeline(answers: Answers, json_output: bool = False) -> int:
    """Run everything and print the report; the exit code says how it went."""
    try:
        report = execute(answers, json_output)
    except StepFailed as exc:
        _say(f"slmops: {exc}", json_output)
        return exit_codes.STEP_FAILED
    if json_output:
        print(json.dumps(report, indent=2))
    else:
        print(f"Done. Replay this run anywhere with: slmops run --answers {report['answers_file']}")
    return exit_codes.OK


def execute(answers: Answers, json_output: bool = False) -> dict[str, object]:
    """Every step in order; returns the report, raises StepFailed or WizardError."""
    from wizard_steps import benchmark, convert, deploy, model_source, paths, prereqs, templates
    from wizard_steps.engine import Chat, ReplyDone, ReplyOptions
    from wizard_steps.engine_foundry import FoundryBackend
    from wizard_steps.generation import model_config
    from wizard_steps.precision import Int4Algorithm, Int4Settings, Precision, human_size

    printer = ProgressPrinter()
    report: dict[str, object] = {}
    checks = prereqs.run_all()
    failed = [c for c in checks if c.status is prereqs.Status.FAIL]
    report["checks"] = {"ok": sum(c.status is prereqs.Status.OK for c in checks),
                        "warn": sum(c.status is prereqs.Status.WARN for c in checks),
                        "fail": [c.name for c in failed]}
    if failed:
        raise StepFailed("; ".join(f"{c.name}: {c.detail} Fix: {c.fix}" for c in failed))
    _say(f"1/6 prerequisites: {len(checks)} checks, none failed", json_output)

    model_dir = model_source.ensure_demo() if answers.model == "demo" else Path(answers.model)
    info = model_source.inspect_model(model_dir)
    report["model"] = {"path": str(info.path), "architecture": info.architecture,
                       "parameters": info.num_parameters}
    _say(f"2/6 model: {info.name} ({info.num_parameters / 1e6:.1f} M parameters)", json_output)

    settings = model_config(max_length=answers.max_length, temperature=answers.temperature,
                            top_p=answers.top_p, repetition_penalty=answers.repetition_penalty)
    key = templates.detect(info.path).preset_key if answers.template == "auto" else answers.template
    preset = templates.get_preset(key)
    precision = Precision(answers.precision)
    out = Path(answers.output_dir) if answers.output_dir else None
    default_out = convert.default_output_dir(info, precision)
    plan = convert.make_plan(
        info.path, out, precision,
        int4=Int4Settings(answers.int4_block_size, answers.int4_symmetric,
                          answers.int4_accuracy_level, Int4Algorithm(answers.int4_algorithm),
                          answers.int4_quantize_embeddings),
        search=settings.to_genai_search(), method=answers.method,
        replace_existing=out is None and default_out.is_dir())  # slmops' own folder only
    final = drive(convert.convert(plan), printer)
    if isinstance(final, Failed):
        raise StepFailed(f"{final.reason} (log: {final.log_path})")
    converted = final.path
    report["converted"] = {"path": str(converted), "precision": precision.value,
                           "size_bytes": final.details["size_bytes"],
                           "duration_s": final.details["duration_s"]}
    _say(f"3/6 converted to {precision.value.upper()}: {converted} "
         f"({human_size(int(final.details['size_bytes']))})", json_output)

    name = answers.deploy_name or f"{info.name.lower()}-{precision.value}"
    final = drive(deploy.deploy(converted, name, preset.template, settings), printer)
    if isinstance(final, Failed):
        raise StepFailed(final.reason)
    model_id = str(final.details["model_id"])
    report["deployed"] = {"id": model_id, "path": str(final.details["path"]),
                          "load_s": final.details["load_s"]}
    _say(f"4/6 deployed to Foundry Local as {model_id}", json_output)

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
        _say("5/6 benchmark: " + ", ".join(f"{r.length} tokens {r.tps_median:.0f} tok/s"
                                           for r in summary.per_length), json_output)
        chat = Chat(backend, ReplyOptions(max_new_tokens=60, stop=preset.stop))
        reply = next(e for e in chat.send(QUESTION) if isinstance(e, ReplyDone))
    finally:
        backend.close()
    report["chat"] = {"question": QUESTION, "answer": reply.text,
                      "tokens_per_s": round(reply.stats.tokens_per_s, 1)}
    _say(f"6/6 chat: {QUESTION} -> {reply.text.strip()!r}", json_output)
    answers_file = paths.ensure(paths.config_dir()) / "last-run.toml"
    from wizard_steps import answers as answers_module

    answers_module.save(answers, answers_file)
    report["answers_file"] = str(answers_file)
    if not reply.text.strip():
        raise StepFailed("The deployed model answered with empty text.")
    return report
