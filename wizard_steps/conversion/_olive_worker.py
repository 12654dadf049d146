"""Subprocess: run Olive's own command line, then prove its output loads and generates.

Run as ``python -m wizard_steps.conversion._olive_worker OUT_DIR -- <olive arguments>``. Olive runs exactly as
``olive <arguments>`` would; validating in the same process reuses the onnx and
onnxruntime-genai modules Olive has already imported, so the check costs a model load and a few
tokens rather than a second interpreter. Prints one ``@result {json}`` line at the end.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from wizard_steps.conversion import sensitivity
from wizard_steps.conversion.convert import GPTQ_PASS
from wizard_steps.conversion.convert import _write_json as write_json
from wizard_steps.core import child_result
from wizard_steps.model.model_source import fill_eos_token_id


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


def count_layers_in_log() -> None:
    """Olive's layer-by-layer passes (Gptq) count layers with a tqdm bar that TQDM_DISABLE hides;
    print each step as a "Processing layers N/T" line instead, for the convert step's progress."""
    import tqdm.auto

    class LineCounter(tqdm.auto.tqdm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True  # never draw a bar; keep iterating as tqdm does
            self.label = str(kwargs.get("desc") or (args[1] if len(args) > 1 else "") or "").rstrip(". ")
            self.done = 0
            super().__init__(*args, **kwargs)
            self.steps = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self.done += int(n or 0)
            if self.steps and self.label:
                print(f"{self.label} {self.done}/{self.steps}", flush=True)
            return super().update(n)

    tqdm.auto.tqdm = LineCounter


def run_olive(olive_args: list[str]) -> int:
    """Olive's own command line, in this process; its exit code. As ``olive.cli.launcher.main``
    does, but without its telemetry shutdown: telemetry is off here (OLIVE_ENV), yet olive-ai 0.13's
    shutdown waits its full 2 s callback timeout for events that were never sent."""
    from olive.cli.launcher import get_cli_parser

    parser = get_cli_parser(called_as_console_script=False)
    try:
        args, unknown_args = parser.parse_known_args(olive_args)
        if not hasattr(args, "func"):
            return 1
        args.func(parser, args, unknown_args).run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def measure_sensitivity(config_path: Path) -> dict[str, dict[str, int]] | None:
    """For a Gptq pass whose ``overrides`` are left to be measured (an empty mapping): run the
    passes before it (QuaRot; a LoRA merge) into the run's cache, rank the layers on the
    calibration text (wizard_steps.conversion.sensitivity) and write the chosen ones into the
    config's overrides, so the run that follows, and the saved config, quantize them at 8 bits.
    Olive's cache gives the run that follows the rotated model without rotating again. None when
    the config asks for nothing; else the overrides written."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    passes = config["passes"]
    gptq = passes.get(GPTQ_PASS)
    if not isinstance(gptq, dict) or gptq.get("overrides") != {}:
        return None
    if sensitivity.share() == 0:  # every layer at 4 bits: nothing to measure
        return {}
    before = {}
    for name, spec in passes.items():
        if name == GPTQ_PASS:
            break
        before[name] = spec
    model_dir = Path(str(config["input_model"]["model_path"]))
    if before:
        staged = Path(config["cache_dir"]) / "before-gptq"
        first = {**config, "passes": before, "output_dir": str(staged)}
        first_path = config_path.with_name("olive_config.before-gptq.json")
        first_path.write_text(json.dumps(first, indent=2), encoding="utf-8")
        if run_olive(["run", "--config", str(first_path)]) != 0 or not (staged / "model").is_dir():
            raise RuntimeError("the passes before GPTQ produced no model")
        model_dir = staged / "model"
    print(sensitivity.ANNOUNCE, flush=True)

    text = gptq["data_config"]["load_dataset_config"]["params"]["text_path"]
    ranked, chosen = sensitivity.measure(model_dir, text, int(gptq["group_size"]), bool(gptq["sym"]))
    overrides = sensitivity.overrides(chosen)
    gptq["overrides"] = overrides
    write_json(config_path, config)
    share = sum(unit.numel for unit in chosen) / max(sum(unit.numel for unit in ranked), 1)
    print(f"8 bits for the {len(chosen)} most sensitive of {len(ranked)} units ({share:.0%} of the weights): "
          + ", ".join(unit.name.removeprefix("model.layers.") for unit in chosen[:6])
          + (" ..." if len(chosen) > 6 else ""), flush=True)
    return overrides


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1])
    olive_args = argv[argv.index("--") + 1:]
    count_layers_in_log()
    measured = None
    try:
        if olive_args[:2] == ["run", "--config"]:
            measured = measure_sensitivity(Path(olive_args[2]))
    except Exception as exc:  # reported as data; the caller makes it one sentence
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        child_result.emit({"ok": False, "stage": "sensitivity", "error": error})
        return 1
    code = run_olive(olive_args)
    if code != 0:
        child_result.emit({"ok": False, "stage": "olive", "error": f"olive exited {code}"})
        return 1
    if not (out_dir / "genai_config.json").is_file():
        child_result.emit({"ok": False, "stage": "olive", "error": "no model"})
        return 1
    try:
        fill_eos_token_id(out_dir)
        renamed = fix_logits_output(out_dir)
        result = check(out_dir, 8)
        result["logits_renamed_to"] = renamed
        if measured is not None:
            result["overrides"] = measured
    except Exception as exc:  # reported as data; the caller makes it one sentence
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    result["stage"] = "validate"
    child_result.emit(result)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    code = main(sys.argv)
    # Everything is written and the result printed: leave without the interpreter's teardown
    # (about 1.3 s of freeing torch, onnx and Olive on 2 cores) and without the telemetry
    # singleton's shutdown at garbage collection (another 2 s wait, see run_olive).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
