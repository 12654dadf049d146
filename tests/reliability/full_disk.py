"""Child process of the full-disk test: mounts a 64 MB tmpfs on DISK (in the private mount
namespace its parent started it in), fills it up to FREE_MB megabytes, converts MODEL onto it,
deletes the filler and converts again, and prints what it saw as JSON for the test to judge.

    python -m tests.reliability.full_disk MODEL DISK FREE_MB
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.genai_helpers import generate
from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
from wizard_steps.core import paths
from wizard_steps.core.events import Failed, Finished


def last(events) -> object:
    final = None
    for final in events:  # noqa: B007 - the last one is the result
        pass
    return final


def olive_runs_left() -> list[str]:
    folder = paths.olive_cache_dir()
    return sorted(p.name for p in folder.iterdir() if p.name != "rerun") if folder.exists() else []


def fill(disk: Path, free_mb: int) -> Path:
    """A file taking all of the disk's space but free_mb megabytes (written: tmpfs counts pages)."""
    filler = disk / "filler"
    block = bytes(1024 * 1024)
    with filler.open("wb") as file:
        for _ in range(shutil.disk_usage(disk).free // len(block) - free_mb):
            file.write(block)
    return filler


def main(model: Path, disk: Path, free_mb: int) -> dict[str, object]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    filler = fill(disk, free_mb)
    before = shutil.disk_usage(disk).used
    out = disk / "out"
    plan = convert.make_plan(model, out, Precision.INT4, int4=Int4Settings(algorithm=Int4Algorithm.RTN))
    full = last(convert.convert(plan))
    seen: dict[str, object] = {
        "full": type(full).__name__, "reason": getattr(full, "reason", repr(full)),
        "free_before": shutil.disk_usage(disk).total - before,
        "left_on_disk": sorted(p.name for p in disk.iterdir() if p != filler),
        "grown_bytes": shutil.disk_usage(disk).used - before, "olive_runs_left": olive_runs_left()}
    filler.unlink()  # space freed
    again = last(convert.convert(plan))
    seen["again"] = type(again).__name__ if isinstance(again, (Failed, Finished)) else repr(again)
    seen["again_reason"] = getattr(again, "reason", "")
    seen["generated"] = generate(out, new_tokens=4)[0] if isinstance(again, Finished) else 0
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))))
