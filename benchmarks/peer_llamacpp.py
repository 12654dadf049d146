"""slmops' tuned INT4 (onnxruntime-genai) against llama.cpp on the demo's own GGUF file: same
prompt lengths, same number of new tokens, greedy, same thread count, alternating in one run.
Prints prompt and generation tokens/s and the ratio per length.

llama.cpp comes from the optional `peer` extra (llama-cpp-python builds from source, about 4
minutes): pip install -e ".[peer]". Where its native build dies with SIGILL (a VM that lists AMX
but does not allow it), build it for the CPU's other features instead, e.g. on AVX-512:
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON".
The run prints the kernels llama.cpp was built with, so a comparison with a weaker build shows.

    .venv/bin/python benchmarks/peer_llamacpp.py [FOLDER] [--lengths 16,128,512,1024] [--runs 3]

FOLDER: a converted folder to compare (default: the demo converted with slmops' defaults).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def llama_speed(llm, tokens: list[int], new_tokens: int) -> tuple[float, float]:
    """(prompt tok/s, generation tok/s) for one greedy run."""
    llm.reset()
    started = time.perf_counter()
    first = None
    count = 0
    for _ in llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        count += 1
        if first is None:
            first = time.perf_counter()
        if count >= new_tokens:
            break
    end = time.perf_counter()
    return len(tokens) / (first - started), (count - 1) / (end - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--lengths", default="16,128,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    if importlib.util.find_spec("llama_cpp") is None:
        print("llama_cpp is not installed, so there is nothing to compare against.")
        print('Install the optional peer extra (builds llama.cpp, ~4 min): pip install -e ".[peer]"')
        return 0
    from llama_cpp import Llama, llama_print_system_info

    from benchmarks.bandwidth_bound import cpu_line
    from benchmarks.engine_overhead import make_demo_int4
    from wizard_steps.measurement import tune
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.model import model_source
    from wizard_steps.prompt.templates import get_preset
    from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions

    threads = tune.usable_cpus()
    folder = Path(args.folder) if args.folder else make_demo_int4()
    tune.apply(folder, tune.Candidate(threads))
    ours = GenaiBackend(folder, get_preset("chatml").template)
    llm = Llama(str(model_source.demo_gguf_path()), n_threads=threads, n_ctx=2048, verbose=False)
    options = ReplyOptions(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    print(cpu_line())
    print("llama.cpp " + llama_print_system_info().decode().strip())
    print(f"{folder}; GGUF {model_source.demo_gguf_path().name}")
    print(f"{threads} threads, {args.tokens} new tokens, greedy, {args.runs} runs per length")
    for length in (int(n) for n in args.lengths.split(",")):
        conversation = prompt_of_length(ours, length)
        tokens = ours.encode(conversation.turns[0][1])[:length]
        results: dict[str, list[tuple[float, float]]] = {"slmops": [], "llama.cpp": []}
        for run in range(args.runs + 1):
            for name in (("slmops", "llama.cpp") if run % 2 == 0 else ("llama.cpp", "slmops")):
                if name == "slmops":
                    done = next(e for e in ours.stream(conversation, options)
                                if isinstance(e, ReplyDone))
                    value = (done.stats.prompt_tokens_per_s, done.stats.tokens_per_s)
                else:
                    value = llama_speed(llm, tokens, args.tokens)
                if run:
                    results[name].append(value)
        med = {k: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
               for k, vals in results.items()}
        print(f"{length:5d} tokens: prompt slmops {med['slmops'][0]:6.0f} / llama.cpp "
              f"{med['llama.cpp'][0]:6.0f} tok/s (x{med['slmops'][0] / med['llama.cpp'][0]:.2f}); "
              f"generation {med['slmops'][1]:6.1f} / {med['llama.cpp'][1]:6.1f} tok/s "
              f"(x{med['slmops'][1] / med['llama.cpp'][1]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
