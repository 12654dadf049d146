"""What tuning gives: the same converted folder with onnxruntime's default threads and with the
tuned setting, alternating, through the bare onnxruntime-genai loop and through Foundry Local.
Prints generation and prompt tokens/s and the tuned/default ratio per prompt length.

    .venv/bin/python benchmarks/tuning_gain.py [FOLDER] [--lengths 16,128,512,1024] [--runs 3]

--road instead compares what the default road's short tuning keeps (convert's last stage) with
what the full search of `slmops tune` keeps, on copies of the same folder (goal: within 5 %).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_overhead import make_demo_int4
from tests.genai_helpers import drain
from wizard_steps.measurement import tune
from wizard_steps.measurement.benchmark import prompt_of_length
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions


def speed(backend, conversation, tokens: int) -> tuple[float, float]:
    options = ReplyOptions(max_new_tokens=tokens, min_new_tokens=tokens)
    done = next(e for e in backend.stream(conversation, options) if isinstance(e, ReplyDone))
    return done.stats.tokens_per_s, done.stats.prompt_tokens_per_s


def road_against_search(untuned: Path, work: Path, template, lengths, runs: int, tokens: int) -> None:
    """The default road's choice and the full search's, each on its own copy, alternating."""
    from wizard_steps.measurement.tune_quick import quick

    road, search = work / "road", work / "search"
    for folder in (road, search):
        shutil.copytree(untuned, folder)
    print(f"road: {drain(quick(road))}")
    result = [e for e in tune.measure(search, template) if isinstance(e, tune.TuneResult)][-1]
    print(f"search: {result.reason}")
    backends = {"road": GenaiBackend(road, template), "search": GenaiBackend(search, template)}
    for length in lengths:
        prompt = prompt_of_length(backends["road"], length)
        results: dict[str, list[float]] = {"road": [], "search": []}
        for run in range(runs + 1):
            for name in (("road", "search") if run % 2 == 0 else ("search", "road")):
                value = speed(backends[name], prompt, tokens)[0]
                if run:
                    results[name].append(value)
        gen = {k: statistics.median(v) for k, v in results.items()}
        print(f"{length:5d} tokens: generation road {gen['road']:6.1f} / search {gen['search']:6.1f} tok/s "
              f"(x{gen['road'] / gen['search']:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--lengths", default="16,128,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=tune.usable_cpus(),
                        help="the tuned setting to compare (default: all usable CPUs)")
    parser.add_argument("--no-foundry", action="store_true")
    parser.add_argument("--road", action="store_true", help="the short tuning against the full search")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    template = get_preset("chatml").template
    work = Path(tempfile.mkdtemp(prefix="slmops-tuning-"))
    source = Path(args.folder) if args.folder else make_demo_int4()
    default_dir, tuned_dir = work / "default", work / "tuned"
    shutil.copytree(source, default_dir)
    tune.undo(default_dir)
    tune.apply(default_dir, tune.Candidate(None))
    shutil.copytree(default_dir, tuned_dir)
    tune.apply(tuned_dir, tune.Candidate(args.threads))
    if args.road:
        road_against_search(default_dir, work, template, lengths, args.runs, args.tokens)
        shutil.rmtree(work, ignore_errors=True)
        return
    routes = {"genai": {"default": GenaiBackend(default_dir, template),
                        "tuned": GenaiBackend(tuned_dir, template)}}
    if not args.no_foundry:
        from wizard_steps.deployment.engine_foundry import open_deployed_for_benchmark

        routes["foundry"] = {}
        for name, folder in (("default", default_dir), ("tuned", tuned_dir)):
            routes["foundry"][name] = open_deployed_for_benchmark(folder, template, f"bench-{name}")
    print(f"tuned = intra_op_num_threads {args.threads}; {args.runs} runs, {args.tokens} new tokens")
    for route, backends in routes.items():
        for length in lengths:
            results: dict[str, list[tuple[float, float]]] = {"default": [], "tuned": []}
            prompt = prompt_of_length(routes["genai"]["default"], length)
            for run in range(args.runs + 1):
                for name in (("default", "tuned") if run % 2 == 0 else ("tuned", "default")):
                    value = speed(backends[name], prompt, args.tokens)
                    if run:
                        results[name].append(value)
            gen = {k: statistics.median(v[0] for v in vals) for k, vals in results.items()}
            pre = {k: statistics.median(v[1] for v in vals) for k, vals in results.items()}
            print(f"{route:7s} {length:5d} tokens: generation {gen['default']:6.1f} -> "
                  f"{gen['tuned']:6.1f} tok/s (x{gen['tuned'] / gen['default']:.2f}), prompt "
                  f"{pre['default']:6.0f} -> {pre['tuned']:6.0f} tok/s (x{pre['tuned'] / pre['default']:.2f})",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
