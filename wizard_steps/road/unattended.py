"""The whole road, unattended, from an Answers object: checks, model, conversion, deployment, a
short benchmark and one chat answer (``slmops demo``, ``slmops run``, the plain wizard). The front
end says how to show it: ``say`` prints one line for the user, ``follow`` drives a long step's
events to its last one while showing its progress. The result is a ``RunReport``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from wizard_steps.conversion import convert
from wizard_steps.conversion.convert import ConvertResult
from wizard_steps.conversion.precision import Precision, human_size
from wizard_steps.core import i18n, paths
from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Event, Failed, Finished, R
from wizard_steps.core.i18n import _
from wizard_steps.deployment import deploy
from wizard_steps.deployment.deploy import DeployResult
from wizard_steps.deployment.engine_foundry import FoundryBackend
from wizard_steps.measurement import benchmark
from wizard_steps.measurement.tune_quick import describe
from wizard_steps.model import model_source
from wizard_steps.model.adapter import inspect_model_or_adapter
from wizard_steps.model.model_source import ModelInfo
from wizard_steps.prompt import detection, templates
from wizard_steps.prompt.generation import model_config
from wizard_steps.road import answers as answers_module
from wizard_steps.road import prereqs
from wizard_steps.road.answers import Answers
from wizard_steps.runtime.engine import Chat, ReplyDone, ReplyOptions
from wizard_steps.verdict import compare

QUESTION = "What is the capital of France?"  # asked of the model: stays English
STEPS = 6


class StepFailed(WizardError):
    """A step of the unattended run failed (exit code 1)."""


class Follow(Protocol):
    """Drive a long step's events to their last one (Finished or Failed), showing the rest."""

    def __call__(self, events: Iterator[Event[R]]) -> Finished[R] | Failed: ...


@dataclass(frozen=True)
class LengthSpeed:
    length: int
    ttft_ms: float
    tokens_per_s: float


@dataclass(frozen=True)
class RunReport:
    """What the unattended run did, step by step."""

    checks_ok: int
    checks_warn: int
    model_path: str
    architecture: str
    parameters: int
    converted_path: str
    converted: ConvertResult
    deployed: DeployResult
    benchmark: tuple[LengthSpeed, ...]
    answer: str
    answer_tokens_per_s: float
    answers_file: str
    chosen_here: str = ""  # precision = "auto": why this precision, as measured on this machine

    def to_json(self) -> dict[str, object]:
        converted: dict[str, object] = {
            "path": self.converted_path, "precision": self.converted.precision,
            "size_bytes": self.converted.size_bytes, "duration_s": self.converted.duration_s,
            "reused": self.converted.reused}
        if self.chosen_here:
            converted["chosen_here"] = self.chosen_here
        data: dict[str, object] = {
            "checks": {"ok": self.checks_ok, "warn": self.checks_warn, "fail": []},
            "model": {"path": self.model_path, "architecture": self.architecture, "parameters": self.parameters},
            "converted": converted,
        }
        if self.converted.tuned is not None:
            data["tuned"] = self.converted.tuned.to_json()
        data["deployed"] = {"id": self.deployed.model_id, "path": self.deployed.path,
                            "load_s": self.deployed.load_s}
        data["benchmark"] = [vars(row) for row in self.benchmark]
        data["chat"] = {"question": QUESTION, "answer": self.answer, "tokens_per_s": self.answer_tokens_per_s}
        data["answers_file"] = self.answers_file
        return data


def apply_language(answers: Answers) -> None:
    """The answers file's language, unless --lang chose one on the command line."""
    if not i18n.chosen_explicitly():
        i18n.set_language(answers.lang, explicit=False)


@dataclass(frozen=True)
class Choice:
    """The precision the road converts to; with ``precision = "auto"``, the folder the comparison
    made and measured here (None: convert as for a named precision) and why it was chosen."""

    precision: Precision
    folder: Path | None = None
    reason: str = ""


def measured_choice(info: ModelInfo, say: Callable[[str], None], follow: Follow, **measure: Any) -> Choice:
    """``precision = "auto"``: INT4 and INT8 measured on this machine (compare.AUTO_CANDIDATES,
    as the precision step does on arrival), the fastest that passes the checklist. A comparison
    saved here before, on this CPU, with its folder still there, is used as it is. Beyond the
    time budget the road takes INT4 unmeasured and says how to measure. ``measure``: compare()'s
    settings (lengths, runs, eval_windows...), its defaults when not given."""
    saved = saved_choice(info)
    if saved is not None:
        say(_("Measured on this machine before: {reason}").format(reason=saved.reason))
        return saved
    chosen = compare.parse_candidates(compare.AUTO_CANDIDATES)
    seconds = compare.estimate_seconds(info, chosen)
    minutes = i18n.number(max(1.0, seconds / 60), 0)
    if seconds > compare.MEASURE_BUDGET_S:
        say(_("Measuring INT4 and INT8 here would take about {minutes} min, over the {budget} min budget: "
              "INT4, not measured here (measure with: slmops compare {model})").format(
            minutes=minutes, budget=i18n.number(compare.MEASURE_BUDGET_S / 60, 0), model=info.path))
        return Choice(Precision.INT4)
    say(_("Measuring {names} on this machine before choosing (about {minutes} min, estimated)").format(
        names=" / ".join(c.name.upper() for c in chosen), minutes=minutes))
    final = follow(compare.as_step(compare.compare(info.path, chosen, **measure), say))
    if isinstance(final, Failed):
        raise StepFailed(final.reason)
    choice = _choice_of(final.result, info)
    if choice is None:
        raise StepFailed(_("{reason} Set a precision to deploy one anyway: precision = \"int8\" in an "
                           "answers file for slmops run --answers.").format(reason=final.result.reason))
    say(choice.reason)
    return choice


def saved_choice(info: ModelInfo) -> Choice | None:
    """The choice of the comparison saved for this model on this CPU, while its folder is there."""
    return _choice_of(compare.load_saved(info.path), info)


def _choice_of(result: compare.Recommendation | None, info: ModelInfo) -> Choice | None:
    folder = compare.chosen_folder(result, info)  # None unless a candidate was recommended here
    if result is None or result.candidate is None or folder is None:
        return None
    return Choice(compare.candidates()[result.candidate].precision, folder, result.reason)


def execute(answers: Answers, say: Callable[[str], None], follow: Follow) -> RunReport:
    """Every step in order; returns the report, raises StepFailed or WizardError."""
    apply_language(answers)
    checks = prereqs.run_all()
    failed = [c for c in checks if c.status is prereqs.Status.FAIL]
    if failed:
        raise StepFailed("; ".join(_("{name}: {detail} Fix: {fix}").format(name=_(c.name), detail=c.detail,
                                                                            fix=c.fix) for c in failed))
    say(_("1/6 prerequisites: {count} checks, none failed").format(count=len(checks)))

    model_dir = model_source.ensure_demo() if answers.model == "demo" else Path(answers.model)
    info = inspect_model_or_adapter(model_dir, answers.base or None)
    say(_("2/6 model: {name} ({parameters} M parameters)").format(
        name=info.name, parameters=i18n.number(info.num_parameters / 1e6, 1)))

    settings = model_config(max_length=answers.max_length, temperature=answers.temperature,
                            top_p=answers.top_p, repetition_penalty=answers.repetition_penalty)
    tokenizer_dir = info.adapter.base.path if info.adapter else info.path  # an adapter: its base's
    key = detection.detect(tokenizer_dir).preset_key if answers.template == "auto" else answers.template
    preset = templates.preset_for_folder(key, info.path)
    out = Path(answers.output_dir) if answers.output_dir else None
    choice = measured_choice(info, say, follow) if answers.precision == answers_module.MEASURED else \
        Choice(Precision(answers.precision))
    precision = choice.precision
    default_out = convert.default_output_dir(info, precision)
    plan = convert.make_plan(
        info.path, out, precision,
        int4=answers.int4,  # "auto": resolved by the plan
        search=settings.to_genai_search(), method=answers.method,
        replace_existing=out is None and default_out.is_dir(),  # slmops' own folder only
        base=answers.base or None)
    if not answers.tune:
        plan = replace(plan, tune=False)
    converted: Finished[ConvertResult] | Failed
    if out is None and choice.folder is not None:  # the comparison's folder, measured here: read, not written
        converted = Finished(choice.folder, ConvertResult.found(choice.folder))
    elif out is None and convert.converted_before(plan):
        # slmops' own folder already holds this conversion, validated when it was made: a rerun
        # of the demo in a classroom does not pay for Olive again (the deploy loads it and answers).
        converted = Finished(plan.output_dir, ConvertResult.found(plan.output_dir))
        say(_("Converted earlier with the same settings: {folder} is used as it is.").format(
            folder=plan.output_dir))
    else:
        converted = follow(convert.convert(plan))
    if isinstance(converted, Failed):
        raise StepFailed(_("{reason} (log: {path})").format(reason=converted.reason, path=converted.log_path))
    made = converted.result
    say(_("3/6 converted to {precision}: {folder} ({size})").format(
        precision=precision.value.upper(), folder=converted.path, size=human_size(made.size_bytes)))
    if made.tuned is not None:
        say(describe(made.tuned))

    name = answers.deploy_name or f"{info.name.lower()}-{precision.value}"
    deployed = follow(deploy.deploy(converted.path, name, preset.template, settings,
                                    template_source=answers.template_source, tune=answers.tune))
    if isinstance(deployed, Failed):
        raise StepFailed(deployed.reason)
    placed = deployed.result
    say(_("4/6 deployed to Foundry Local as {model}").format(model=placed.model_id))

    backend = FoundryBackend(placed.model_id, preset.template)
    try:
        bench_plan = benchmark.BenchPlan(tuple(answers.bench_lengths), answers.bench_new_tokens,
                                         answers.bench_runs, 1)
        summary = None
        for event in benchmark.run(backend, bench_plan, placed.model_id):
            if isinstance(event, benchmark.BenchSummary):
                summary = event
        if summary is None:
            raise StepFailed(_("The benchmark ended without a result."))
        speeds = tuple(LengthSpeed(r.length, round(r.ttft_median_s * 1000, 1), round(r.tps_median, 1))
                       for r in summary.per_length)
        say(_("5/6 benchmark: {speeds}").format(speeds=", ".join(
            _("{length} tokens {speed} tok/s").format(length=r.length, speed=i18n.number(r.tps_median))
            for r in summary.per_length)))
        chat = Chat(backend, ReplyOptions(max_new_tokens=60, stop=preset.stop))
        reply = next(e for e in chat.send(QUESTION) if isinstance(e, ReplyDone))
    finally:
        backend.close()
    say(_("6/6 chat: {question} -> {answer!r}").format(question=QUESTION, answer=reply.text.strip()))
    answers_file = paths.ensure(paths.config_dir()) / "last-run.toml"
    answers_module.save(answers, answers_file)
    if not reply.text.strip():
        raise StepFailed(_("The deployed model answered with empty text."))
    return RunReport(
        checks_ok=sum(c.status is prereqs.Status.OK for c in checks),
        checks_warn=sum(c.status is prereqs.Status.WARN for c in checks),
        model_path=str(info.path), architecture=info.architecture, parameters=info.num_parameters,
        converted_path=str(converted.path), converted=made, deployed=placed, benchmark=speeds,
        answer=reply.text, answer_tokens_per_s=round(reply.stats.tokens_per_s, 1), answers_file=str(answers_file),
        chosen_here=choice.reason)
