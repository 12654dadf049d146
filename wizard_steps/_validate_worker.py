"""Subprocess: prove a converted folder loads and generates.

Run as ``python -m wizard_steps._validate_worker DIR [N]``; prints one ``@result {json}`` line.
A crash of the native runtime stays in this process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def check(folder: Path, max_new_tokens: int) -> dict[str, object]:
    genai_config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    decoder = genai_config["model"]["decoder"]
    import onnx

    graph = onnx.load(str(folder / decoder["filename"]), load_external_data=False).graph
    for tensor in graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and not (folder / entry.value).is_file():
                return {"ok": False, "error": f"external data file {entry.value} is missing"}
    outputs = {o.name for o in graph.output}
    if decoder["outputs"]["logits"] not in outputs:
        return {"ok": False, "error": f"genai_config names logits output "
                f"{decoder['outputs']['logits']!r}, the graph has {sorted(outputs)[:3]}"}

    import onnxruntime_genai as og

    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    prompt = "The capital of France is"
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new_tokens, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    tokens: list[int] = []
    while not generator.is_done() and len(tokens) < max_new_tokens:
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return {"ok": True, "generated_tokens": len(tokens), "text": tokenizer.decode(tokens),
            "graph_outputs": len(outputs)}


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    max_new_tokens = int(argv[2]) if len(argv) > 2 else 8
    try:
        result = check(folder, max_new_tokens)
    except Exception as exc:  # reported as data: the caller turns it into one sentence
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    print("@result " + json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
