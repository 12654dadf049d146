"""The arithmetic of a divergence, as llama.cpp's ``llama-perplexity --kl-divergence`` does it: a
window's log-softmax and the next token's NLL, the top-k a reference keeps, KL divergence over
those, and the paired perplexity ratio with its 95 % interval. Plain numbers in, plain numbers
out: the source's torch run and the converted model's ONNX run both use it."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

TOP_K = 64
Z95 = 1.959964


def log_softmax(logits: Any, window: list[int]) -> tuple[Any, Any]:
    """From one window's logits (positions x vocabulary): the true next token's negative
    log-likelihood at each position, and the whole log-softmax."""
    import numpy as np

    rows = np.asarray(logits, dtype=np.float32).reshape(-1, np.asarray(logits).shape[-1])[: len(window) - 1]
    top = rows.max(axis=1, keepdims=True)
    logp = rows - (np.log(np.exp(rows - top).sum(axis=1, keepdims=True)) + top)
    targets = np.asarray(window[1:])
    return -logp[np.arange(len(targets)), targets].astype(np.float64), logp


def stats_from_logits(logits: Any, window: list[int], top_k: int = TOP_K) -> tuple[Any, Any, Any]:
    """The reference's side of one window: the next token's NLL, and the top-k token ids and
    log-probabilities at each position, highest first."""
    import numpy as np

    nll, logp = log_softmax(logits, window)
    top_ids = np.argpartition(-logp, top_k, axis=1)[:, :top_k]
    top_vals = np.take_along_axis(logp, top_ids, axis=1)
    order = np.argsort(-top_vals, axis=1)
    return (nll, np.take_along_axis(top_ids, order, axis=1).astype(np.int32),
            np.take_along_axis(top_vals, order, axis=1).astype(np.float32))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def paired_ratio(source_nll: list[float], converted_nll: list[float]) -> Interval:
    """The perplexity ratio exp(mean d) of per-window mean NLL differences d, with the 95 % interval
    of the mean (normal approximation, as llama-perplexity reports its ±)."""
    diffs = [c - s for s, c in zip(source_nll, converted_nll, strict=True)]
    mean = statistics.fmean(diffs)
    spread = Z95 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    return Interval(math.exp(mean), math.exp(mean - spread), math.exp(mean + spread))


def kl_from_top(top_logp_source: Any, logq_at_top: Any) -> Any:
    """KL(source || converted) per position over the source's top-k tokens plus one bin for the rest
    (a lower bound of the full sum by the log-sum inequality; close when the top-k hold most mass)."""
    import numpy as np

    p = np.exp(top_logp_source.astype(np.float64))
    logq = logq_at_top.astype(np.float64)
    head = (p * (top_logp_source - logq)).sum(axis=1)
    p_rest = np.clip(1.0 - p.sum(axis=1), 1e-12, 1.0)
    q_rest = np.clip(1.0 - np.exp(logq).sum(axis=1), 1e-12, 1.0)
    return np.maximum(head + p_rest * (np.log(p_rest) - np.log(q_rest)), 0.0)
