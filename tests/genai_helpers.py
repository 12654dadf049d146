"""A bare onnxruntime-genai generation loop for tests (and benchmarks) to check converted folders
with, and a way to run a step's event generator to its end for its return value."""

from __future__ import annotations

from pathlib import Path

CHATML_QUESTION = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)


def generate(folder: Path, prompt: str = CHATML_QUESTION, new_tokens: int = 24) -> tuple[int, str]:
    """Greedy generation straight through onnxruntime-genai; returns (token count, text)."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + new_tokens, min_length=len(ids) + new_tokens,
                              do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    tokens: list[int] = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return len(tokens), tokenizer.decode(tokens)


def prompt_logits(folder: Path, ids: list[int]):
    """The logits onnxruntime-genai gives for a prompt of ``ids`` fed in one piece: every position,
    or the last only (a graph cut by ``last_logits``), as a numpy array."""
    import numpy as np
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    return np.asarray(generator.get_output("logits"))


def drain(events):
    """Run a generator of events to its end; its return value."""
    while True:
        try:
            next(events)
        except StopIteration as done:
            return done.value
