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
    expected = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                if not p.stem.startswith("_")}
    assert expected <= set(result["modules"])
    assert [m for m in result["loaded"] if m in UI] == []
    assert [m for m in result["loaded"] if m in HEAVY] == []


# --- the rooms -------------------------------------------------------------------------------------
# wizard_steps is split into rooms that follow the road. A room may read the rooms before it in
# this list, never one after it: measurement never reads a verdict, nothing in wizard_steps reads
# the terminal UI. Imports inside functions count the same as those at the top.
ROOMS = ("core", "model", "prompt", "runtime", "measurement", "conversion", "deployment", "verdict", "road")


def own_imports(source: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import of the project's own packages in a file, resolved to
    a module where ``from package import module`` names one."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in ("wizard_steps", "tui")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in ("wizard_steps", "tui"):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                module_file = ROOT / Path(*candidate.split("."))
                is_module = module_file.with_suffix(".py").is_file() or (module_file / "__init__.py").is_file()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "wizard_steps" and len(parts) > 2 else None


def test_every_wizard_steps_module_lives_in_a_room() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(ROOMS)


def test_a_room_reads_only_the_rooms_before_it() -> None:
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = room_of(module_name(path))
        for line, target in own_imports(path):
            other = room_of(target)
            if room and other and ROOMS.index(other) > ROOMS.index(room):
                offending.append(f"{path.relative_to(ROOT)}:{line} ({room}) reads {target} ({other})")
    assert offending == []


def project_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for top in ("wizard_steps", "tui"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = module_name(path)
            graph[name] = {t for _, t in own_imports(path) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere_in_the_project() -> None:
    graph = project_graph()
    assert len(graph) > 60
    assert cycles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def pulls_lazy(module: str, lazy: frozenset[str], seen: set[str] | None = None) -> bool:
    """Whether importing ``module`` (one of ours) loads a LAZY library through its top-level imports."""
    seen = set() if seen is None else seen
    if module in seen:
        return False
    seen.add(module)
    if module.split(".")[0] in lazy:
        return True
    base = ROOT / Path(*module.split("."))
    source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if module.split(".")[0] not in ("wizard_steps", "tui") or not source.is_file():
        return False
    tree = ast.parse(source.read_text(encoding="utf-8"))
    tops = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in tops if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in tops if isinstance(n, ast.ImportFrom) and n.module and n.level == 0]
    parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
    return any(pulls_lazy(name, lazy, seen) for name in names + parents)


def test_imports_sit_at_the_top_unless_the_library_must_wait() -> None:
    from wizard_steps import LAZY

    inner = []
    for top in ("wizard_steps", "tui"):
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for function in ast.walk(tree):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.Import):
                        modules = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                        modules = [node.module]
                    else:
                        continue
                    if not all(pulls_lazy(m, LAZY) for m in modules):
                        inner.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {modules} inside a function")
    assert inner == []


def test_the_lazy_check_follows_our_modules_to_a_lazy_library() -> None:
    from wizard_steps import LAZY

    assert pulls_lazy("tui.app", LAZY)  # Textual, through the app's own imports
    assert not pulls_lazy("wizard_steps.core.paths", LAZY)
    assert not pulls_lazy("json", LAZY)
