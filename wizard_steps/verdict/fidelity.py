"""Fidelity to the source model: the converted ONNX folder's next-token distributions against the
original Hugging Face model's on the evaluation text (wizard_steps.measurement.evaluation), judged on the
interval's upper end and the KL divergence. The source model runs with torch in a child process
(wizard_steps.measurement.source_model), so torch never loads into the caller.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard_steps.core.checks import (
    DEFAULT_SYSTEM,
    FIDELITY,
    QualityCheck,
    QualityError,
    skipped,
)
from wizard_steps.core.i18n import _, percent
from wizard_steps.core.i18n import number as _number
from wizard_steps.measurement import evaluation
from wizard_steps.measurement.evaluation import Evaluation
from wizard_steps.measurement.source_model import (  # noqa: F401  (part of this module's interface)
    SourceReference,
    perplexity_hf,
    source_reference,
    torch_missing,
)
from wizard_steps.model.model_source import read_chat_template
from wizard_steps.prompt.templates import Conversation, render_with_chat_template, special_tokens
from wizard_steps.runtime.last_logits import all_logits


def perplexity_from_logits(logits: object, ids: Sequence[int]) -> float:
    """exp(mean negative log-likelihood) of ids[1:] given the logits at each earlier position."""
    import numpy as np

    rows = np.asarray(logits, dtype=np.float64)
    rows = rows.reshape(-1, rows.shape[-1])[-len(ids):-1]
    top = rows.max(axis=1)
    log_norm = np.log(np.exp(rows - top[:, None]).sum(axis=1)) + top
    targets = np.asarray(ids[1:])
    return float(np.exp(np.mean(log_norm - rows[np.arange(len(targets)), targets])))


class _Onnx:
    """A converted folder opened once for both perplexity and greedy answers."""

    def __init__(self, folder: str | Path) -> None:
        import onnxruntime_genai as og  # heavy: only when a converted folder is measured

        self.og, self.folder = og, Path(folder)
        try:
            config = json.loads((self.folder / "genai_config.json").read_text(encoding="utf-8"))["model"]
            # a name the graph lacks crashes the runtime, so take exactly the configured one
            self.logits_name = config["decoder"]["outputs"]["logits"]
            with all_logits(self.folder) as every_position:  # a deployed copy's graph cut to the last one
                self.model = og.Model(str(every_position))
        except Exception as exc:
            raise QualityError(_("The converted folder {folder} cannot be loaded ({error}).").format(
                                   folder=self.folder, error=exc).splitlines()[0],
                               _("Convert the model again.")) from None
        self.tokenizer = og.Tokenizer(self.model)
        self.context = int(config.get("context_length", 2048))
        eos = config.get("eos_token_id", [])
        self.eos = set(eos if isinstance(eos, list) else [eos])

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def _generator(self, max_length: int) -> Any:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, do_sample=False, repetition_penalty=1.0)
        return self.og.Generator(self.model, params)

    def perplexity(self, text: str, stepwise: bool = False) -> float:
        import numpy as np

        ids = self.encode(text)
        if not 2 <= len(ids) < self.context:
            raise QualityError(_("The perplexity text is {tokens} tokens; it needs 2 to {most}.").format(
                                   tokens=len(ids), most=self.context - 1),
                               _("Use a paragraph of plain prose."))
        generator = self._generator(len(ids) + 1)
        if not stepwise:
            generator.append_tokens(ids)
            logits = generator.get_output(self.logits_name)
            if math.prod(logits.shape[:-1]) == len(ids):  # every position, in 0.14.1
                return perplexity_from_logits(logits, ids)
            generator = self._generator(len(ids) + 1)
        rows = []
        for token in ids:  # runtimes that give the last position only: one token at a time
            generator.append_tokens([token])
            step = np.asarray(generator.get_output(self.logits_name))
            rows.append(step.reshape(-1, step.shape[-1])[-1])
        return perplexity_from_logits(np.stack(rows), ids)

    def greedy(self, prompt: str, n_tokens: int) -> list[int]:
        ids = self.encode(prompt)
        generator = self._generator(min(len(ids) + n_tokens, self.context))
        generator.append_tokens(ids)
        tokens: list[int] = []
        while len(tokens) < n_tokens and not generator.is_done():
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
            if tokens[-1] in self.eos:
                break
        return tokens

    def decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens)))

    def close(self) -> None:
        del self.tokenizer, self.model


def perplexity_onnx(folder: str | Path, text: str, stepwise: bool = False) -> float:
    """Perplexity of a converted folder on ``text``, from onnxruntime-genai's logits for the whole
    sequence at once (``stepwise``: one token at a time, as runtimes without them need)."""
    onnx = _Onnx(folder)
    try:
        return onnx.perplexity(text, stepwise)
    finally:
        onnx.close()


def prefix_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """How much of two greedy answers is the same before they first differ (1.0 = identical)."""
    longest = max(len(a), len(b))
    if not longest:
        return 1.0
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return same / longest


def chat_prompt(folder: Path, question: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """The question as the folder's chat template renders it (the raw question without one)."""

    source = read_chat_template(Path(folder))
    if not source:
        return question
    conversation = Conversation(system, (("user", question),))
    return render_with_chat_template(source, conversation.messages(), special_tokens(Path(folder)))


def tuning_figures(converted: str | Path, reference: SourceReference) -> dict[str, Any]:
    """What the route benchmarks choose on (never what a user is shown): the converted folder's
    perplexity on the reference's tuning text against the source's, and the greedy agreement of
    its answers to the reference's prompts (prefix up to the first difference)."""
    assert reference.text is not None and reference.perplexity is not None
    onnx = _Onnx(converted)
    try:
        perplexity = onnx.perplexity(reference.text)
        answers = [onnx.greedy(prompt, 16) for prompt in reference.prompts]
        texts = [onnx.decode(a) for a in answers]
    finally:
        onnx.close()
    scores = [prefix_agreement(a, b) for a, b in zip(answers, reference.answers, strict=True)]
    return {"converted_perplexity": perplexity, "ratio": perplexity / reference.perplexity,
            "agreement": sum(scores) / len(scores) if scores else 1.0,
            "answers": [{"source": s, "converted": c} for s, c in zip(reference.texts, texts, strict=True)]}


# Mean KL divergence the checklist allows; on the demo, evaluation text, AMD EPYC: INT8 0.004, the
# default INT4 0.16, RTN block 16 0.30 (benchmarks/eval_frontier.py).
KL_BOUND = 0.15


@dataclass(frozen=True)
class FidelityFigures:
    """The fidelity check's figures: the evaluation (perplexity ratio with its interval, KL
    divergence, top-1 agreement, tokens, CPU) and the bounds it was held to."""

    evaluation: Evaluation
    tolerance: float
    kl_bound: float
    min_agreement: float

    @property
    def ratio(self) -> float:
        return self.evaluation.ratio.value

    @property
    def ratio_low(self) -> float:
        return self.evaluation.ratio.low

    @property
    def ratio_high(self) -> float:
        return self.evaluation.ratio.high

    @property
    def kl_mean(self) -> float:
        return self.evaluation.kl_mean

    @property
    def kl_p99(self) -> float:
        return self.evaluation.kl_p99

    @property
    def agreement(self) -> float:
        return self.evaluation.top1

    @property
    def source_perplexity(self) -> float:
        return self.evaluation.source_perplexity

    @property
    def converted_perplexity(self) -> float:
        return self.evaluation.perplexity

    @property
    def base_perplexity(self) -> float | None:
        return self.evaluation.base_perplexity

    @property
    def text_tokens(self) -> int:
        return self.evaluation.tokens


def check_fidelity(source: str | Path, converted: str | Path, text: str | None = None,
                   tolerance: float = 0.15, kl_bound: float | None = None, min_agreement: float = 0.5,
                   reference: evaluation.Reference | None = None, limit: int | None = None,
                   cancel: threading.Event | None = None) -> QualityCheck[FidelityFigures]:
    """The converted model against its source on the evaluation text (``text``: the user's own),
    windows of 512 tokens: the perplexity ratio's 95 % interval must end at or below 1 +
    ``tolerance`` (+15 %: the aim for INT4), the mean KL divergence stay within ``kl_bound``, and
    both models rank the same token first at ``min_agreement`` of the positions at least. The bound
    is on the interval's upper end, not on a point estimate: a short text cannot pass by luck."""
    if reference is None and torch_missing() and not (Path(source) / "genai_config.json").is_file():
        return skipped(FIDELITY, _("Skipped: {reason}").format(reason=torch_missing()))
    windows = evaluation.check_pair(source, converted, text)
    windows = windows[:limit] if limit is not None else windows
    if reference is None:
        reference = evaluation.reference(source, windows, cancel=cancel)
    result = evaluation.evaluate(converted, reference, windows, cancel)
    return judge(result, tolerance, kl_bound, min_agreement, own_text=text is not None)


def judge(result: evaluation.Evaluation, tolerance: float = 0.15, kl_bound: float | None = None,
          min_agreement: float = 0.5, own_text: bool = False) -> QualityCheck[FidelityFigures]:
    """The verdict on a measured evaluation under these bounds (``check_fidelity``'s second half:
    the same measurement judged again under other bounds runs no model)."""
    kl_bound = KL_BOUND if kl_bound is None else kl_bound
    ratio_ok = result.ratio.high <= 1 + tolerance
    kl_ok, agree_ok = result.kl_mean <= kl_bound, result.top1 >= min_agreement
    what = _("your text") if own_text else _("the evaluation text")
    evidence = _("Perplexity ×{ratio} of the source's (95 % {low}–{high}; allowed up to ×{allowed}), "
                 "KL divergence {kl} (p99 {p99}; allowed {kl_bound}), same first token {top1} (needs ≥ "
                 "{needed}), over {tokens} tokens of {what}; measured on {cpu}.").format(
        ratio=_number(result.ratio.value, 3), low=_number(result.ratio.low, 3),
        high=_number(result.ratio.high, 3), allowed=_number(1 + tolerance, 2), kl=_number(result.kl_mean, 3),
        p99=_number(result.kl_p99, 2), kl_bound=_number(kl_bound, 2), top1=percent(result.top1 * 100, 0),
        needed=percent(min_agreement * 100, 0), tokens=_number(result.tokens, 0), what=what, cpu=result.cpu)
    if result.base_perplexity is not None:  # the source is base + LoRA adapter
        evidence += _(" The source is the base model with the adapter merged; the base alone has "
                      "perplexity {base} on this text.").format(base=_number(result.base_perplexity, 2))
    return QualityCheck(FIDELITY, ratio_ok and kl_ok and agree_ok, evidence,
                        FidelityFigures(result, tolerance, kl_bound, min_agreement))
