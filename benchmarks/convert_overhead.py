"""What slmops adds to a conversion: the same INT4 conversion of the demo model through
``wizard_steps.conversion.convert`` (auto-opt method, with its load-and-generate validation) and through plain
``olive auto-opt`` from a shell, alternating, in one run. Prints each time and the median ratio.

    .venv/bin/python benchmarks/convert_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Precision
from wizard_steps.core.events import Failed, Finished
from wizard_steps.model import model_source


def through_slmops(model: Path, out: Path) -> float:
    plan = convert.make_plan(model, out, Precision.INT4, method="auto-opt")
    started = time.perf_counter()
    final = None
    for event in convert.convert(plan):
        if isinstance(event, (Finished, Failed)):
            final = event
    elapsed = time.perf_counter() - started
    if not isinstance(final, Finished):
        raise SystemExit(f"slmops conversion failed: {final}")
    return elapsed


def through_olive(model: Path, out: Path, cache: Path) -> float:
    olive = Path(sys.executable).with_name("olive")
    command = f'"{olive}" auto-opt -m "{model}" --precision int4 --use_model_builder ' \
              f'--device cpu --provider CPUExecutionProvider -o "{out}" --log_level 1'
    env = dict(os.environ, **convert.OLIVE_ENV)
    started = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=cache, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not (out / "genai_config.json").is_file():
        raise SystemExit("plain olive auto-opt failed")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmops-bench-") as tmp:
        os.environ["SLMOPS_HOME"] = str(Path(tmp) / "home")
        model = model_source.ensure_demo()
        ours, theirs = [], []
        for round_ in range(args.rounds):
            for name in ("slmops", "olive") if round_ % 2 == 0 else ("olive", "slmops"):
                out = Path(tmp) / f"{name}-{round_}"
                if name == "slmops":
                    ours.append(through_slmops(model, out))
                else:
                    cache = Path(tmp) / f"olive-cwd-{round_}"
                    cache.mkdir()
                    theirs.append(through_olive(model, out, cache))
                    shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
                print(f"round {round_ + 1} {name:6s} {(ours if name == 'slmops' else theirs)[-1]:6.1f} s",
                      flush=True)
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"median slmops {statistics.median(ours):.1f} s, plain olive auto-opt "
          f"{statistics.median(theirs):.1f} s")
    print(f"ratio slmops / olive = {ratio:.3f} (target <= 1.10; slmops also loads the result "
          f"and generates 8 tokens)")


if __name__ == "__main__":
    main()
