"""How long the steps that must feel instant take on this machine: the prerequisite checks in a
fresh process (imports included; target <= 2 s) and reading the deployed models from a Foundry
cache like `foundry cache ls` (target <= 2 s). Timings belong here, not in the tests, whose
verdicts must not depend on the CPU. Prints medians of --runs runs.

    .venv/bin/python benchmarks/quick_steps.py [--runs 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREREQS = (
    "import json, time\n"
    "started = time.perf_counter()\n"
    "from wizard_steps.road import prereqs\n"
    "checks = prereqs.run_all()\n"
    "print(json.dumps({'seconds': time.perf_counter() - started, 'count': len(checks)}))\n"
)
TARGET_S = 2.0


def prereqs_once() -> tuple[float, int]:
    """Seconds to import the module and run every check in a fresh process, and the check count."""
    done = subprocess.run([sys.executable, "-c", PREREQS], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["count"])


def list_once(cache: Path) -> tuple[float, int]:
    """Seconds to list the cache's deployed models, and how many there are."""
    from wizard_steps.deployment import deploy

    started = time.perf_counter()
    models = deploy.list_deployed(cache)
    return time.perf_counter() - started, len(models)


def report(name: str, seconds: list[float], what: str) -> None:
    median = statistics.median(seconds)
    verdict = "ok" if median <= TARGET_S else "SLOW"
    print(f"{name}: median {median * 1000:.0f} ms over {len(seconds)} runs, {what} "
          f"(target <= {TARGET_S * 1000:.0f} ms: {verdict})")


def main() -> None:
    from wizard_steps.core import paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=None,
                        help="Foundry cache to list (default: slmops's own)")
    args = parser.parse_args()
    cache = args.cache or paths.foundry_cache_dir()
    checks = [prereqs_once() for _ in range(args.runs)]
    report("prerequisite checks", [s for s, _ in checks], f"{checks[-1][1]} checks")
    listed = [list_once(cache) for _ in range(args.runs)]
    report("deployed models listed", [s for s, _ in listed], f"{listed[-1][1]} models in {cache}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
