"""Conversion with Microsoft Olive: the plan, its config JSON, the subprocess, and a result that is
trusted only once onnxruntime-genai has loaded it and generated text.

Olive runs as a child process (its import takes seconds, its memory and a crash stay out of the
caller) writing into a staging folder beside the target; the folder is renamed into place only
after validation, so a failed or cancelled run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wizard_steps.conversion.calibration import check_text, olive_data_config
from wizard_steps.conversion.convert_log import (
    CalibratedProgress,
    LogProgress,
    RotateProgress,
    failure_reason,
    split_live,
)
from wizard_steps.conversion.precision import (
    ExecutionProvider,
    Int4Algorithm,
    Int4Settings,
    Precision,
    int8_rotated,
    rotation_refusal,
    unavailable_reason,
)
from wizard_steps.core import child_result, paths
from wizard_steps.core.errors import PlanError
from wizard_steps.core.events import Event, Failed, Finished, LogLine, Progress
from wizard_steps.core.i18n import _
from wizard_steps.core.subprocess_stream import stream_process
from wizard_steps.measurement.tune_quick import QuickTune, quick
from wizard_steps.model.adapter import MergeProgress, inspect_model_or_adapter, merge_pass, olive_input_model
from wizard_steps.model.model_source import ModelInfo, folder_size

METHODS = ("config", "auto-opt")
OLIVE_CONFIG_NAME = "olive_config.json"
_OLIVE_LEFTOVERS = ("footprint.json", "output_footprint.json", "run_history.txt")
OLIVE_ENV = {
    "OLIVE_DISABLE_TELEMETRY": "1",  # offline classrooms: no telemetry events
    # olive-ai 0.13 logs a heartbeat before it reads OLIVE_DISABLE_TELEMETRY, then waits ~9 s at
    # exit to flush it; only its CI check (any of CI, TF_BUILD, ...) skips the heartbeat.
    "CI": "1",
    "TQDM_DISABLE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


@dataclass(frozen=True)
class ConvertPlan:
    """Everything one conversion needs; build it with ``make_plan`` so that it is validated."""

    model: ModelInfo
    output_dir: Path
    precision: Precision
    provider: ExecutionProvider = ExecutionProvider.CPU
    int4: Int4Settings = field(default_factory=Int4Settings)
    search: dict[str, object] = field(default_factory=dict)
    method: str = "config"
    replace_existing: bool = False
    calibration_text: Path | None = None  # checked, for an INT4 algorithm that calibrates (GPTQ)
    tune: bool = True  # after validation, a few seconds' thread measurement (tune.quick)

    @property
    def rotated(self) -> bool:
        """Whether Olive's QuaRot rotates the model before it is quantized: QuaRot + GPTQ at INT4,
        and every INT8 of an architecture the rotation keeps exact (int8_rotated)."""
        if self.precision is Precision.INT8:
            return int8_rotated(self.model.architecture)
        return self.precision is Precision.INT4 and self.int4.algorithm.rotated


def default_output_dir(model: ModelInfo, precision: Precision) -> Path:
    return paths.models_dir() / f"{model.name}-{precision.value}-onnx"


def make_plan(
    model_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None,
    precision: Precision,
    provider: ExecutionProvider = ExecutionProvider.CPU,
    int4: Int4Settings | None = None,
    search: Mapping[str, object] | None = None,
    method: str = "config",
    replace_existing: bool = False,
    base: str | os.PathLike[str] | None = None,
    calibration_text: str | os.PathLike[str] | None = None,
) -> ConvertPlan:
    """Validate every choice up front (model, precision on this provider, output folder); a LoRA
    adapter folder is checked against its base (``base``, else the one it names)."""
    model = inspect_model_or_adapter(model_dir, base)
    reason = unavailable_reason(precision, provider)
    if reason:
        raise PlanError(reason)
    if method not in METHODS:
        raise PlanError(_("Conversion method {method!r} is unknown.").format(method=method),
                        _("Choose config or auto-opt."))
    if method == "auto-opt" and model.adapter is not None:
        raise PlanError(_("A LoRA adapter is merged by the Olive config; auto-opt cannot do it."),
                        _("Use --method config for an adapter."))
    if method == "auto-opt" and precision is Precision.INT8:
        raise PlanError(_("INT8 needs the two-pass Olive config; auto-opt cannot produce it."),
                        _("Use --method config for INT8."))
    # auto-opt runs the builder alone, without Olive's passes: there "auto" is the recommendation
    # for architectures QuaRot does not fit (k_quant_mixed at block 16), not QuaRot + GPTQ.
    settings = (int4 or Int4Settings()).validate().resolve(None if method == "auto-opt" else model.architecture)
    calibrated = precision is Precision.INT4 and settings.algorithm.calibrated
    if calibrated and method == "auto-opt":
        raise PlanError(_("{algorithm} runs as passes of the Olive config; auto-opt cannot run it.").format(
                            algorithm=settings.algorithm.value),
                        _("Use --method config, or another INT4 algorithm."))
    if precision is Precision.INT4 and settings.algorithm.rotated and (
            refusal := rotation_refusal(model.architecture)):
        raise PlanError(*refusal)
    text = check_text(calibration_text) if calibrated else None  # before anything is written
    out = Path(output_dir).expanduser() if output_dir else default_output_dir(model, precision)
    out = out.resolve()
    if any(out == folder or folder in out.parents for folder in (
            model.path, *([model.adapter.base.path] if model.adapter else []))):
        raise PlanError(_("The output folder must not be inside the model folder."),
                        _("Choose an output folder elsewhere."))
    if out.exists() and not out.is_dir():
        raise PlanError(_("The output path {path} is a file.").format(path=out),
                        _("Choose a folder name that is free."))
    if out.exists() and not replace_existing:
        raise PlanError(_("The output folder {path} already exists.").format(path=out),
                        _("Choose another folder, or ask to replace it (--replace)."))
    return ConvertPlan(model, out, precision, provider, settings, dict(search or {}), method,
                       replace_existing, calibration_text=text)


def _builder_pass(plan: ConvertPlan, precision: Precision) -> dict[str, object]:
    builder: dict[str, object] = {"type": "ModelBuilder", "precision": precision.value}
    if precision is Precision.INT4:
        builder.update(
            int4_block_size=plan.int4.block_size,
            int4_is_symmetric=plan.int4.symmetric,
            int4_accuracy_level=plan.int4.accuracy_level,
        )
        # The builder's default algorithm is RTN; naming "rtn" explicitly switches it to another
        # code path that keeps the tied embeddings in fp32 (194 MB instead of 103 MB on the demo).
        # After Gptq the builder packs its weights as they are and quantizes only the LM head:
        # "rtn_last" puts it (and the tied embeddings) at 8 bits.
        if plan.int4.algorithm.calibrated:
            builder["int4_algo_config"] = "rtn_last"
        elif plan.int4.algorithm is not Int4Algorithm.RTN:
            builder["int4_algo_config"] = plan.int4.algorithm.value
        if plan.int4.quantize_embeddings:
            builder["int4_op_types_to_quantize"] = ["MatMul", "Gather"]
    if plan.search:
        builder["search"] = dict(plan.search)
    return builder


GPTQ_PASS = "gptq"
ROTATE_PASS = "quarot"  # Olive's QuaRot: Hadamard rotations folded into the weights, no data needed
ROTATE_CONFIG = {"type": "QuaRot"}  # (tests/test_quarot_reach.py runs it alone on each architecture)


# GPTQ's damping (added to the Hessian's diagonal, as a fraction of its mean). Olive's default is
# 0.01; 0.1 measured closer to the source on the demo in each QuaRot + GPTQ setting tried
# (benchmarks/quant_frontier.py, docs/quantization.md): a short calibration text gives a noisy Hessian.
GPTQ_DAMPING = 0.1


def saved_passes(folder: str | os.PathLike[str] | None) -> dict[str, object] | None:
    """The passes of a converted folder's saved olive_config.json (what it was made with), or None."""
    try:
        passes = json.loads((Path(folder or "") / OLIVE_CONFIG_NAME).read_text(encoding="utf-8"))["passes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return passes if isinstance(passes, dict) else None


def conversion_identity(config: dict) -> str:
    """What a conversion is, read from its Olive config: its input model and its passes, without
    the generation defaults (a deploy writes those into its own copy)."""
    passes = json.loads(json.dumps(config.get("passes", {})))
    for spec in passes.values():
        spec.pop("search", None)
        if "overrides" in spec and spec.get("type") == "Gptq":  # measured from the model and the text
            spec["overrides"] = "measured"
    model = str(Path(str(config.get("input_model", {}).get("model_path", ""))).resolve())
    return json.dumps([model, passes], sort_keys=True)


def converted_before(plan: ConvertPlan, folder: Path | None = None) -> bool:
    """Whether ``folder`` (the plan's output by default) already holds this very conversion, made
    and validated by slmops: the same input model and the same passes."""
    folder = plan.output_dir if folder is None else folder
    if not (folder / "genai_config.json").is_file():
        return False
    try:
        saved = json.loads((folder / OLIVE_CONFIG_NAME).read_text(encoding="utf-8"))
        return conversion_identity(saved) == conversion_identity(
            olive_config(plan, folder, paths.olive_cache_dir()))
    except (OSError, ValueError, AttributeError):
        return False


def find_converted(plan: ConvertPlan, places: Iterable[Path]) -> Path | None:
    """The first folder among ``places`` that already holds the plan's very conversion: each place
    is a converted folder itself, or a folder of them (the wizard's models, a comparison's
    candidates). Read, never written; hidden folders (staging) are passed over."""
    for place in places:
        if converted_before(plan, place):
            return place
        if place.is_dir() and not (place / "genai_config.json").exists():
            for folder in sorted(place.iterdir()):
                if not folder.name.startswith(".") and converted_before(plan, folder):
                    return folder
    return None


def precision_in_config(folder: str | os.PathLike[str] | None) -> str | None:
    """The precision a converted folder was made at (fp32, int8, int4), read from its saved config."""
    passes = saved_passes(folder)
    if passes is None:
        return None
    builder = next((p for p in passes.values() if isinstance(p, dict) and p.get("type") == "ModelBuilder"), None)
    if builder is None:
        return None
    precision = str(builder.get("precision", "")) or None
    # INT8 is fp32 from the builder, then 8-bit RTN; an INT4's 8-bit embeddings pass keeps it INT4
    if precision == Precision.FP32.value and any(
            isinstance(p, dict) and p.get("bits") == 8 for p in passes.values()):
        return Precision.INT8.value
    return precision


def rotated_in_config(folder: str | os.PathLike[str] | None) -> bool:
    """Whether a converted folder was rotated (QuaRot) before it was quantized."""
    return ROTATE_PASS in (saved_passes(folder) or {})


def int4_in_config(folder: str | os.PathLike[str] | None) -> tuple[str, int, bool] | None:
    """The INT4 a converted folder was made with (algorithm, block size, symmetric), read from its
    saved olive_config.json; None when the folder, the config or an INT4 builder pass is missing.
    This is what "auto" turned into for that model."""
    passes = saved_passes(folder)
    if passes is None:
        return None
    builder = next((p for p in passes.values() if isinstance(p, dict) and p.get("type") == "ModelBuilder"), None)
    if builder is None or builder.get("precision") != Precision.INT4.value:
        return None
    algorithm = (Int4Algorithm.QUAROT_GPTQ.value if ROTATE_PASS in passes else
                 Int4Algorithm.GPTQ.value if GPTQ_PASS in passes else
                 str(builder.get("int4_algo_config", Int4Algorithm.RTN.value)))
    return algorithm, int(builder.get("int4_block_size", 32)), bool(builder.get("int4_is_symmetric", True))


def gptq_pass(plan: ConvertPlan) -> dict[str, object]:
    """Olive's Gptq pass, calibrated on the plan's local text through our user script (no hub)."""
    assert plan.calibration_text is not None
    tokenizer = plan.model.adapter.base.path if plan.model.adapter is not None else plan.model.path
    spec: dict[str, object] = {
        "type": "Gptq", "bits": 4, "group_size": plan.int4.block_size, "sym": plan.int4.symmetric,
        "damp_percent": GPTQ_DAMPING, "data_config": olive_data_config(tokenizer, plan.calibration_text)}
    if plan.rotated:
        # left empty here: the worker measures which layers lose most at 4 bits and names them
        # (wizard_steps.conversion.sensitivity); the saved config carries what it chose
        spec["overrides"] = {}
    return spec


# After QuaRot the embeddings are no longer tied to the LM head, so the builder keeps them in fp32
# (113 MB of the demo's 220); this pass stores them at 8 bits, as INT8 does (GatherBlockQuantized).
EMBED_PASS = "embeddings_int8"
EMBED_CONFIG = {"type": "OnnxBlockWiseRtnQuantization", "bits": 8, "block_size": 32, "accuracy_level": 4,
                "nodes_to_include": ["/model/embed_tokens/Gather"]}


def olive_config(plan: ConvertPlan, output_dir: Path, cache_dir: Path) -> dict[str, object]:
    """The tutorial's method 2: an Olive workflow config that ``olive run --config`` accepts."""
    if plan.precision is Precision.INT8:
        # ModelBuilder's own int8 fails in onnxruntime-genai 0.14 while Olive exits 0; the
        # working route is fp32 from the builder, then 8-bit block-wise RTN.
        passes = {
            "builder": _builder_pass(plan, Precision.FP32),
            "quantize_int8": {"type": "OnnxBlockWiseRtnQuantization", "bits": 8,
                              "block_size": 32, "accuracy_level": 4},
            # that pass renames the graph output "logits" (onnxruntime-genai then refuses the
            # folder): named back by Olive itself, so that `olive run --config` alone repeats it
            "rename_logits": {"type": "GraphSurgeries", "surgeries": [
                {"surgeon": "RenameOutputs", "old_names": ["logits_Q8"], "new_names": ["logits"]}]},
        }
    elif plan.calibration_text is not None:
        passes = {GPTQ_PASS: gptq_pass(plan), "builder": _builder_pass(plan, plan.precision)}
        if plan.rotated and not plan.int4.quantize_embeddings:  # (asked for: the builder makes them INT4)
            passes[EMBED_PASS] = dict(EMBED_CONFIG)
    else:
        passes = {"builder": _builder_pass(plan, plan.precision)}
    if plan.rotated:  # before GPTQ, or before INT8's int8 activations (so they keep the source's answers)
        passes = {ROTATE_PASS: dict(ROTATE_CONFIG), **passes}
    input_model: dict[str, object] = {"type": "HfModel", "model_path": str(plan.model.path)}
    if plan.model.adapter is not None:  # Olive's own pass merges it first, so a rerun repeats it
        input_model, passes = olive_input_model(plan.model.adapter), {**merge_pass(), **passes}
    return {
        "input_model": input_model,
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [{"device": plan.provider.device,
                                  "execution_providers": [plan.provider.value]}],
            }
        },
        "passes": passes,
        "host": "local_system",
        "target": "local_system",
        "cache_dir": str(cache_dir),
        "output_dir": str(output_dir),
        "log_severity_level": 1,
    }


def olive_arguments(plan: ConvertPlan, config_path: Path, output_dir: Path) -> list[str]:
    """The arguments of the ``olive`` command line for this plan."""
    if plan.method == "config":
        return ["run", "--config", str(config_path)]
    return ["auto-opt", "-m", str(plan.model.path), "--precision", plan.precision.value,
            "--use_model_builder", "--device", plan.provider.device, "--provider",
            plan.provider.value, "-o", str(output_dir), "--log_level", "1"]


def olive_command(plan: ConvertPlan, config_path: Path, output_dir: Path) -> list[str]:
    """Olive's CLI, run by a worker that validates the output in the same process."""
    return [sys.executable, "-m", "wizard_steps.conversion._olive_worker", str(output_dir), "--",
            *olive_arguments(plan, config_path, output_dir)]


def shell_command(plan: ConvertPlan) -> str:
    """The command a user can run by hand to repeat this conversion."""
    if plan.method == "config":
        return f'olive run --config "{plan.output_dir / OLIVE_CONFIG_NAME}"'
    return (f'olive auto-opt -m "{plan.model.path}" --precision {plan.precision.value} '
            f'--use_model_builder --device {plan.provider.device} --provider '
            f'{plan.provider.value} -o "{plan.output_dir}"')


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _postprocess(plan: ConvertPlan, folder: Path, log_dir: Path) -> None:
    """Move Olive's bookkeeping files to the log folder; give auto-opt output the settings."""
    for name in _OLIVE_LEFTOVERS:
        if (folder / name).exists():
            shutil.move(str(folder / name), str(log_dir / name))
    if plan.search and plan.method == "auto-opt":
        genai_path = folder / "genai_config.json"
        genai = json.loads(genai_path.read_text(encoding="utf-8"))
        genai.setdefault("search", {}).update(plan.search)
        _write_json(genai_path, genai)


def _result(lines: list[str]) -> dict[str, object] | None:
    return child_result.find(lines)


def _place(staging: Path, target: Path, replace_existing: bool) -> None:
    if target.exists():
        if not replace_existing:
            raise PlanError(_("The output folder {path} appeared during the conversion.").format(path=target),
                            _("Choose another folder."))
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion made: the folder's size against the source's, how long it took, the text
    the validation generated, the log, the command that repeats it, the INT4 actually used, the
    adapter merged, and the short tuning (None when it did not run). ``reused``: a folder that
    already held this very conversion, used as it was."""

    precision: str
    size_bytes: int
    duration_s: float = 0.0
    method: str = ""
    files: tuple[str, ...] = ()
    source_bytes: int = 0
    sample_text: str = ""
    log_path: str = ""
    rerun: str = ""
    rotated: bool = False
    int4: tuple[str, int, bool] | None = None  # algorithm, block size, symmetric
    adapter: str | None = None
    base: str | None = None
    tuned: QuickTune | None = None
    reused: bool = False

    @property
    def reduction(self) -> float:
        """The share of the source's size saved (0.75: a quarter of it left)."""
        return round(1 - self.size_bytes / self.source_bytes, 4) if self.source_bytes else 0.0

    @classmethod
    def found(cls, folder: Path) -> ConvertResult:
        """A folder converted earlier with the same settings, used as it is."""
        return cls(precision_in_config(folder) or "", folder_size(folder), reused=True)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {k: v for k, v in asdict(self).items() if k not in ("int4", "tuned")}
        data["files"], data["reduction"] = list(self.files), self.reduction
        if self.int4 is not None:
            data["int4"] = dict(zip(("algorithm", "block_size", "symmetric"), self.int4, strict=True))
        if self.tuned is not None:
            data["tuned"] = self.tuned.to_json()
        return {k: v for k, v in data.items() if v is not None}


def convert(plan: ConvertPlan, cancel: threading.Event | None = None) -> Iterator[Event[ConvertResult]]:
    """Run the plan; yields LogLine / Progress events, then Finished or Failed."""
    started = time.monotonic()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out = plan.output_dir
    staging = out.parent / f".{out.name}.partial-{run_id}"
    cache = paths.ensure(paths.olive_cache_dir()) / run_id
    log_dir = paths.ensure(paths.logs_dir() / f"convert-{run_id}")
    log_path = log_dir / "olive.log"
    try:
        paths.ensure(out.parent)
        staging.mkdir()
    except OSError as exc:
        yield Failed(_("Cannot create the output folder in {folder} ({error}).").format(
            folder=out.parent, error=exc.strerror))
        return
    config = olive_config(plan, staging, cache)
    config_path = log_dir / OLIVE_CONFIG_NAME
    _write_json(config_path, config)
    builder = LogProgress(plan.model.num_layers, two_passes=plan.precision is Precision.INT8,
                          quantizer=plan.precision is Precision.INT4 and plan.int4.algorithm.value != "rtn")
    calibrated = CalibratedProgress(builder, GPTQ_PASS) if plan.calibration_text is not None else builder
    rotated = RotateProgress(calibrated, ROTATE_PASS) if plan.rotated else calibrated
    tracker = MergeProgress(rotated) if plan.model.adapter is not None else rotated
    lines: list[str] = []
    placed = False
    exit_code: object = None
    try:
        yield Progress(_("Starting Olive"), 0.0)
        with log_path.open("w", encoding="utf-8") as log:
            for kind, payload in stream_process(olive_command(plan, config_path, staging),
                                                cancel=cancel, cwd=cache.parent, env=OLIVE_ENV):
                if kind == "cancelled":
                    yield Failed(_("The conversion was cancelled; nothing was written."),
                                 log_path, cancelled=True)
                    return
                if kind == "exit":
                    exit_code = payload
                    break
                text = str(payload)
                log.write(text + "\n")
                lines.append(text)
                if child_result.is_result(text):
                    yield Progress(_("Validated: the model loads and generates"), 0.98)
                    continue
                bar, rest = split_live(text)
                for part, live in ((bar, True), (rest, False)):
                    if not part.strip():
                        continue
                    yield LogLine(part, live=live)
                    step = tracker.update(part)
                    if step is not None:
                        yield step
        result = _result(lines)
        if not (staging / "genai_config.json").is_file() or result is None:
            olive_lines = [text for text in lines if not child_result.is_result(text)]
            reason = failure_reason(olive_lines)
            if isinstance(exit_code, int) and exit_code < 0:  # POSIX: its last log line says nothing
                reason = _("its process was killed (signal {signal}) before it finished, for example "
                           "because the machine ran out of memory").format(signal=-exit_code)
            yield Failed(_("Olive produced no model: {reason}").format(reason=reason), log_path)
            return
        if not result.get("ok"):
            yield Failed(_("The converted model does not load: {reason}").format(reason=result.get("error")),
                         log_path)
            return
        if int(result.get("generated_tokens", 0)) < 1:  # type: ignore[call-overload]
            yield Failed(_("The converted model loads but generates no tokens."), log_path)
            return
        _postprocess(plan, staging, log_dir)
        if plan.method == "config":
            rerun_cache = paths.olive_cache_dir() / "rerun"
            saved = olive_config(plan, out, rerun_cache)
            measured = result.get("overrides")
            if isinstance(measured, dict):  # the layers measured here, named, so a rerun repeats them
                saved["passes"][GPTQ_PASS]["overrides"] = measured  # type: ignore[index]
            _write_json(staging / OLIVE_CONFIG_NAME, saved)
        _place(staging, out, plan.replace_existing)
        placed = True
    except OSError as exc:
        yield Failed(_("Writing the converted model failed ({error}).").format(error=exc.strerror or exc),
                     log_path)
        return
    finally:
        if not placed:
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(cache.parent / ".olive-cache", ignore_errors=True)  # auto-opt's own cache
    tuned = None
    if plan.tune:  # the placed folder, tuned for this machine; a cancel here leaves it untuned
        tuned = yield from quick(out, plan.model.path, cancel)
    yield Progress(_("Done"), 1.0)
    adapter = plan.model.adapter
    yield Finished(out, ConvertResult(
        precision=plan.precision.value, size_bytes=folder_size(out),
        duration_s=round(time.monotonic() - started, 1), method=plan.method,
        files=tuple(sorted(p.name for p in out.iterdir())), source_bytes=plan.model.size_bytes,
        sample_text=str(result.get("text", "")), log_path=str(log_path), rerun=shell_command(plan),
        rotated=plan.rotated, int4=int4_in_config(out), tuned=tuned,
        adapter=str(plan.model.path) if adapter is not None else None,
        base=str(adapter.base.path) if adapter is not None else None))
