"""Olive user script: a calibration dataset read from a local text file, for passes such as Gptq
that would otherwise download wikitext from a hub (unreachable offline, and `datasets` is not
installed). Olive imports this file by path (``user_script`` in the data config) and calls
``slmops_text_dataset`` with the params saved in olive_config.json, so ``olive run --config``
repeats the calibration exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from olive.data.registry import Registry


@Registry.register_dataset()
def slmops_text_dataset(model_path: str, text_path: str, seq_len: int = 256, stride: int = 128,
                        max_samples: int = 64) -> list[tuple[dict[str, torch.Tensor], int]]:
    """Overlapping windows of ``seq_len`` tokens over the text, as (inputs, label) pairs."""
    from transformers import AutoTokenizer

    path = Path(text_path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if not text.strip():
        raise ValueError(f"The calibration text {path} is missing or empty.")
    ids = AutoTokenizer.from_pretrained(model_path)(text, return_tensors="pt").input_ids[0]
    starts = range(0, max(len(ids) - seq_len, 0) + 1, stride)
    samples = []
    for start in list(starts)[:max_samples]:
        window = ids[start:start + seq_len]
        samples.append(({"input_ids": window, "attention_mask": torch.ones_like(window)}, 0))
    return samples
