"""Side-by-side harness: every measurement in a fresh process, variants alternating, medians.

Routes (the child's interpreter is picked by the route):
  og14    onnxruntime_genai 0.14.1   (/work/main/.venv/bin/python)
  og18    onnxruntime_genai 0.18.0   (/tmp/kv/venv/bin/python)
  foundry Foundry Local SDK 2.2.1 -> onnxruntime-genai-core 0.18.0 (/work/main/.venv/bin/python,
          the project's FoundryBackend on a copy deployed with scripts/deploy.py; whole prompt at once)

    python runbench.py --routes og14,og18 --folders A,B --lengths 512,1024 --new 32 --rounds 3 --out x.json
A folder for the foundry route is MODEL_ID@CACHE (from deploy.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PY = {"og14": "/work/main/.venv/bin/python", "og18": "/tmp/kv/venv/bin/python",
      "foundry": "/work/main/.venv/bin/python"}
EVAL = "/work/main/wizard_steps/data/eval/narrative.txt"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))


def child_og(folder: str, length: int, new: int) -> dict:
    import onnxruntime_genai as og
    before = _rss()
    model = og.Model(folder)
    tok = og.Tokenizer(model)
    text = open(EVAL, encoding="utf-8").read()
    ids = list(tok.encode(text * 2))[:length]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=length + new, min_length=length + new, do_sample=False)
    gen = og.Generator(model, params)
    t0 = time.perf_counter()
    gen.append_tokens(ids)          # the whole prompt in one piece, as Foundry Local sends it
    gen.generate_next_token()
    t1 = time.perf_counter()
    tokens = [int(gen.get_next_tokens()[0])]
    for _ in range(new - 1):
        gen.generate_next_token()
        tokens.append(int(gen.get_next_tokens()[0]))
    t2 = time.perf_counter()
    return {"before": before, "peak": _peak(), "prefill_s": t1 - t0,
            "tok_s": (new - 1) / (t2 - t1), "tokens": tokens, "version": og.__version__ if hasattr(og, "__version__") else "?"}


def child_foundry(target: str, length: int, new: int) -> dict:
    sys.path.insert(0, "/work/main")
    from pathlib import Path

    import foundry_local_sdk  # noqa: F401
    import tokenizers  # noqa: F401

    from wizard_steps.deployment.engine_foundry import FoundryBackend
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.prompt.templates import PRESETS
    from wizard_steps.runtime.engine import ReplyDone, ReplyOptions
    before = _rss()
    model_id, cache = target.split("@", 1)
    backend = FoundryBackend(model_id, PRESETS["chatml"].template, Path(cache))
    done = None
    for ev in backend.stream(prompt_of_length(backend, length),
                             ReplyOptions(max_new_tokens=new, temperature=0.0, min_new_tokens=new)):
        if isinstance(ev, ReplyDone):
            done = ev
    s = done.stats
    return {"before": before, "peak": _peak(), "prefill_s": s.ttft_s, "tok_s": s.tokens_per_s,
            "tokens": done.text, "prompt": s.prompt_tokens, "generated": s.generated_tokens}


def run_child(route: str, folder: str, length: int, new: int) -> dict:
    env = dict(os.environ, SLMOPS_HOME="/tmp/kv/home")
    out = subprocess.run([PY[route], __file__, "--child", route, folder, str(length), str(new)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        return {"error": out.stderr.strip()[-1500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", nargs=4)
    p.add_argument("--routes", default="og14,og18")
    p.add_argument("--folders", default="")
    p.add_argument("--lengths", default="512,1024")
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="")
    a = p.parse_args()
    if a.child:
        route, folder, length, new = a.child
        fn = child_foundry if route == "foundry" else child_og
        print(json.dumps(fn(folder, int(length), int(new))))
        return
    folders = a.folders.split(",")
    results = []
    for route in a.routes.split(","):
        for length in map(int, a.lengths.split(",")):
            runs = {f: [] for f in folders}
            for r in range(a.rounds):
                for f in (folders if r % 2 == 0 else folders[::-1]):
                    got = run_child(route, f, length, a.new)
                    runs[f].append(got)
                    if "error" in got:
                        print(f"ERROR {route} {f} {length}: {got['error']}", flush=True)
            base = folders[0]
            for f in folders:
                ok = [x for x in runs[f] if "error" not in x]
                if not ok:
                    results.append({"route": route, "folder": f, "length": length, "error": runs[f][0]["error"]})
                    continue
                row = {"route": route, "folder": f, "length": length, "n": len(ok),
                       "model_mb": statistics.median((x["peak"] - x["before"]) / 1e6 for x in ok),
                       "peak_mb": statistics.median(x["peak"] / 1e6 for x in ok),
                       "prefill_ms": statistics.median(x["prefill_s"] * 1000 for x in ok),
                       "tok_s": statistics.median(x["tok_s"] for x in ok),
                       "tokens_stable": all(x["tokens"] == ok[0]["tokens"] for x in ok),
                       "same_tokens_as_first": all(x["tokens"] == next(y for y in runs[base] if "error" not in y)["tokens"]
                                                   for x in ok) if any("error" not in y for y in runs[base]) else None,
                       "tokens": ok[0]["tokens"]}
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "tokens"}), flush=True)
    if a.out:
        json.dump(results, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
