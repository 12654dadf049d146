"""How close generation is to this machine's memory limit: each generated token reads every weight
that a MatMul uses (an embedding Gather reads one row) plus the KV cache so far, so read bandwidth
/ bytes per token bounds tokens/s. Prints the bandwidth (numpy sums over 2 threads, at the
model's own working-set size, which a large L3 may hold, and at 1 GiB, which no cache holds), the
bytes per token, and the tuned generation speed as a fraction of each bound.

    .venv/bin/python benchmarks/bandwidth_bound.py [FOLDER] [--lengths 16,128,512,1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.measurement.machine import bytes_per_token, cpu_flags, read_bandwidth


def cpu_line() -> str:
    """The CPU model name and the flags that decide which kernels run."""
    name, flags = cpu_flags()
    return f"{name}; flags: " + (" ".join(flags) if flags is not None else "not known")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--lengths", default="16,128,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    from benchmarks.engine_overhead import make_demo_int4
    from wizard_steps.measurement import tune
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.prompt.templates import get_preset
    from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions

    threads = tune.usable_cpus()
    folder = Path(args.folder) if args.folder else make_demo_int4()
    weights, total, kv = bytes_per_token(folder)
    near = read_bandwidth(max(weights, 1 << 20), threads)
    far = read_bandwidth(1 << 30, threads)
    print(cpu_line())
    print(f"{folder}: weights {total / 1e6:.1f} MB, read per token {weights / 1e6:.1f} MB "
          f"(+ {kv / 1e3:.1f} kB of KV cache per cached token)")
    print(f"read bandwidth, {threads} threads: {near / 1e9:.1f} GB/s over {weights / 1e6:.0f} MB "
          f"(the model's size), {far / 1e9:.1f} GB/s over 1 GiB")
    backend = GenaiBackend(folder, get_preset("chatml").template,
                           overlay=tune.Candidate(threads).overlay())
    options = ReplyOptions(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    for length in (int(n) for n in args.lengths.split(",")):
        prompt = prompt_of_length(backend, length)
        speeds = []
        for run in range(args.runs + 1):
            done = next(e for e in backend.stream(prompt, options) if isinstance(e, ReplyDone))
            if run:
                speeds.append(done.stats.tokens_per_s)
        speed = statistics.median(speeds)
        per_token = weights + kv * (length + args.tokens // 2)
        bound_near, bound_far = near / per_token, far / per_token
        print(f"{length:5d} tokens: generation {speed:6.1f} tok/s ({threads} threads); bound "
              f"{bound_near:6.0f} tok/s at model-size bandwidth ({speed / bound_near:.0%}), "
              f"{bound_far:6.0f} at 1 GiB bandwidth ({speed / bound_far:.0%})", flush=True)


if __name__ == "__main__":
    main()
