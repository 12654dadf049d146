"""Child process of the full-disk test: mounts a tmpfs of SIZE on DISK (in the private mount
namespace its parent started it in), converts MODEL onto it, frees space and converts again,
and prints what it saw as JSON for the test to judge.

    python -m tests.reliability.full_disk MODEL DISK SIZE
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.genai_helpers import generate
from wizard_steps import convert, paths
from wizard_steps.events import Failed, Finished
from wizard_steps.precision import Int4Algorithm, Int4Settings, Precision


def last(events) -> object:
    final = None
    for final in events:  # noqa: B007 - the last one is the result
        pass
    return final


def olive_runs_left() -> list[str]:
    folder = paths.olive_cache_dir()
    return sorted(p.name for p in folder.iterdir() if p.name != "rerun") if folder.exists() else []


def main(model: Path, disk: Path, size: str) -> dict[str, object]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], check=True)
    out = disk / "out"
    plan = convert.make_plan(model, out, Precision.INT4, int4=Int4Settings(algorithm=Int4Algorithm.RTN))
    full = last(convert.convert(plan))
    seen: dict[str, object] = {
        "full": type(full).__name__, "reason": getattr(full, "reason", repr(full)),
        "left_on_disk": sorted(p.name for p in disk.iterdir()),
        "used_bytes": shutil.disk_usage(disk).used, "olive_runs_left": olive_runs_left()}
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
    again = last(convert.convert(plan))
    seen["again"] = type(again).__name__ if isinstance(again, (Failed, Finished)) else repr(again)
    seen["again_reason"] = getattr(again, "reason", "")
    seen["generated"] = generate(out, new_tokens=4)[0] if isinstance(again, Finished) else 0
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])))
