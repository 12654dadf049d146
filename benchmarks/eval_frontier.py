"""The demo's precisions judged on the evaluation text (wizard_steps/data/eval, about 22,000
tokens in windows of 512, used by nothing that chose a route or a setting), against the fp32
source run on this machine: the perplexity ratio with its 95 % interval, the mean and p99 KL
divergence, the share of positions where both rank the same token first, the 60 domain queries
against the source, and the folder's size. One row per route, printed as the README's table.

    .venv/bin/python benchmarks/eval_frontier.py [--routes default,int8] [--work DIR] [--windows N]
    .venv/bin/python benchmarks/eval_frontier.py --routes uniform,default,mixed40,int8 --speed 16,128,512

On emulated AVX2 (no AVX-512: the kernels onnxruntime picks differ, and so can the answers), with
qemu-user on this x86 machine; about 4.5 s per generated token, so a subset of the queries and one
window (the source's side comes from the cache a native run of the same request fills first):

    qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/eval_frontier.py --routes default \
        --work DIR --windows 1 --queries SUBSET.jsonl --cpu-label "Haswell (AVX2), emulated"

Folders are converted once into WORK (product defaults, through wizard_steps.conversion.convert) and reused;
each row names the CPU it was measured on: the figures move from CPU to CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.conversion import convert, sensitivity
from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
from wizard_steps.core.events import Finished
from wizard_steps.measurement import evaluation
from wizard_steps.model import model_source
from wizard_steps.prompt.templates import get_preset
from wizard_steps.runtime.engine import GenaiBackend, ReplyOptions
from wizard_steps.verdict import domain

ROUTES: dict[str, tuple[Precision, Int4Settings | None, str]] = {
    "default": (Precision.INT4, Int4Settings(),
                "INT4 default (QuaRot + GPTQ asymmetric 32, the most sensitive 20 % at 8 bits)"),
    "uniform": (Precision.INT4, Int4Settings(), "INT4 QuaRot + GPTQ asymmetric 32, every layer at 4 bits"),
    "mixed40": (Precision.INT4, Int4Settings(),
                "INT4 QuaRot + GPTQ asymmetric 32, the most sensitive 40 % at 8 bits"),
    "kqm16": (Precision.INT4, Int4Settings(16, algorithm=Int4Algorithm.K_QUANT_MIXED),
              "INT4 k_quant_mixed, block 16"),
    "rtn16": (Precision.INT4, Int4Settings(16, algorithm=Int4Algorithm.RTN), "INT4 RTN, block 16"),
    "int8": (Precision.INT8, None, "INT8 (rotated first)"),
    "fp32": (Precision.FP32, None, "FP32"),
}


# the share of the decoder's weights the sensitivity measurement puts at 8 bits, where a route sets
# its own (the product's is sensitivity.SHARE); folders of another share count as the same
# conversion, so each route keeps its own folder in WORK
SHARES = {"uniform": 0.0, "mixed40": 0.4}


def folder_for(demo: Path, work: Path, name: str) -> Path:
    precision, int4, _label = ROUTES[name]
    out = work / name
    plan = replace(convert.make_plan(demo, out, precision, int4=int4, replace_existing=out.is_dir()), tune=False)
    if convert.converted_before(plan):
        return out
    if name in SHARES:
        os.environ[sensitivity.SHARE_VARIABLE] = str(SHARES[name])
    try:
        final = list(convert.convert(plan))[-1]
    finally:
        os.environ.pop(sensitivity.SHARE_VARIABLE, None)
    if not isinstance(final, Finished):
        raise SystemExit(f"{name}: {final}")
    print(f"{name}: converted in {final.result.duration_s:.0f} s", file=sys.stderr, flush=True)
    return final.path


def domain_losses(demo: Path, folder: Path, queries_file: str | None) -> tuple[int, int, int, list[dict]]:
    chatml = get_preset("chatml")
    options = ReplyOptions(max_new_tokens=64, stop=chatml.stop)
    queries = domain.load_queries(queries_file) if queries_file else domain.demo_queries()
    backend = GenaiBackend(folder, chatml.template)
    try:
        source = domain.source_replies(demo, backend, queries, options)
        check = domain.check_domain_queries(backend, queries, options, source=source)
    finally:
        backend.close()
    verdict = check.figures
    assert verdict is not None, check.evidence
    lost = [{"prompt": r.prompt, "reply": r.reply, "source": r.source_reply} for r in verdict.lost]
    return verdict.source_answered, verdict.losses, verdict.allowed_losses, lost


def side_by_side(folders: list[Path], lengths: list[int]) -> None:
    """Median tok/s of each folder, 3 runs of 64 new tokens per length, at the tuned thread count."""
    from benchmarks.levers import measure as alternate
    from benchmarks.levers import print_table
    from wizard_steps.measurement import tune

    overlay = tune.Candidate(tune.usable_cpus()).overlay()
    template = get_preset("chatml").template
    backends = {folder.name: GenaiBackend(folder, template, overlay=overlay) for folder in folders}
    try:
        table = alternate(backends, lengths, 3, 64)
    finally:
        for backend in backends.values():
            backend.close()
    print_table(f"{len(folders)} routes at {tune.usable_cpus()} threads", table, folders[0].name, {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--work", default=os.environ.get("SLMOPS_FRONTIER_WORK", "/tmp/slmops-eval-frontier"))
    parser.add_argument("--windows", type=int, default=None, help="only the first N windows (a quick look)")
    parser.add_argument("--queries", help="a JSONL of domain queries (default: the demo's)")
    parser.add_argument("--cpu-label", help="the CPU to name in the rows, where this process cannot read it "
                        "(under qemu-user, /proc/cpuinfo is the host's: e.g. \"Haswell (AVX2), emulated\")")
    parser.add_argument("--speed", help="instead: generation and prompt tok/s of the routes' folders at these "
                        "prompt lengths (e.g. 16,128,512), side by side in one run, the order rotating")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    demo = model_source.ensure_demo()
    if args.speed:
        side_by_side([folder_for(demo, work, name) for name in args.routes.split(",")],
                     [int(n) for n in args.speed.split(",")])
        return 0
    results_file = work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in args.routes.split(","):
        folder = folder_for(demo, work, name)
        started = time.monotonic()
        result = evaluation.measure(demo, folder, limit=args.windows)
        answered, lost, allowed, lost_replies = domain_losses(demo, folder, args.queries)
        measured = result.to_dict() | ({"cpu": args.cpu_label} if args.cpu_label else {})
        results[name] = {**measured, "size_mb": round(model_source.folder_size(folder) / 1e6),
                         "answered": answered, "lost": lost, "allowed": allowed, "lost_replies": lost_replies,
                         "seconds": round(time.monotonic() - started)}
        results_file.write_text(json.dumps(results, indent=2))
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    print("| precision | folder | perplexity ratio (95 %) | KL divergence mean (p99) | same first token | "
          "domain answers lost (of the source's) |")
    print("| --- | ---: | --- | --- | ---: | --- |")
    for name, row in results.items():
        print(f"| {ROUTES[name][2]} | {row['size_mb']} MB | {row['perplexity_ratio']:.3f} ({row['ratio_low']:.3f}-"
              f"{row['ratio_high']:.3f}) | {row['kl_mean']:.3f} ({row['kl_p99']:.2f}) | "
              f"{row['top1_agreement'] * 100:.1f} % | {row['lost']} of {row['answered']} |")
    cpus = {row["cpu"] for row in results.values()}
    tokens = {row["tokens"] for row in results.values()}
    print(f"\nMeasured on {', '.join(sorted(cpus))}; {', '.join(map(str, sorted(tokens)))} tokens of the "
          "evaluation text.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
