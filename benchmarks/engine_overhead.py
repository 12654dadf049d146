"""What ``wizard_steps.runtime.engine`` costs over a bare onnxruntime-genai loop: generation tokens/s of
the same model, same prompt, alternating runs in one process. Prints the median ratio (target
at least 0.97) and, with --foundry, the Foundry Local backend's ratio to the bare loop.

    .venv/bin/python benchmarks/engine_overhead.py [FOLDER] [--runs 7] [--tokens 128] [--foundry]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.prompt.templates import Conversation, get_preset, render
from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions

QUESTION = "Tell me a long story about a lighthouse keeper and the sea."


def bare_loop(og, model, tokenizer, prompt: str, tokens: int) -> float:
    """Decode tokens/s after the first token, the way the engine measures it."""
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + tokens, min_length=len(ids) + tokens,
                              do_sample=False, repetition_penalty=1.1)
    generator = og.Generator(model, params)
    stream = tokenizer.create_stream()
    generator.append_tokens(ids)
    first = None
    count = 0
    while not generator.is_done():
        generator.generate_next_token()
        stream.decode(generator.get_next_tokens()[0])
        count += 1
        if first is None:
            first = time.perf_counter()
    return (count - 1) / (time.perf_counter() - first)


def through(backend, conversation: Conversation, tokens: int) -> float:
    options = ReplyOptions(max_new_tokens=tokens, min_new_tokens=tokens)
    for event in backend.stream(conversation, options):
        if isinstance(event, ReplyDone):
            return event.stats.tokens_per_s
    raise RuntimeError("no reply")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="converted folder (default: demo INT4, made now)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--foundry", action="store_true", help="also measure Foundry Local")
    args = parser.parse_args()
    template = get_preset("chatml").template
    conversation = Conversation(None, (("user", QUESTION),))
    folder = Path(args.folder) if args.folder else make_demo_int4()
    import onnxruntime_genai as og

    backend = GenaiBackend(folder, template)
    prompt = render(template, conversation)
    engines = {"bare": lambda: bare_loop(og, backend.model, backend.tokenizer, prompt, args.tokens),
               "engine": lambda: through(backend, conversation, args.tokens)}
    if args.foundry:
        from wizard_steps.deployment.engine_foundry import open_deployed_for_benchmark

        foundry = open_deployed_for_benchmark(folder, template)
        engines["foundry"] = lambda: through(foundry, conversation, args.tokens)
    results: dict[str, list[float]] = {name: [] for name in engines}
    for run in range(args.runs + 1):  # round 0 warms up and is not kept
        order = list(engines) if run % 2 == 0 else list(reversed(engines))
        for name in order:
            value = engines[name]()
            if run:
                results[name].append(value)
    for name, values in results.items():
        print(f"{name:8s} median {statistics.median(values):7.1f} tok/s  "
              f"({', '.join(f'{v:.0f}' for v in values)})")
    bare = statistics.median(results["bare"])
    print(f"ratio engine / bare loop = {statistics.median(results['engine']) / bare:.3f} "
          "(target >= 0.97)")
    if "foundry" in results:
        print(f"ratio foundry / bare loop = {statistics.median(results['foundry']) / bare:.3f}")


def make_demo_int4() -> Path:
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Precision
    from wizard_steps.core.events import Finished
    from wizard_steps.model import model_source

    os.environ.setdefault("SLMOPS_HOME", tempfile.mkdtemp(prefix="slmops-bench-"))
    out = Path(os.environ["SLMOPS_HOME"]) / "bench-int4"
    if (out / "genai_config.json").is_file():
        return out
    plan = convert.make_plan(model_source.ensure_demo(), out, Precision.INT4)
    for event in convert.convert(plan):
        if isinstance(event, Finished):
            return event.path
    raise SystemExit("could not convert the demo model")


if __name__ == "__main__":
    main()
