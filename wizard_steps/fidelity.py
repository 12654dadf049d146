"""Fidelity to the source model: perplexity of the converted ONNX folder against the original
Hugging Face model on a shipped text, and greedy-answer agreement. The source model runs with
torch in a child process (``python -m wizard_steps.fidelity REQUEST.json``), so torch never loads
into the caller and its memory goes back when the child ends.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard_steps.i18n import _, percent
from wizard_steps.i18n import number as _number
from wizard_steps.quality import (
    _RESULT,
    DEFAULT_SYSTEM,
    FIDELITY,
    FIDELITY_QUESTIONS,
    QualityCheck,
    QualityError,
    fidelity_text,
    skipped,
)
from wizard_steps.subprocess_stream import stream_process


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


def torch_missing() -> str:
    """Why the source model cannot be run here ('' when torch and transformers are importable)."""
    absent = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if not absent:
        return ""
    message = (_("{names} is not installed, so the source model cannot be run (pip install torch==2.13.0 "
                 "transformers).") if len(absent) == 1 else
               _("{names} are not installed, so the source model cannot be run (pip install "
                 "torch==2.13.0 transformers)."))
    return message.format(names=_(" and ").join(absent))


@dataclass(frozen=True)
class SourceReference:
    """What the source (Hugging Face) model gives: perplexity on a text and greedy answers."""

    text: str | None
    perplexity: float | None
    text_tokens: int
    prompts: tuple[str, ...]
    answers: tuple[tuple[int, ...], ...]
    texts: tuple[str, ...]


def _source_reference_here(folder: str, text: str | None, prompts: Sequence[str],
                           n_tokens: int) -> SourceReference:
    import torch  # heavy: normally in the child process that source_reference starts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    perplexity, text_tokens, answers = None, 0, []
    try:
        with torch.inference_mode():
            if text:
                ids = tokenizer(text, return_tensors="pt").input_ids
                text_tokens = int(ids.shape[1])
                perplexity = float(torch.exp(model(ids, labels=ids).loss))
            for prompt in prompts:  # plain argmax with the KV cache: no sampling, no penalties
                out = model(tokenizer(prompt, return_tensors="pt").input_ids, use_cache=True)
                tokens: list[int] = []
                while len(tokens) < n_tokens:
                    tokens.append(int(out.logits[0, -1].argmax()))
                    if tokens[-1] in eos_ids:
                        break
                    out = model(torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values,
                                use_cache=True)
                answers.append(tuple(tokens))
        texts = tuple(tokenizer.decode(list(a), skip_special_tokens=True) for a in answers)
    finally:
        del model
    return SourceReference(text, perplexity, text_tokens, tuple(prompts), tuple(answers), texts)


def source_reference(folder: str | Path, text: str | None = None, prompts: Sequence[str] = (),
                     n_tokens: int = 16, isolate: bool = True,
                     cancel: threading.Event | None = None) -> SourceReference:
    """Run the source model (fp32, torch) once; in a child process unless ``isolate`` is False,
    so torch's memory goes back when it ends and a crash stays there."""
    missing = torch_missing()
    if missing:
        raise QualityError(missing[0].upper() + missing[1:])
    if not (Path(folder) / "config.json").is_file():
        raise QualityError(_("The source model folder {folder} has no config.json.").format(folder=folder),
                           _("Point to the Hugging Face folder the model was converted from."))
    if not isolate:
        return _source_reference_here(str(folder), text, prompts, n_tokens)
    import tempfile

    request = {"folder": str(folder), "text": text, "prompts": list(prompts), "n_tokens": n_tokens}
    with tempfile.TemporaryDirectory(prefix="slmops-quality-") as tmp:
        request_file = Path(tmp) / "request.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        lines: list[str] = []
        command = [sys.executable, "-m", "wizard_steps.fidelity", str(request_file)]
        env = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        for kind, payload in stream_process(command, cancel=cancel, env=env):
            if kind == "cancelled":
                raise QualityError(_("The fidelity check was cancelled."))
            if kind == "line":
                lines.append(str(payload))
    result = next((json.loads(line[len(_RESULT):]) for line in reversed(lines)
                   if line.startswith(_RESULT)), None)
    if not result or "error" in result:
        reason = (result or {}).get("error") or next((ln for ln in reversed(lines) if ln.strip()),
                                                     _("no output"))
        raise QualityError(_("The source model could not be run: {reason}").format(reason=reason),
                           _("Check that the folder loads with transformers."))
    return SourceReference(text, result["perplexity"], result["text_tokens"], tuple(result["prompts"]),
                           tuple(tuple(a) for a in result["answers"]), tuple(result["texts"]))


def perplexity_hf(folder: str | Path, text: str, isolate: bool = True) -> float:
    """Perplexity of the source Hugging Face folder on ``text`` (fp32, labels = the ids)."""
    value = source_reference(folder, text, isolate=isolate).perplexity
    assert value is not None
    return value


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
    return QualityCheck(FIDELITY, ppl_ok and agree_ok, evidence, {
        "source_perplexity": reference.perplexity, "converted_perplexity": perplexity,
        "ratio": ratio, "tolerance": tolerance, "agreement": agreement,
        "min_agreement": min_agreement, "text_tokens": text_tokens,
        "answers": [{"question": q, "source": s, "converted": c, "agreement": a}
                    for q, s, c, a in zip(questions, reference.texts, texts, scores, strict=True)]})



def _main(argv: list[str]) -> int:
    """Child process: ``python -m wizard_steps.fidelity REQUEST.json`` prints one ``@result`` line."""
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    try:
        ref = _source_reference_here(request["folder"], request["text"], request["prompts"],
                                     int(request["n_tokens"]))
        result: dict[str, object] = {"perplexity": ref.perplexity, "text_tokens": ref.text_tokens,
                                     "prompts": list(ref.prompts), "answers": [list(a) for a in ref.answers],
                                     "texts": list(ref.texts)}
    except Exception as exc:  # reported as data: the parent turns it into one sentence
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    print(_RESULT + json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

