"""The speed levers of Olive and onnxruntime-genai on this CPU, measured with the peer benchmark's
method (same prompts, greedy, fixed new tokens, alternating in one run, medians), each with the
quality checklist's fidelity measure (perplexity and greedy agreement against the source model).

Conversion levers (one Olive run each, cached in the work folder): INT4 block size 32/64/128,
accuracy level 4/1, quantized embeddings, RTN (k_quant_mixed at block 64 fails in Olive 0.13 on the demo:
"cannot reshape array of size 2592 into shape (576,newaxis)"). Session levers (genai_config overlays on the
default conversion, at the usable-core thread count): allow_spinning off, graph optimization
level basic, thread affinity, past_present_share_buffer off.

    .venv/bin/python benchmarks/levers.py [--work DIR] [--lengths 16,128,512,1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings

GPTQ = getattr(Int4Algorithm, "GPTQ", None)  # Olive's calibrated GPTQ pass, where slmops offers it

CONVERSIONS: dict[str, Int4Settings | None] = {  # the order names the cached folders: append only
    "k_quant_mixed, block 32, acc 4": Int4Settings(algorithm=Int4Algorithm.K_QUANT_MIXED),
    "k_quant_mixed, accuracy level 1": None,  # the graph above with MatMulNBits accuracy_level 1
    "gptq, quantized embeddings": Int4Settings(algorithm=GPTQ, quantize_embeddings=True),  # type: ignore[arg-type]
    "rtn, block 32": Int4Settings(algorithm=Int4Algorithm.RTN),
    "rtn, block 64": Int4Settings(algorithm=Int4Algorithm.RTN, block_size=64),
    "rtn, block 128": Int4Settings(algorithm=Int4Algorithm.RTN, block_size=128),
    "gptq, block 32": Int4Settings(algorithm=GPTQ),  # type: ignore[arg-type]
}


def session_levers(threads: int) -> dict[str, dict]:
    """genai_config overlays, each on top of ``threads`` intra-op threads. onnxruntime-genai 0.14
    passes a string-valued key it does not know to onnxruntime as a session config entry
    (a ``config_entries`` object is refused)."""
    def options(**extra: object) -> dict:
        return {"model": {"decoder": {"session_options": {"intra_op_num_threads": threads, **extra}}}}

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(threads))
    # one entry per intra-op thread besides the caller's, 1-based logical processor numbers
    affinity = ";".join(str(cpus[i % len(cpus)] + 1) for i in range(1, threads))
    levers = {
        "default threads": {"model": {"decoder": {"session_options": {"intra_op_num_threads": 0}}}},
        f"{threads} threads (tuned)": options(),
        "+ allow_spinning 0": options(**{"session.intra_op.allow_spinning": "0"}),
        "+ graph optimization basic": options(graph_optimization_level="ORT_ENABLE_BASIC"),
        "+ past_present_share_buffer off": {**options(), "search": {"past_present_share_buffer": False}},
    }
    if affinity:
        levers["+ thread affinity"] = options(**{"session.intra_op_thread_affinities": affinity})
    return levers


def with_accuracy_level(source: Path, target: Path, level: int) -> Path:
    """A copy of a converted folder whose MatMulNBits nodes compute at another accuracy level."""
    import shutil

    import onnx

    shutil.copytree(source, target)
    model = onnx.load(str(target / "model.onnx"), load_external_data=False)
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            kept = [a for a in node.attribute if a.name != "accuracy_level"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("accuracy_level", level)])
    onnx.save(model, str(target / "model.onnx"))
    return target


def convert_variants(work: Path, first_only: bool = False, chosen: set[int] | None = None) -> dict[str, Path]:
    """Every conversion lever as a folder (reused when present); one that Olive fails is reported."""
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Precision
    from wizard_steps.core.events import Failed, Finished
    from wizard_steps.model import model_source

    folders: dict[str, Path] = {}
    for index, (name, settings) in enumerate(CONVERSIONS.items()):
        if first_only and folders:
            break
        if (chosen is not None and index not in chosen) or (settings and settings.algorithm is None):
            continue
        out = work / f"variant-{index}"
        if not (out / "genai_config.json").is_file():
            if settings is None:
                with_accuracy_level(next(iter(folders.values())), out, 1)
                folders[name] = out
                continue
            plan = convert.make_plan(model_source.ensure_demo(), out, Precision.INT4, int4=settings)
            if "tune" in {f.name for f in dataclasses.fields(plan)}:
                plan = dataclasses.replace(plan, tune=False)  # the levers are measured untuned
            final = None
            for event in convert.convert(plan):
                if isinstance(event, (Finished, Failed)):
                    final = event
            if not isinstance(final, Finished):
                print(f"{name}: conversion failed: {getattr(final, 'reason', final)}", flush=True)
                continue
            print(f"converted {name}: {out}", flush=True)
        folders[name] = out
    return folders


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("model.onnx*")) / 1e6


def fidelity(folders: dict[str, Path]) -> dict[str, tuple[float, float]]:
    """(perplexity ratio to the source, greedy agreement) per conversion."""
    from wizard_steps.model import model_source
    from wizard_steps.verdict import fidelity as fid
    from wizard_steps.verdict.quality import FIDELITY_QUESTIONS

    source = model_source.ensure_demo()
    first = next(iter(folders.values()))
    prompts = tuple(fid.chat_prompt(first, q) for q in FIDELITY_QUESTIONS)
    reference = fid.source_reference(source, fid.fidelity_text(), prompts, 16)
    out = {}
    for name, folder in folders.items():
        figures = fid.tuning_figures(folder, reference)
        out[name] = (float(figures["ratio"]), float(figures["agreement"]))
    return out


def measure(backends: dict, lengths: list[int], runs: int, tokens: int) -> dict[str, dict[int, tuple]]:
    """Median (prompt tok/s, generation tok/s) per backend and length, the order rotating per run."""
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.runtime.engine import ReplyDone, ReplyOptions

    options = ReplyOptions(max_new_tokens=tokens, min_new_tokens=tokens)
    names = list(backends)
    table: dict[str, dict[int, tuple]] = {name: {} for name in names}
    for length in lengths:
        prompt = prompt_of_length(backends[names[0]], length)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for run in range(runs + 1):
            order = names[run % len(names):] + names[:run % len(names)]
            for name in (order if run % 2 == 0 else order[::-1]):
                done = next(e for e in backends[name].stream(prompt, options) if isinstance(e, ReplyDone))
                if run:
                    samples[name].append((done.stats.prompt_tokens_per_s, done.stats.tokens_per_s))
        for name, values in samples.items():
            table[name][length] = (statistics.median(v[0] for v in values),
                                   statistics.median(v[1] for v in values))
        print(f"  measured {length} tokens", flush=True)
    return table


def print_table(title: str, table: dict[str, dict[int, tuple]], base: str, extra: dict[str, str]) -> None:
    lengths = list(next(iter(table.values())))
    print(f"\n{title} (generation tok/s, then prompt tok/s; xR = ratio to '{base}')")
    for name, row in table.items():
        gen = " ".join(f"{row[n][1]:6.1f} (x{row[n][1] / table[base][n][1]:.2f})" for n in lengths)
        pre = " ".join(f"{row[n][0]:6.0f}" for n in lengths)
        print(f"  {name:42s} gen {gen} | prompt {pre} {extra.get(name, '')}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "slmops-levers"))
    parser.add_argument("--lengths", default="16,128,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--no-fidelity", action="store_true")
    parser.add_argument("--only", choices=("conversion", "session"))
    parser.add_argument("--variants", help="indices of CONVERSIONS to measure, e.g. 0,1,3 (default: all)")
    args = parser.parse_args()
    work = Path(args.work)
    os.environ.setdefault("SLMOPS_HOME", str(work / "home"))
    from wizard_steps.measurement import tune
    from wizard_steps.prompt.templates import get_preset
    from wizard_steps.runtime.engine import GenaiBackend

    template = get_preset("chatml").template
    lengths = [int(n) for n in args.lengths.split(",")]
    threads = tune.usable_cpus()
    chosen = {int(n) for n in args.variants.split(",")} if args.variants else None
    folders = convert_variants(work, first_only=args.only == "session", chosen=chosen)
    print(f"{threads} usable CPUs, {args.runs} runs, {args.tokens} new tokens, greedy", flush=True)
    if args.only != "session":
        quality = {} if args.no_fidelity else fidelity(folders)
        extra = {name: f"| {folder_mb(folder):5.0f} MB" + (
            f", perplexity x{quality[name][0]:.3f}, agreement {quality[name][1]:.2f}" if name in quality else "")
            for name, folder in folders.items()}
        overlay = session_levers(threads)[f"{threads} threads (tuned)"]
        backends = {name: GenaiBackend(folder, template, overlay=overlay) for name, folder in folders.items()}
        table = measure(backends, lengths, args.runs, args.tokens)
        for backend in backends.values():
            backend.close()
        print_table(f"Conversion levers at {threads} threads", table, next(iter(folders)), extra)
    if args.only != "conversion":
        base = next(iter(folders.values()))
        levers = session_levers(threads)
        backends = {name: GenaiBackend(base, template, overlay=overlay) for name, overlay in levers.items()}
        table = measure(backends, lengths, args.runs, args.tokens)
        print_table("Session levers on the default conversion", table, f"{threads} threads (tuned)", {})


if __name__ == "__main__":
    main()
