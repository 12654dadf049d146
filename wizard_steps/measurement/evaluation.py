"""How far a converted model is from its source, measured as llama.cpp's ``llama-perplexity
--kl-divergence`` does: the evaluation text cut into windows of 512 tokens (no history), the source's
next-token distribution at every position against the converted model's.

Reported: the perplexity ratio with a 95 % interval (paired over windows: each window's mean
log-likelihood difference, so the noise the two models share cancels), the mean and 99th
percentile of the KL divergence, and how often both models rank the same token first.

The source's side is computed once per machine and text and cached (its top ``TOP_K`` log-probabilities
per position and the mass left over, which is enough for the KL divergence: the tail beyond the
top 64 is taken as one bin, so the figure is a close lower bound). The source is the Hugging Face
folder (torch fp32, in a child process) or, for checks of the harness itself, a converted folder.

The evaluation text (``data/eval/``) is used by nothing that chooses a route or a setting: those
were chosen on the tuning texts (``calibration_text.txt``, ``fidelity_text.txt``), and a test keeps
the two apart."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard_steps.core import paths
from wizard_steps.core.checks import QualityError
from wizard_steps.core.i18n import _
from wizard_steps.measurement import source_model
from wizard_steps.measurement.divergence import (
    TOP_K,
    Interval,
    kl_from_top,
    log_softmax,
    paired_ratio,
    stats_from_logits,
)
from wizard_steps.measurement.machine import cpu_name
from wizard_steps.model.adapter import inspect_adapter, is_adapter_folder
from wizard_steps.runtime.last_logits import all_logits

WINDOW = 512
CACHE_VERSION = 1
EVAL_DIR = Path(__file__).parents[1] / "data" / "eval"
TUNING_TEXTS = ("calibration_text.txt", "fidelity_text.txt")  # what routes and settings were chosen on


def evaluation_text() -> str:
    """The shipped evaluation text: narrative, instructions, dialogue, technical prose, Turkish."""
    return "\n\n".join(p.read_text(encoding="utf-8").strip() for p in sorted(EVAL_DIR.glob("*.txt")))


def tuning_texts() -> dict[str, str]:
    data = Path(__file__).parents[1] / "data"
    return {name: (data / name).read_text(encoding="utf-8") for name in TUNING_TEXTS}


def read_text_file(path: str | Path) -> str:
    """A user's own text (a fine-tune is judged on its domain): UTF-8 prose, or one sentence why not."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise QualityError(_("The text file {path} cannot be read ({error}).").format(
            path=path, error=exc.strerror or exc), _("Give the path of a UTF-8 text file.")) from None
    if b"\x00" in raw:
        raise QualityError(_("{path} is a binary file, not text.").format(path=path),
                           _("Give a plain UTF-8 text file of your model's domain."))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise QualityError(_("{path} is not UTF-8 text.").format(path=path),
                           _("Save it as UTF-8 (most editors offer it under 'Save as').")) from None
    if not text.strip():
        raise QualityError(_("{path} is empty.").format(path=path),
                           _("Give a text of at least {tokens} tokens (about {words} words).").format(
                               tokens=WINDOW, words=WINDOW * 3 // 4))
    return text


# --- tokens and windows -------------------------------------------------------------------------


def tokenizer_folder(folder: str | Path) -> Path:
    """Where a model's tokenizer is: the folder, or for a LoRA adapter its base."""

    return inspect_adapter(folder).base.path if is_adapter_folder(folder) else Path(folder)


def tokenize(folder: str | Path, text: str) -> list[int]:
    """The text's token ids by the folder's own tokenizer.json (the fast tokenizer, no torch)."""
    from tokenizers import Tokenizer  # a Rust extension, light: the same one transformers uses

    file = tokenizer_folder(folder) / "tokenizer.json"
    if not file.is_file():
        raise QualityError(_("{folder} has no tokenizer.json.").format(folder=folder),
                           _("Point to a model folder with its tokenizer."))
    tokenizer = Tokenizer.from_file(str(file))
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


def windows_of(ids: list[int], window: int = WINDOW, limit: int | None = None) -> list[list[int]]:
    """Whole windows only (as llama-perplexity cuts its chunks); ``limit`` keeps the first few."""
    count = len(ids) // window
    if count == 0:
        raise QualityError(_("The text is {tokens} tokens, shorter than one window of {window}.").format(
                               tokens=len(ids), window=window),
                           _("Give a text of at least {tokens} tokens (about {words} words).").format(
                               tokens=window, words=window * 3 // 4))
    if limit is not None:
        count = min(count, limit)
    return [ids[i * window:(i + 1) * window] for i in range(count)]


# --- the reference (the source's side) ----------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Per window and position: the true next token's negative log-likelihood under the source,
    the source's top-K token ids and log-probabilities. Arrays of shape (windows, window-1[, K])."""

    nll: Any
    top_ids: Any
    top_logp: Any
    origin: str  # "torch fp32" or "onnxruntime-genai"
    base_perplexity: float | None = None  # a LoRA adapter's base alone, over the same windows
    windows_digest: str = ""  # which token windows it was made for

    @property
    def windows(self) -> int:
        return int(self.nll.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.nll.size)


def _onnx_windows(folder: Path, windows: list[list[int]],
                  cancel: threading.Event | None) -> Iterator[Any]:
    """The converted folder's logits for each window (onnxruntime-genai, every position at once)."""
    import numpy as np
    import onnxruntime_genai as og  # heavy: only when a converted folder is measured

    try:
        config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]
        name = config["decoder"]["outputs"]["logits"]
        with all_logits(folder) as every_position:  # a deployed copy's graph cut to the last one
            model = og.Model(str(every_position))
    except Exception as exc:
        raise QualityError(_("The converted folder {folder} cannot be loaded ({error}).").format(
                               folder=folder, error=exc).splitlines()[0],
                           _("Convert the model again.")) from None
    try:
        for window in windows:
            if cancel is not None and cancel.is_set():
                raise QualityError(_("The measurement was cancelled."))
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=len(window), do_sample=False)
            generator = og.Generator(model, params)
            generator.append_tokens(window)
            logits = np.asarray(generator.get_output(name))
            del generator
            if math.prod(logits.shape[:-1]) != len(window):
                raise QualityError(_("The runtime gave the logits of {count} positions, not {window}.").format(
                                       count=math.prod(logits.shape[:-1]), window=len(window)))
            yield logits
    finally:
        del model


def digest_of(windows: list[list[int]]) -> str:
    return hashlib.sha256(json.dumps(windows).encode()).hexdigest()


def _cache_path(folder: Path, windows: list[list[int]], top_k: int) -> Path:
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    digest = digest_of(windows)
    key = json.dumps([CACHE_VERSION, platform.node(), platform.machine(), str(folder.resolve()), files,
                      digest, top_k], sort_keys=True)
    return paths.cache_dir() / "eval-refs" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def reference(folder: str | Path, windows: list[list[int]], top_k: int = TOP_K,
              cancel: threading.Event | None = None) -> Reference:
    """The source's side, from the cache when this machine computed it before for these windows."""
    import numpy as np

    folder = Path(folder)
    onnx = (folder / "genai_config.json").is_file()
    cached = _cache_path(folder, windows, top_k)
    origin = "onnxruntime-genai" if onnx else "torch fp32"
    try:
        return _load(cached, origin, digest_of(windows))
    except (OSError, ValueError, KeyError):
        pass
    paths.ensure(cached.parent)
    if onnx:
        parts = [stats_from_logits(logits, window, top_k)
                 for logits, window in zip(_onnx_windows(folder, windows, cancel), windows, strict=True)]
        nll, top_ids, top_logp = (np.stack([p[i] for p in parts]) for i in range(3))
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")  # two processes may write it
        np.savez(tmp, nll=nll, top_ids=top_ids, top_logp=top_logp)
        tmp.replace(cached)
    else:

        source_model.run({"folder": str(folder), "eval_windows": windows, "top_k": top_k,
                          "eval_out": str(cached)}, cancel=cancel, cache=False)
    return _load(cached, origin, digest_of(windows))


def _load(cached: Path, origin: str, digest: str) -> Reference:
    import numpy as np

    with np.load(cached) as data:
        base = float(data["base_perplexity"]) if "base_perplexity" in data else math.nan
        return Reference(data["nll"], data["top_ids"], data["top_logp"], origin,
                         None if math.isnan(base) else base, digest)


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """A converted model against its source on one text, measured on one CPU."""

    ratio: Interval  # perplexity ratio, converted / source, with its 95 % interval
    source_perplexity: float
    perplexity: float
    kl_mean: float
    kl_p99: float
    top1: float  # share of positions where both put the same token first
    tokens: int
    windows: int
    cpu: str
    reference: str
    base_perplexity: float | None = None  # a LoRA adapter's base alone: what fine-tuning changed

    def to_dict(self) -> dict[str, object]:
        return {"perplexity_ratio": round(self.ratio.value, 4), "ratio_low": round(self.ratio.low, 4),
                "ratio_high": round(self.ratio.high, 4), "source_perplexity": round(self.source_perplexity, 3),
                "perplexity": round(self.perplexity, 3), "kl_mean": round(self.kl_mean, 4),
                "kl_p99": round(self.kl_p99, 4), "top1_agreement": round(self.top1, 4),
                "tokens": self.tokens, "windows": self.windows, "cpu": self.cpu, "reference": self.reference}


def evaluate(converted: str | Path, ref: Reference, windows: list[list[int]],
             cancel: threading.Event | None = None) -> Evaluation:
    """The converted folder's distributions against the reference's, window by window."""
    import numpy as np


    if ref.windows != len(windows) or (ref.windows_digest and ref.windows_digest != digest_of(windows)):
        raise QualityError(_("The reference was made for other windows of text."))
    source_w, converted_w, kls, same = [], [], [], 0
    for index, logits in enumerate(_onnx_windows(Path(converted), windows, cancel)):
        window = windows[index]
        if logits.shape[-1] <= int(ref.top_ids[index].max()):
            raise QualityError(_("The two models have different vocabularies ({size} tokens here)."
                                 ).format(size=logits.shape[-1]),
                               _("Compare a converted model with the folder it was converted from."))
        nll, logp = log_softmax(logits, window)
        ids = ref.top_ids[index]
        logq_top = np.take_along_axis(logp, ids.astype(np.int64), axis=1)
        kls.append(kl_from_top(ref.top_logp[index], logq_top))
        same += int((logp.argmax(axis=1) == ids[:, 0]).sum())
        source_w.append(float(ref.nll[index].mean()))
        converted_w.append(float(nll.mean()))
    kl = np.concatenate(kls)
    source_ppl, converted_ppl = math.exp(statistics.fmean(source_w)), math.exp(statistics.fmean(converted_w))
    return Evaluation(paired_ratio(source_w, converted_w), source_ppl, converted_ppl, float(kl.mean()),
                      float(np.percentile(kl, 99)), same / kl.size, int(kl.size), len(windows), cpu_name(),
                      ref.origin, ref.base_perplexity)


def check_pair(source: str | Path, converted: str | Path, text: str | None = None) -> list[list[int]]:
    """Everything that can be wrong before a minute of measuring: the two models' tokenizers and
    the text's length. Returns the text's windows; raises QualityError with one sentence."""
    text = evaluation_text() if text is None else text
    sample = text[:4000]
    if tokenize(converted, sample) != tokenize(source, sample):
        raise QualityError(_("The two folders split text into different tokens: they do not share a "
                             "vocabulary."),
                           _("Compare a converted model with the folder it was converted from."))
    return windows_of(tokenize(source, text), WINDOW)


def measure(source: str | Path, converted: str | Path, text: str | None = None,
            limit: int | None = None, cancel: threading.Event | None = None) -> Evaluation:
    """The whole measurement: the text cut into windows by the source's tokenizer, the source's side
    (cached), the converted model's. ``limit``: only the first windows (a quick look)."""
    windows = check_pair(source, converted, text)
    windows = windows[:limit] if limit is not None else windows
    return evaluate(converted, reference(source, windows, cancel=cancel), windows, cancel)
