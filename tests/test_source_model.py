"""The source model's batched greedy replies (torch, fp32): each row computes what it would alone,
the prompt's pass keeps only the last position's logits, and a reply that has ended leaves the
batch so the others' steps no longer pay for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wizard_steps.measurement import source_model

pytestmark = pytest.mark.slow


def test_an_ended_reply_leaves_the_batch_and_every_reply_is_what_it_is_alone(demo_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_model)
    model = AutoModelForCausalLM.from_pretrained(demo_model, dtype=torch.float32).eval()
    eos = {int(model.generation_config.eos_token_id)}
    chat = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
    prompts = [tokenizer(chat.format(q)).input_ids
               for q in ("What is the capital of France? One word.", "Tell me a long story about a dragon.",
                         "Say yes.")]
    shapes: list[tuple[int, int]] = []  # (rows, positions) of each forward pass

    def recorded(module, args, kwargs, out) -> None:
        shapes.append((int(kwargs["input_ids"].shape[0]), int(out.logits.shape[1])))

    model.register_forward_hook(recorded, with_kwargs=True)
    with torch.inference_mode():
        together = source_model._generate_batch(torch, model, prompts, 12, eos, 1.0)
        steps = len(shapes)
        alone = [source_model._generate_batch(torch, model, [p], 12, eos, 1.0)[0] for p in prompts]
    assert together == alone
    lengths = sorted(len(t) for t in together)
    assert lengths[0] < lengths[-1] == 12, lengths  # one reply ended early, one ran to the limit
    rows = [r for r, _ in shapes[:steps]]
    assert rows == sorted(rows, reverse=True) and rows[0] == 3  # the ended rows left, one by one
    assert rows[-1] == sum(len(t) == 12 for t in together)  # the last steps: only the replies at the limit
    assert rows.count(3) == lengths[0] + 1  # the prompt's pass, then one step per token of the shortest
    assert all(positions == 1 for _, positions in shapes)  # the prompt's pass kept its last logits only


def test_replies_are_kept_one_by_one_so_asking_again_computes_only_the_new_prompts(
        tiny_llama: Path, tmp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[list[str]] = []  # the prompts each source run was asked
    real = source_model.run_here

    def counting(request: dict) -> dict:
        computed.append(list(request.get("reply_prompts", [])))
        return real(request)

    monkeypatch.setattr(source_model, "run_here", counting)
    short = source_model.ReplySettings(max_new_tokens=6)

    def ask(prompts: list[str], settings: source_model.ReplySettings = short) -> tuple[str, ...]:
        return source_model.source_replies(tiny_llama, prompts, settings, isolate=False)

    first = ask(["one two", "three four"])
    assert computed == [["one two", "three four"]]
    assert ask(["three four"]) == first[1:] and len(computed) == 1  # asked before: no run at all
    again = ask(["three four", "five six", "one two"])
    assert computed[-1] == ["five six"] and (again[0], again[2]) == (first[1], first[0])
    assert again[1] == real({"folder": str(tiny_llama), "reply_prompts": ["five six"],
                             "reply_settings": {"max_new_tokens": 6, "repetition_penalty": 1.0,
                                                "stop": []}})["replies"][0]
    ask(["one two"], source_model.ReplySettings(max_new_tokens=3))
    assert computed[-1] == ["one two"]  # other settings are another question


def test_the_sources_window_figures_in_torch_are_the_shared_arithmetics() -> None:
    import numpy as np
    import torch

    from wizard_steps.measurement.divergence import stats_from_logits

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn((40, 5000), generator=generator) * 4  # a window of 40: 39 positions are judged
    window = torch.randint(0, 5000, (40,), generator=generator).tolist()
    fast = source_model.window_stats(torch, logits, window, 16)
    shared = stats_from_logits(logits.numpy(), window, 16)
    assert [part.shape for part in fast] == [part.shape for part in shared] == [(39,), (39, 16), (39, 16)]
    assert [part.dtype for part in fast] == [part.dtype for part in shared]
    np.testing.assert_allclose(fast[0], shared[0], rtol=1e-5)
    assert (fast[1] == shared[1]).all()  # the same top tokens, highest first
    np.testing.assert_allclose(fast[2], shared[2], rtol=1e-5, atol=1e-5)
