"""The precision choice: what FP32 / FP16 / INT8 / INT4 give, for this model, on this hardware.

Sizes are estimated from the model's real parameter count with the byte costs of the formats the
ONNX model builder writes (checked against the converted demo folders, docs/quantization.md); the
quality notes carry the demo model's figures on the evaluation text and the CPU they came from.
Speeds and quality move between CPUs (int8/int4 kernels differ): they are estimates until
``slmops compare`` measures them here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum

from wizard_steps.conversion.sensitivity import SHARE
from wizard_steps.core.errors import PlanError
from wizard_steps.core.i18n import N_, _, number


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"


class ExecutionProvider(str, Enum):
    CPU = "CPUExecutionProvider"
    CUDA = "CUDAExecutionProvider"
    DML = "DmlExecutionProvider"
    WEBGPU = "WebGpuExecutionProvider"

    @property
    def device(self) -> str:
        return "cpu" if self is ExecutionProvider.CPU else "gpu"


class Int4Algorithm(str, Enum):
    """How the INT4 weights are chosen: RTN and k_quant_mixed by the model builder alone; GPTQ by
    Olive's Gptq pass (layer by layer, from a calibration text) before the builder; QuaRot + GPTQ
    rotates the weights with Olive's QuaRot pass (Hadamard, no data) first, which spreads the
    outliers GPTQ would otherwise round badly."""

    AUTO = "auto"  # the closest measured that fits the model's architecture (recommended_int4)
    RTN = "rtn"
    K_QUANT_MIXED = "k_quant_mixed"
    GPTQ = "gptq"
    QUAROT_GPTQ = "quarot_gptq"

    @property
    def calibrated(self) -> bool:
        """Whether it learns from a calibration text (and takes minutes rather than seconds)."""
        return self in (Int4Algorithm.GPTQ, Int4Algorithm.QUAROT_GPTQ)

    @property
    def rotated(self) -> bool:
        """Whether Olive's QuaRot pass rotates the model before it is quantized."""
        return self is Int4Algorithm.QUAROT_GPTQ


# Architectures for which Olive's QuaRot keeps what the model computes (a random model of each,
# rotated, gives the source's logits to 1e-6) and whose rotated, GPTQ-quantized model the builder
# converts and onnxruntime-genai runs: tests/test_quarot_reach.py checks both. Olive rotates the
# Gemma family without an error but wrongly (Gemma's norms scale by 1 + weight; Gemma 2 and 3 also
# normalise after attention and MLP): the top token changed at every position. It refuses Phi (no
# model.norm), OLMo and Nemotron (LayerNorm). Architectures not probed are refused too.
QUAROT_ARCHITECTURES = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Phi3ForCausalLM",
    "GraniteForCausalLM", "SmolLM3ForCausalLM", "Ernie4_5ForCausalLM",
})


def rotation_refusal(architecture: str) -> tuple[str, str] | None:
    """Why QuaRot + GPTQ cannot take a model of this architecture (message, hint); None if it can."""
    if architecture in QUAROT_ARCHITECTURES:
        return None
    return (_("QuaRot + GPTQ is checked only for Llama, Mistral, Qwen2, Qwen3, Phi-3, Granite, SmolLM3 and "
              "ERNIE 4.5 models; on {architecture} Olive's rotation would change what the model computes "
              "or refuse it.").format(architecture=architecture),
            _("Choose auto, k_quant_mixed or gptq for this model."))


def int8_rotated(architecture: str | None) -> bool:
    """Whether INT8 rotates the model first (Olive's QuaRot, exact for these architectures). The
    int8 kernels quantize the activations too, and a rotation spreads their outliers: on the demo
    greedy agreement with the source went from 0.70 to 0.81 and perplexity from +0.9 % to -0.2 %,
    at the same size (benchmarks/quant_frontier.py, int8 against int8_quarot)."""
    return architecture in QUAROT_ARCHITECTURES


# The default: chosen by the model's architecture when the plan is made (recommended_int4).
RECOMMENDED_INT4 = Int4Algorithm.AUTO

# Each algorithm's measured trade-off on the demo, on the evaluation text against its fp32 source
# (benchmarks/eval_frontier.py, measured on FIGURES_CPU; the older frontier: docs/quantization.md).
_ALGORITHM_NOTES = {
    Int4Algorithm.AUTO: N_("the INT4 this model's architecture takes best: QuaRot + GPTQ, asymmetric, "
                           "block 32, its most sensitive layers at 8 bits, for Llama, Mistral, Qwen2, Qwen3, "
                           "Phi-3, Granite, SmolLM3 and ERNIE 4.5 models; k_quant_mixed at block 16 for the "
                           "others. On the demo, on the evaluation text: perplexity x1.09 and KL divergence "
                           "0.10 for the first, x1.16 and 0.15 for the second"),
    Int4Algorithm.K_QUANT_MIXED: N_("at block 16: 250 MB, perplexity x1.16, KL divergence 0.15 on the demo; "
                                    "LM head and some layers at 8 bits; fits every architecture"),
    Int4Algorithm.RTN: N_("plain rounding: smallest and fastest to convert; on the demo at block 16 perplexity "
                          "x1.34, KL divergence 0.30"),
    Int4Algorithm.GPTQ: N_("Olive's GPTQ on a calibration text (torch, layer by layer), no rotation; on the "
                           "demo further from the source than k_quant_mixed"),
    Int4Algorithm.QUAROT_GPTQ: N_("QuaRot rotations, then GPTQ on a calibration text, asymmetric at block 32, "
                                  "the layers measured as most sensitive (a fifth of the weights) and the "
                                  "embeddings at 8 bits: on the demo 150 MB, perplexity x1.09, KL divergence "
                                  "0.10; for Llama, Mistral, Qwen2, Qwen3, Phi-3, Granite, SmolLM3 and ERNIE "
                                  "4.5 models"),
}


def best_settings(algorithm: Int4Algorithm) -> Int4Settings:
    """The block size and symmetry that measured closest to the source for an algorithm on the
    demo (benchmarks/quant_frontier.py): QuaRot + GPTQ asymmetric at block 32 (+2.2 %, against
    +4.0 % asymmetric at block 16 and +9.5 % symmetric at 32); the others at the defaults."""
    if algorithm is Int4Algorithm.QUAROT_GPTQ:
        return Int4Settings(block_size=32, symmetric=False, algorithm=algorithm)
    return Int4Settings(algorithm=algorithm)


def recommended_int4(architecture: str | None) -> Int4Settings:
    """The closest INT4 measured that fits the architecture: QuaRot + GPTQ asymmetric at block 32
    where QuaRot keeps what the model computes (on the demo +2.2 %, every domain answer, x1.7
    the generation of k_quant_mixed at block 16), k_quant_mixed at block 16 elsewhere (+8.1 %):
    the builder's k-quant takes every architecture, QuaRot breaks the Gemma family silently."""
    if architecture in QUAROT_ARCHITECTURES:
        return best_settings(Int4Algorithm.QUAROT_GPTQ)
    return best_settings(Int4Algorithm.K_QUANT_MIXED)


def chosen_int4(algorithm: str = "auto", block_size: int | None = None, symmetric: bool | None = None,
                accuracy_level: int = 4, quantize_embeddings: bool = False) -> Int4Settings:
    """INT4 settings from what a command line gave: with AUTO the block size and symmetry come
    with the recommendation, so giving either is an error; a named algorithm starts from its best
    measured settings and takes what was given."""
    try:
        chosen = Int4Algorithm(algorithm)
    except ValueError:
        raise PlanError(_("INT4 algorithm {algorithm} is unknown.").format(algorithm=repr(algorithm)),
                        _("Choose one of {choices}.").format(
                            choices=", ".join(a.value for a in Int4Algorithm))) from None
    if chosen is Int4Algorithm.AUTO:
        if block_size is not None or symmetric is not None:
            raise PlanError(_("A block size or symmetry applies only to a named INT4 algorithm; the automatic "
                              "choice brings its own."),
                            _("Add --int4-algo (k_quant_mixed, quarot_gptq, gptq or rtn), or drop "
                              "--block-size and --symmetric/--asymmetric."))
        return Int4Settings(accuracy_level=accuracy_level, quantize_embeddings=quantize_embeddings)
    best = best_settings(chosen)
    return Int4Settings(block_size=best.block_size if block_size is None else block_size,
                        symmetric=best.symmetric if symmetric is None else symmetric,
                        accuracy_level=accuracy_level, algorithm=chosen,
                        quantize_embeddings=quantize_embeddings)


# Each algorithm's short label, once: the precision step's list, the plain prompts and the
# summary read it from here (argparse and answers files take the enum's values).
_ALGORITHM_LABELS = {
    Int4Algorithm.AUTO: N_("auto: fits this model"),
    Int4Algorithm.K_QUANT_MIXED: N_("k_quant_mixed: fits every model"),
    Int4Algorithm.RTN: N_("rtn: fastest"),
    Int4Algorithm.GPTQ: N_("gptq: calibrated"),
    Int4Algorithm.QUAROT_GPTQ: N_("quarot_gptq: closest"),
}
ALGORITHM_ORDER = (Int4Algorithm.AUTO, Int4Algorithm.K_QUANT_MIXED, Int4Algorithm.RTN, Int4Algorithm.GPTQ,
                   Int4Algorithm.QUAROT_GPTQ)  # as the lists show them: the default first


def algorithm_label(algorithm: Int4Algorithm) -> str:
    """The algorithm's short label in the current language."""
    return _(_ALGORITHM_LABELS[algorithm])


def algorithm_note(algorithm: Int4Algorithm) -> str:
    """The measured trade-off of an INT4 algorithm, for the precision step to show beside it."""
    return _(_ALGORITHM_NOTES[algorithm])


BLOCK_SIZES = (16, 32, 64, 128, 256)
ACCURACY_LEVELS = {1: "fp32", 2: "fp16", 3: "bf16", 4: "int8"}


@dataclass(frozen=True)
class Int4Settings:
    """INT4 quantization settings. The default algorithm, AUTO, is resolved by the model's
    architecture when the plan is made (``resolve``), and brings its own block size and symmetry:
    those fields count only with a named algorithm."""

    block_size: int = 16
    symmetric: bool = True
    accuracy_level: int = 4
    algorithm: Int4Algorithm = RECOMMENDED_INT4
    quantize_embeddings: bool = False

    def resolve(self, architecture: str | None) -> Int4Settings:
        """With AUTO, the recommended settings for this architecture (the accuracy level and the
        embeddings as chosen); a named algorithm as it is."""
        if self.algorithm is not Int4Algorithm.AUTO:
            return self
        return replace(recommended_int4(architecture), accuracy_level=self.accuracy_level,
                       quantize_embeddings=self.quantize_embeddings)

    def to_json(self) -> dict[str, object]:
        """Plain JSON types, as the saved state and the answers file keep them."""
        return {"algorithm": self.algorithm.value, "block_size": self.block_size, "symmetric": self.symmetric,
                "accuracy_level": self.accuracy_level, "quantize_embeddings": self.quantize_embeddings}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Int4Settings:
        """The settings saved by ``to_json`` (keys left out keep their defaults); raises PlanError
        for an unknown key or a value that is not allowed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(_("Unknown INT4 setting {key}.").format(key=repr(unknown[0])),
                            _("Known settings: {keys}.").format(keys=", ".join(sorted(known))))
        try:
            algorithm = Int4Algorithm(data.get("algorithm", RECOMMENDED_INT4.value))
        except ValueError:
            raise PlanError(_("INT4 algorithm {algorithm} is unknown.").format(algorithm=repr(data["algorithm"])),
                            _("Choose one of {choices}.").format(
                                choices=", ".join(a.value for a in ALGORITHM_ORDER))) from None
        default = cls()
        block = data.get("block_size", default.block_size)
        level = data.get("accuracy_level", default.accuracy_level)
        symmetric = data.get("symmetric", default.symmetric)
        embeddings = data.get("quantize_embeddings", default.quantize_embeddings)
        for name, value, kind in (("block_size", block, int), ("accuracy_level", level, int),
                                  ("symmetric", symmetric, bool), ("quantize_embeddings", embeddings, bool)):
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise PlanError(_("INT4 setting {key} cannot be {value}.").format(key=name, value=repr(value)))
        assert isinstance(block, int) and isinstance(level, int)  # checked above, said again for the types
        return cls(block_size=block, symmetric=bool(symmetric), accuracy_level=level, algorithm=algorithm,
                   quantize_embeddings=bool(embeddings)).validate()

    def describe(self) -> str:
        """One line, as the summary shows it: the algorithm, then (for a named one) block size,
        symmetry and the share at 8 bits, the compute type where it is not int8, and the
        embeddings' precision (for auto, only when asked to quantize them)."""
        parts = [self.algorithm.value]
        if self.algorithm is not Int4Algorithm.AUTO:
            parts.append(_("block {size}").format(size=self.block_size))
            parts.append(_("symmetric") if self.symmetric else _("asymmetric"))
        if self.algorithm.rotated:  # the measured layers; the embeddings too (the note says so)
            parts.append(_("{share} % at 8 bits").format(share=round(SHARE * 100)))
        if self.accuracy_level != 4:
            parts.append(_("compute {kind}").format(kind=ACCURACY_LEVELS[self.accuracy_level]))
        if self.quantize_embeddings or self.algorithm not in (Int4Algorithm.AUTO, Int4Algorithm.QUAROT_GPTQ):
            embeddings = "INT4" if self.quantize_embeddings else "FP32"  # auto: by the architecture
            parts.append(_("embeddings {embeddings}").format(embeddings=embeddings))
        return " · ".join(parts)

    def validate(self) -> Int4Settings:
        if self.block_size not in BLOCK_SIZES:
            raise PlanError(
                _("INT4 block size {size} is not allowed.").format(size=self.block_size),
                _("Choose one of {sizes}.").format(sizes=", ".join(map(str, BLOCK_SIZES))),
            )
        if self.accuracy_level not in ACCURACY_LEVELS:
            raise PlanError(
                _("INT4 accuracy level {level} is not allowed.").format(level=self.accuracy_level),
                _("Choose 1 (fp32), 2 (fp16), 3 (bf16) or 4 (int8; fastest on CPU)."),
            )
        if not isinstance(self.algorithm, Int4Algorithm):
            raise PlanError(_("INT4 algorithm {algorithm} is unknown.").format(
                algorithm=repr(self.algorithm)), _("Choose one of {choices}.").format(
                choices=", ".join(a.value for a in Int4Algorithm)))
        return self


@dataclass(frozen=True)
class PrecisionOption:
    """One row of the precision table, with this model's estimated size."""

    precision: Precision
    label: str
    size_ratio: str
    speed: str
    quality: str
    use: str
    demo_measured: str
    estimated_bytes: int
    available: bool
    unavailable_reason: str


# The last column: the demo's figures on the evaluation text against its fp32 source, measured on
# FIGURES_CPU (benchmarks/eval_frontier.py); shown as another machine's until a comparison runs here.
# measured on 2026-12-02, when this VM's CPU listed AVX2 and no AVX-512 (onnxruntime's AVX2 kernels)
FIGURES_CPU = "AMD EPYC with AVX2 only"
_TABLE = {  # translated where the options are made (N_ marks them for extraction)
    Precision.FP32: ("FP32", N_("1x (reference)"), N_("baseline"), N_("identical to the source"),
                     N_("checking that conversion is exact"),
                     N_("657 MB, perplexity x1.000 of the source's, KL divergence 0")),
    Precision.FP16: ("FP16", "~1/2", N_("fast on GPUs"), N_("practically lossless"),
                     N_("GPU deployment (CUDA, DirectML, WebGPU)"),
                     N_("not measured: FP16 needs a GPU execution provider")),
    Precision.INT8: ("INT8", N_("~1/4 of FP32 here"), N_("~2x FP32 on CPU"), N_("close to the source"),
                     N_("CPU deployment where quality matters most"),
                     N_("189 MB, rotated first: perplexity x1.004 (its 95-percent interval up to x1.006), "
                        "KL divergence 0.004")),
    Precision.INT4: ("INT4", N_("~1/3 to 1/6"), N_("~2x FP32 on CPU; ~3x at block 32"),
                     N_("a clear loss on a model this small: compare it here"),
                     N_("laptops and workshops, once it passes the checklist here"),
                     N_("150 MB QuaRot + GPTQ (auto, a fifth at 8 bits): perplexity x1.09 (up to x1.11), "
                        "KL divergence 0.10; 250 MB k_quant_mixed block 16: x1.16, 0.15; 220 MB RTN block 16: "
                        "x1.34, 0.30")),
}

# Execution providers on which Olive's ModelBuilder accepts each precision.
_ALLOWED = {
    Precision.FP32: set(ExecutionProvider),
    Precision.FP16: {ExecutionProvider.CUDA, ExecutionProvider.DML, ExecutionProvider.WEBGPU},
    Precision.INT8: set(ExecutionProvider),
    Precision.INT4: set(ExecutionProvider),
}


def unavailable_reason(precision: Precision, provider: ExecutionProvider) -> str:
    """Why a precision cannot run on an execution provider, or "" when it can."""
    if provider in _ALLOWED[precision]:
        return ""
    if precision is Precision.FP16:
        return _("Olive refuses FP16 on the CPU execution provider: choose INT8 or INT4 for CPU, "
                 "or a GPU provider (CUDA, DirectML, WebGPU) for FP16.")
    return _("{precision} is not available on {provider}.").format(
        precision=precision.value.upper(), provider=provider.value)


def estimate_bytes(
    precision: Precision,
    num_parameters: int,
    vocab_size: int,
    hidden_size: int,
    tied_embeddings: bool = True,
    int4: Int4Settings | None = None,
) -> int:
    """The converted folder's size: the builder unties embeddings into a separate LM head."""
    embed = vocab_size * hidden_size
    total = num_parameters + (embed if tied_embeddings else 0)
    if precision is Precision.FP32:
        return total * 4
    if precision is Precision.FP16:
        return total * 2
    if precision is Precision.INT8:  # 8-bit blocks of 32 with an fp32 scale, embeddings included
        return int(total * (1 + 4 / 32))
    settings = (int4 or Int4Settings()).resolve(None)  # callers resolve by architecture first
    per_param = 0.5 + 4 / settings.block_size + (0 if settings.symmetric else 0.5 / settings.block_size)
    if settings.quantize_embeddings:
        return int(total * per_param)
    if settings.algorithm.rotated:  # the most sensitive fifth, the LM head and the embeddings at 8 bits
        decoder = (total - 2 * embed) * ((1 - SHARE) * per_param + SHARE * (1 + 4 / 32))
        return int(decoder + 2 * embed * (1 + 4 / 32))
    if settings.algorithm.calibrated:  # LM head at 8 bits; the embeddings stay fp32 (measured)
        return int((total - 2 * embed) * per_param + embed * (1 + 4 / 32) + embed * 4)
    size = (total - embed) * per_param + embed * 4
    if settings.algorithm is Int4Algorithm.K_QUANT_MIXED:  # LM head and some layers at 8 bits
        size += embed * (1 + 4 / 32 - per_param) + (total - 2 * embed) * 0.06
    return int(size)


def options(
    num_parameters: int,
    vocab_size: int,
    hidden_size: int,
    provider: ExecutionProvider = ExecutionProvider.CPU,
    tied_embeddings: bool = True,
    int4: Int4Settings | None = None,
) -> list[PrecisionOption]:
    """The four options for this model and provider, unavailable ones with their reason."""
    rows = []
    for precision, (label, ratio, speed, quality, use, measured) in _TABLE.items():
        reason = unavailable_reason(precision, provider)
        rows.append(
            PrecisionOption(
                precision=precision, label=label, size_ratio=_(ratio), speed=_(speed),
                quality=_(quality), use=_(use), demo_measured=_(measured),
                estimated_bytes=estimate_bytes(precision, num_parameters, vocab_size,
                                               hidden_size, tied_embeddings, int4),
                available=not reason, unavailable_reason=reason,
            )
        )
    return rows


def recommended(provider: ExecutionProvider = ExecutionProvider.CPU) -> Precision:
    return Precision.INT4 if provider is ExecutionProvider.CPU else Precision.FP16


def parse_precision(value: str) -> Precision:
    try:
        return Precision(value.strip().lower())
    except ValueError:
        raise PlanError(_("Precision {value} is unknown.").format(value=repr(value)),
                        _("Choose fp32, fp16, int8 or int4.")) from None


def human_size(num_bytes: float) -> str:
    """Decimal units, as file managers and the tutorial show them (627 MB, 1.2 GB; 1,2 GB in
    Turkish). For people only: --json output carries the byte counts."""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{number(value, 0)} {unit}" if value >= 10 or unit == "B" else f"{number(value, 1)} {unit}"
