"""Spin-waiting or sleeping intra-op threads, with other work on the CPU. The same converted folder
at the usable core count, its idle threads spin-waiting (onnxruntime's default) and sleeping
(``session.intra_op.allow_spinning`` "0"), alternating in one run, with 0, 1, ... N busy
processes beside it (N = usable cores); then, at each load, what the default road's short
tuning (``tune_quick.quick``) writes on a fresh copy of the untuned folder.

    .venv/bin/python benchmarks/spin_load.py [FOLDER] [--loads 0,1,2] [--length 128] [--runs 5]

The busy processes are plain Python loops, the kind of neighbour a shared classroom server or a
laptop running a browser gives the model.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_overhead import make_demo_int4
from benchmarks.tuning_gain import speed
from tests.genai_helpers import drain
from wizard_steps.measurement import tune
from wizard_steps.measurement.benchmark import prompt_of_length
from wizard_steps.measurement.tune_quick import describe, quick
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import GenaiBackend


def busy() -> None:
    while True:
        pass


def road_choice(untuned: Path, work: Path) -> dict:
    copy = work / "road"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(untuned, copy)
    return drain(quick(copy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--loads", default=",".join(str(n) for n in range(tune.usable_cpus() + 1)))
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    template = get_preset("chatml").template
    work = Path(tempfile.mkdtemp(prefix="slmops-spin-"))
    untuned = work / "untuned"
    shutil.copytree(Path(args.folder) if args.folder else make_demo_int4(), untuned)
    tune.undo(untuned)
    cores = tune.usable_cpus()
    settings = {"spinning": tune.Candidate(cores), "sleeping": tune.Candidate(cores, spinning=False)}
    backends = {name: GenaiBackend(untuned, template, overlay=c.overlay()) for name, c in settings.items()}
    prompt = prompt_of_length(backends["spinning"], args.length)
    print(f"{cores} threads, {args.length}-token prompt, {args.tokens} new tokens, {args.runs} runs alternating")
    try:
        for load in (int(n) for n in args.loads.split(",")):
            neighbours = [multiprocessing.Process(target=busy, daemon=True) for _ in range(load)]
            for process in neighbours:
                process.start()
            try:
                results: dict[str, list[float]] = {name: [] for name in settings}
                for run in range(args.runs + 1):
                    for name in (("spinning", "sleeping") if run % 2 == 0 else ("sleeping", "spinning")):
                        value = speed(backends[name], prompt, args.tokens)[0]  # generation tok/s
                        if run:  # the first round warms up
                            results[name].append(value)
                gen = {name: statistics.median(v) for name, v in results.items()}
                chosen = road_choice(untuned, work)
            finally:
                for process in neighbours:
                    process.terminate()
                    process.join()
            print(f"{load} busy process(es): spinning {gen['spinning']:6.1f} tok/s, sleeping "
                  f"{gen['sleeping']:6.1f} tok/s (sleeping x{gen['sleeping'] / gen['spinning']:.2f}); "
                  f"the short tuning: {describe(chosen)}", flush=True)
    finally:
        for backend in backends.values():
            backend.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
