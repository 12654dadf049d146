"""A stand-in for the `foundry` CLI (Windows/macOS only) so that its deploy path is tested here:
it answers `cache location` and `cache ls` over $FAKE_FOUNDRY_CACHE like the real one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

STAND_IN = '''#!{python}
"""A stand-in for the foundry CLI: cache location and cache ls over $FAKE_FOUNDRY_CACHE."""
import os, sys
from pathlib import Path
sys.stdout.reconfigure(encoding="utf-8")
cache = Path(os.environ["FAKE_FOUNDRY_CACHE"])
args = sys.argv[1:]
if args == ["cache", "location"]:
    print("\\U0001F7E2 Service is Started on http://127.0.0.1:5273/, PID 4242!")
    print(f"\\U0001F4BE Cache directory path: {{cache}}")
elif args[:2] in (["cache", "ls"], ["cache", "list"]):
    print("Models cached on device:")
    print("   Alias                                             Model ID")
    for folder in sorted((cache / "custom").glob("*")):
        visible = not folder.name.startswith(".") and not os.environ.get("FAKE_FOUNDRY_HIDE")
        if visible and (folder / "inference_model.json").is_file():
            print(f"\\U0001F4BE {{folder.name:<48}}  {{folder.name}}")
else:
    print(f"unknown command {{args}}", file=sys.stderr)
    sys.exit(2)
'''


@pytest.fixture
def fake_foundry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if sys.platform == "win32":
        pytest.skip("the stand-in foundry is a POSIX script")
    bin_dir, cache = tmp_path / "bin", tmp_path / "foundry-cache"
    bin_dir.mkdir()
    cache.mkdir()
    script = bin_dir / "foundry"
    script.write_text(STAND_IN.format(python=sys.executable), encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_FOUNDRY_CACHE", str(cache))
    return cache
