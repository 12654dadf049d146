"""The layers stay apart: wizard_steps (the logic, run by the wizard, plain mode, the CLI and the
tests alike) never imports the terminal UI (textual, rich, tui), neither in its source nor at
run time, and importing it loads none of the heavy libraries. Modules named ``_*`` are scripts
run in child processes (Olive's worker, its user script): only their source is checked."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wizard_steps"
UI = ("textual", "rich", "tui")
HEAVY = ("torch", "transformers", "olive", "onnxruntime_genai", "foundry_local_sdk", "onnx")


def imported_packages(source: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_no_wizard_steps_source_imports_the_terminal_ui() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20, sources  # the walk found the package
    offending = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in sources for line, name in imported_packages(path) if name in UI]
    assert offending == []


def test_the_import_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\ndef f():\n    from rich.text import Text\n    import textual.app\n")
    assert [name for _, name in imported_packages(sample)] == ["os", "rich", "textual"]


def test_importing_every_wizard_steps_module_loads_no_ui_and_nothing_heavy() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import wizard_steps\n"
        "names = [m.name for m in pkgutil.walk_packages(wizard_steps.__path__, 'wizard_steps.')\n"
        "         if not m.name.rpartition('.')[2].startswith('_')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps({'modules': names, 'loaded': loaded}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {f"wizard_steps.{p.stem}" for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert expected <= set(result["modules"])
    assert [m for m in result["loaded"] if m in UI] == []
    assert [m for m in result["loaded"] if m in HEAVY] == []
