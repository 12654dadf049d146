"""Subprocess: run Olive's own command line, then prove its output loads and generates.

Run as ``python -m wizard_steps._olive_worker OUT_DIR -- <olive arguments>``. Olive runs exactly as
``olive <arguments>`` would; validating in the same process reuses the onnx and
onnxruntime-genai modules Olive has already imported, so the check costs a model load and a few
tokens rather than a second interpreter. Prints one ``@result {json}`` line at the end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fix_logits_output(folder: Path) -> str | None:
    """Block-wise RTN renames the graph output ``logits``; point genai_config.json at the new
    name (else onnxruntime-genai refuses the folder). Returns the new name when it changed."""
    import onnx

    config_path = folder / "genai_config.json"
    genai = json.loads(config_path.read_text(encoding="utf-8"))
    decoder = genai["model"]["decoder"]
    graph = onnx.load(str(folder / decoder["filename"]), load_external_data=False).graph
    outputs = [o.name for o in graph.output]
    if decoder["outputs"]["logits"] in outputs:
        return None
    renamed = [name for name in outputs if name.startswith("logits")]
    if not renamed:
        return None
    decoder["outputs"]["logits"] = renamed[0]
    tmp = config_path.with_name(".genai_config.json.tmp")
    tmp.write_text(json.dumps(genai, indent=4) + "\n", encoding="utf-8")
    tmp.replace(config_path)
    return renamed[0]


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1])
    olive_args = argv[argv.index("--") + 1:]
    from olive.cli.launcher import main as olive_main

    try:
        olive_main(olive_args, called_as_console_script=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            print(f"@result {json.dumps({'ok': False, 'stage': 'olive', 'error': f'olive exited {exc.code}'})}")
            return 1
    if not (out_dir / "genai_config.json").is_file():
        print("@result " + json.dumps({"ok": False, "stage": "olive", "error": "no model"}))
        return 1
    from wizard_steps._validate_worker import check

    try:
        renamed = fix_logits_output(out_dir)
        result = check(out_dir, 8)
        result["logits_renamed_to"] = renamed
    except Exception as exc:  # reported as data; the caller makes it one sentence
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    result["stage"] = "validate"
    print("@result " + json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
