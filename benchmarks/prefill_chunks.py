"""A long prompt in one piece against the same prompt in pieces (wizard_steps.runtime.engine's
PREFILL_CHUNK), side by side in one run: each variant in a fresh process (a peak is a process's
own), the order alternating, the prompt's time and the process's peak memory, and whether the
greedy tokens after it are the same.

    .venv/bin/python benchmarks/prefill_chunks.py FOLDER [--lengths 512,1024] [--chunks 0,128] [--rounds 3]

A chunk of 0 is the whole prompt in one piece.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep. " * 400


def child(folder: str, length: int, chunk: int) -> dict[str, object]:
    import onnxruntime_genai as og

    model = og.Model(folder)
    ids = list(og.Tokenizer(model).encode(TEXT))[:length]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=length + 16, do_sample=False)
    generator = og.Generator(model, params)
    step = chunk or length
    started = time.perf_counter()
    for start in range(0, length, step):
        generator.append_tokens(ids[start:start + step])
    prompt_s = time.perf_counter() - started
    tokens = []
    for _ in range(16):
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return {"prompt_s": prompt_s, "peak": peak, "tokens": tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--lengths", default="512,1024")
    parser.add_argument("--chunks", default="0,128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), int(args.child[2]))))
        return 0
    chunks = [int(c) for c in args.chunks.split(",")]
    print(f"{Path(args.folder).name}: median of {args.rounds} fresh processes each, the order alternating")
    print(f"{'prompt':>7} {'chunk':>6} {'prompt ms':>10} {'peak MB':>8} {'x time':>7} {'x peak':>7}  same tokens")
    for length in (int(n) for n in args.lengths.split(",")):
        runs: dict[int, list[dict]] = {chunk: [] for chunk in chunks}
        for round_ in range(args.rounds):
            for chunk in (chunks if round_ % 2 == 0 else chunks[::-1]):
                done = subprocess.run([sys.executable, __file__, "--child", args.folder, str(length), str(chunk)],
                                      capture_output=True, text=True, check=True)
                runs[chunk].append(json.loads(done.stdout.strip().splitlines()[-1]))
        base = chunks[0]
        base_ms = statistics.median(r["prompt_s"] for r in runs[base]) * 1000
        base_peak = statistics.median(r["peak"] for r in runs[base]) / 1e6
        for chunk in chunks:
            ms = statistics.median(r["prompt_s"] for r in runs[chunk]) * 1000
            peak = statistics.median(r["peak"] for r in runs[chunk]) / 1e6
            same = all(r["tokens"] == runs[base][0]["tokens"] for r in runs[chunk])
            print(f"{length:>7} {chunk or 'whole':>6} {ms:>10.0f} {peak:>8.0f} {ms / base_ms:>7.2f} "
                  f"{peak / base_peak:>7.2f}  {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
