"""What measuring here costs: the precision step's measurement on arrival (``compare()`` of INT4
and INT8 with its defaults) on the demo model, in a fresh home, timed phase by phase from its own
events. A second pass in the same home shows what a folder converted earlier saves.

The figures feed ``compare.DEMO_SECONDS`` (the precision step's estimate and its time budget).

    .venv/bin/python benchmarks/measure_time.py [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed_compare(model: Path, names: str) -> dict[str, float]:
    """Seconds per phase: convert-<precision> (zero when reused) and measure-<candidate> (the first
    one also pays for the source's side)."""
    from wizard_steps.core.events import Failed, Finished
    from wizard_steps.verdict import compare

    phases: dict[str, float] = {}
    chosen = compare.parse_candidates(names)
    mark = time.perf_counter()
    started = mark
    for event in compare.compare(model, chosen):
        now = time.perf_counter()
        if isinstance(event, compare.CandidateEvent) and isinstance(event.event, Finished):
            phases[f"convert-{event.candidate}"] = now - mark
            mark = now
        elif isinstance(event, compare.Row):
            phases[f"measure-{event.candidate}"] = now - mark
            mark = now
            if event.measurement is None:
                raise SystemExit(f"{event.candidate} was not measured: {event.error}")
        elif isinstance(event, Failed):
            raise SystemExit(event.reason)
    phases["total"] = time.perf_counter() - started
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="an HF folder (default: the demo, prepared in the home)")
    parser.add_argument("--candidates", default="int4,int8")
    args = parser.parse_args()
    os.environ["SLMOPS_HOME"] = tempfile.mkdtemp(prefix="slmops-measure-time-")
    from wizard_steps.measurement.machine import cpu_name
    from wizard_steps.model import model_source
    from wizard_steps.verdict import compare

    model = args.model
    if model is None:
        for _event in model_source.prepare_demo():
            pass
        from wizard_steps.core import paths
        model = paths.demo_model_dir()
    print(f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores; {model}")
    first = timed_compare(model, args.candidates)
    saved = compare.compare_root(model_source.inspect_model(model)) / compare.RESULT_NAME
    saved.unlink()
    second = timed_compare(model, args.candidates)  # the folders and the source's side reused
    print(f"{'phase':<22}{'fresh home':>12}{'second pass':>14}")
    for key in first:
        print(f"{key:<22}{first[key]:>11.1f}s{second.get(key, 0.0):>13.1f}s")


if __name__ == "__main__":
    main()
