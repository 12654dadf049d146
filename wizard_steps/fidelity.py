"""Fidelity to the source model: perplexity of the converted ONNX folder against the original
Hugging Face model on a shipped text, and greedy-answer agreement. The source model runs with
torch in a child process (wizard_steps.source_model), so torch never loads into the caller.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wizard_steps.checks import (
    DEFAULT_SYSTEM,
    FIDELITY,
    FIDELITY_QUESTIONS,
    QualityCheck,
    QualityError,
    fidelity_text,
    skipped,
)
from wizard_steps.i18n import _, percent
from wizard_steps.i18n import number as _number
from wizard_steps.source_model import (  # noqa: F401  (part of this module's interface)
    SourceReference,
    perplexity_hf,
    source_reference,
    torch_missing,
)


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
            self.model = og.Model(str(self.folder))
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
    from wizard_steps.model_source import read_chat_template
    from wizard_steps.templates import Conversation, render_with_chat_template, special_tokens

    source = read_chat_template(Path(folder))
    if not source:
        return question
    conversation = Conversation(system, (("user", question),))
    return render_with_chat_template(source, conversation.messages(), special_tokens(Path(folder)))


def _same_inputs(reference: SourceReference, text: str, prompts: Sequence[str]) -> None:
    if reference.perplexity is None or reference.text != text or reference.prompts != tuple(prompts):
        raise QualityError(_("The source reference was made for another text or other questions."),
                           _("Make it with the same text and questions."))


def check_fidelity(source: str | Path, converted: str | Path, text: str | None = None,
                   questions: Sequence[str] = FIDELITY_QUESTIONS, n_tokens: int = 16,
                   tolerance: float = 0.15, min_agreement: float = 0.5,
                   reference: SourceReference | None = None,
                   cancel: threading.Event | None = None) -> QualityCheck:
    """The converted model against its source: perplexity within ``tolerance`` (+15 %: the aim
    for INT4) and greedy answers that agree on at least ``min_agreement`` of their first
    ``n_tokens`` tokens on average (prefix up to the first difference)."""
    text = text if text is not None else fidelity_text()
    prompts = tuple(chat_prompt(Path(converted), q) for q in questions)
    if reference is None and torch_missing():
        return skipped(FIDELITY, _("Skipped: {reason}").format(reason=torch_missing()))
    if reference is not None:
        _same_inputs(reference, text, prompts)
    onnx = _Onnx(converted)
    try:
        perplexity = onnx.perplexity(text)
        text_tokens = len(onnx.encode(text))
        answers = [onnx.greedy(prompt, n_tokens) for prompt in prompts]
        texts = [onnx.decode(a) for a in answers]
    finally:
        onnx.close()
    if reference is None:  # after the converted folder, so a bad one fails fast
        reference = source_reference(source, text, prompts, n_tokens, cancel=cancel)
    assert reference.perplexity is not None
    scores = [prefix_agreement(a, b) for a, b in zip(answers, reference.answers, strict=True)]
    agreement = sum(scores) / len(scores) if scores else 1.0
    ratio = perplexity / reference.perplexity
    ppl_ok, agree_ok = ratio <= 1 + tolerance, agreement >= min_agreement
    evidence = _("Perplexity {source} (source) → {converted} ({change}; allowed +{allowed}); greedy "
                 "agreement {agreement} over {count} questions (needs ≥ {needed}).").format(
        source=_number(reference.perplexity, 2), converted=_number(perplexity, 2),
        change=percent((ratio - 1) * 100, 1, sign=True, space=False),
        allowed=percent(tolerance * 100, space=False), agreement=_number(agreement, 2), count=len(scores),
        needed=_number(min_agreement, 2))
    if text_tokens != reference.text_tokens:
        evidence += _(" The tokenizers split the text differently ({source} vs {converted}).").format(
            source=reference.text_tokens, converted=text_tokens)
    if reference.base_perplexity is not None:  # the source is base + LoRA adapter
        evidence += _(" The source is the base model with the adapter merged; the base alone has "
                      "perplexity {base} on this text.").format(base=_number(reference.base_perplexity, 2))
    return QualityCheck(FIDELITY, ppl_ok and agree_ok, evidence, {
        "source_perplexity": reference.perplexity, "converted_perplexity": perplexity,
        "base_perplexity": reference.base_perplexity,
        "ratio": ratio, "tolerance": tolerance, "agreement": agreement,
        "min_agreement": min_agreement, "text_tokens": text_tokens,
        "answers": [{"question": q, "source": s, "converted": c, "agreement": a}
                    for q, s, c, a in zip(questions, reference.texts, texts, scores, strict=True)]})
