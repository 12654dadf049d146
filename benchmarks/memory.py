"""The model's memory, each measurement in a fresh process: a converted folder through
onnxruntime-genai (slmops' engine) and the same folder deployed to Foundry Local (the SDK's
runtime), with the deployed context (genai_config.json: ``search.max_length`` and
``model.context_length``) at several values, and llama.cpp on a GGUF when one is given.

Each child loads the model, sends one prompt of --prompt tokens and generates --new tokens;
it reports its RSS before the load and its peak RSS (VmHWM), and the model's memory is the
difference (what the model and its runtime add to the process).

    .venv/bin/python benchmarks/memory.py FOLDER [--contexts 8192,2048] [--prompt 512] [--new 64]
        [--gguf demo.Q4_1.gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux carries that across
    fork and exec, so a child started by a large parent would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(route: str, folder: str, context: int, prompt_tokens: int, new_tokens: int) -> dict[str, object]:
    """One load and one reply in this process (a fresh one: its peak is the model's)."""
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.prompt.templates import PRESETS
    from wizard_steps.runtime.engine import ReplyDone, ReplyOptions

    template = PRESETS["chatml"].template
    if route == "llamacpp":
        import llama_cpp  # noqa: F401  (loaded before the baseline, as onnxruntime_genai is below)
    elif route == "genai":
        import onnxruntime_genai  # noqa: F401
    else:
        import foundry_local_sdk  # noqa: F401
    import tokenizers  # noqa: F401

    before = _rss()
    if route == "llamacpp":
        from llama_cpp import Llama

        llm = Llama(model_path=folder, n_ctx=context, n_threads=len(os.sched_getaffinity(0)), verbose=False)
        ids = llm.tokenize(b"word " * prompt_tokens)[:prompt_tokens]
        produced = 0
        for _token in llm.generate(ids, temp=0.0):
            produced += 1
            if produced >= new_tokens:
                break
        return {"before": before, "peak": _peak(), "prompt": len(ids), "generated": produced}
    if route == "genai":
        from wizard_steps.runtime.engine import GenaiBackend

        backend = GenaiBackend(folder, template, max_length=context)
    else:
        from wizard_steps.deployment.engine_foundry import FoundryBackend

        backend = FoundryBackend(folder.split("@", 1)[0], template, Path(folder.split("@", 1)[1]))
    done = None
    options = ReplyOptions(max_new_tokens=new_tokens, temperature=0.0, min_new_tokens=new_tokens)
    for event in backend.stream(prompt_of_length(backend, prompt_tokens), options):
        if isinstance(event, ReplyDone):
            done = event
    assert done is not None
    return {"before": before, "peak": _peak(), "prompt": done.stats.prompt_tokens,
            "generated": done.stats.generated_tokens}


def run_child(*args: object) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def deployed_copy(folder: Path, context: int, cache: Path, whole_graph: bool = False) -> str:
    """The folder deployed to a throw-away Foundry cache with this context; ``id@cache``. With
    ``whole_graph``, the copy's graph is put back as converted (every position's logits: what
    deploy did before ``last_logits``), for the side-by-side row."""
    from wizard_steps.deployment.deploy import deploy, finish
    from wizard_steps.deployment.deploy_files import set_context_length
    from wizard_steps.prompt.generation import ModelConfig
    from wizard_steps.prompt.templates import PRESETS

    staged = cache.parent / f"ctx-{context}"
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(folder, staged)
    set_context_length(staged, context)
    name = f"mem-{context}" + ("-whole" if whole_graph else "")
    settings = ModelConfig(max_length=context, temperature=0.0)
    done = finish(deploy(staged, name, PRESETS["chatml"].template, settings, cache_dir=cache, tune=False))
    if whole_graph:
        graph = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["filename"]
        shutil.copy2(folder / graph, Path(done.result.path) / graph)
    return f"{done.result.model_id}@{cache}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--contexts", default="8192,2048")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--gguf", help="a GGUF of the same model, for llama.cpp (llama-cpp-python)")
    parser.add_argument("--child", nargs=5, metavar=("ROUTE", "FOLDER", "CONTEXT", "PROMPT", "NEW"))
    args = parser.parse_args()
    if args.child:
        route, folder, context, prompt, new = args.child
        print(json.dumps(child(route, folder, int(context), int(prompt), int(new))))
        return
    if not args.folder:
        parser.error("FOLDER is required")
    folder = Path(args.folder).resolve()
    contexts = [int(c) for c in args.contexts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="slmops-memory-"))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder.name}: {size / 1e6:.0f} MB on disk; prompt {args.prompt} tokens, {args.new} new")
    print(f"{'route':<34}{'context':>8}{'model (MB)':>12}{'process peak (MB)':>19}")
    try:
        rows = []
        for context in contexts:
            rows.append(("onnxruntime-genai (folder)", context,
                         run_child("genai", folder, context, args.prompt, args.new)))
            target = deployed_copy(folder, context, work / f"cache-{context}")
            rows.append(("Foundry Local (deployed copy)", context,
                         run_child("foundry", target, context, args.prompt, args.new)))
            whole = deployed_copy(folder, context, work / f"cache-{context}-whole", whole_graph=True)
            rows.append(("Foundry Local (copy, every logit)", context,
                         run_child("foundry", whole, context, args.prompt, args.new)))
            if args.gguf:
                rows.append(("llama.cpp (GGUF)", context, run_child("llamacpp", args.gguf, context, args.prompt,
                                                                    args.new)))
        for name, context, got in rows:
            model = (int(got["peak"]) - int(got["before"])) / 1e6  # type: ignore[call-overload]
            print(f"{name:<34}{context:>8}{model:>12.0f}{int(got['peak']) / 1e6:>19.0f}")  # type: ignore[call-overload]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
