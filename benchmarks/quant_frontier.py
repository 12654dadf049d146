"""The quantization frontier of the demo model: every INT4 / INT8 route Olive can run on a CPU,
one row each (folder size, conversion time, perplexity and greedy agreement against the source,
domain queries answered against the source, generation tok/s at a 128-token prompt, 2 threads).

    nice -n 10 .venv/bin/python benchmarks/quant_frontier.py [--routes a,b] [--work DIR]
    .venv/bin/python benchmarks/quant_frontier.py --speed int8,int8_al1,int4_kqm_b16

--margins shows, for kept routes, where each greedy answer leaves the source's and how sure the source
was there (its top-1 minus top-2 logit): a flip at a near-tie is a coin toss, not a lost answer.
--speed times kept route folders against each other (alternating in one run, 2 threads, the
levers benchmark's method) and prints the ratios to the first: the table's tok/s column is measured
one route at a time and is only a rough guide on a shared machine.

Results are cached in WORK/results.json, so routes can be measured a few at a time and the
table is printed from everything measured so far. A route counts only once its perplexity
has been measured; a route that fails keeps its reason in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wizard_steps.conversion.convert import OLIVE_ENV

DEMO = Path(os.environ.get("SLMOPS_TEST_DEMO", "/work/shared-demo/SmolLM2-135M-Instruct"))
ROOT = Path(__file__).resolve().parent.parent


def _builder(precision: str, **options: object) -> dict[str, object]:
    return {"type": "ModelBuilder", "precision": precision, **options}


def _int4(**options: object) -> dict[str, object]:
    return _builder("int4", int4_block_size=options.pop("block", 32), int4_accuracy_level=4, **options)


def _rtn8(**options: object) -> dict[str, object]:
    return {"type": "OnnxBlockWiseRtnQuantization", "bits": 8, "block_size": options.pop("block", 32),
            "accuracy_level": options.pop("level", 4), **options}


def _calibration() -> dict[str, object]:
    from wizard_steps.conversion.calibration import check_text, olive_data_config

    return olive_data_config(DEMO, check_text(None))


def _gptq(**options: object) -> dict[str, object]:
    return {"type": "Gptq", "bits": 4, "group_size": 32, "sym": True, "data_config": _calibration(),
            **options}


_LM = ["/lm_head/MatMul"]
_LAYERS = range(30)  # the demo's decoder layers
_DOWN = [f"/model/layers.{i}/mlp/down_proj/MatMul" for i in _LAYERS]
_EDGES = [f"/model/layers.{i}/{part}/MatMul" for i in (0, 1, 28, 29)
          for part in ("attn/qkv_proj", "attn/o_proj", "mlp/gate_proj", "mlp/up_proj", "mlp/down_proj")]
# The first two and last two decoder layers at 8 bits in GPTQ (the builder reads per-module bits)
_EDGES8 = {f"model.layers.{i}.{part}": {"bits": 8}
           for i in (0, 1, 28, 29)
           for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
# name -> (what it is, a function giving the Olive passes)
ROUTES: dict[str, tuple[str, Callable[[], dict[str, dict[str, object]]]]] = {
    "fp32": ("ModelBuilder fp32", lambda: {"b": _builder("fp32")}),
    "int4_rtn": ("ModelBuilder int4 RTN (builder default), block 32", lambda: {"b": _int4()}),
    "int4_rtn_asym": ("int4 RTN asymmetric, block 32",
                      lambda: {"b": _int4(int4_is_symmetric=False)}),
    "int4_rtn_last": ("int4 RTN, LM head at 8 bits (rtn_last)",
                      lambda: {"b": _int4(int4_algo_config="rtn_last")}),
    "int4_rtn_lmfp32": ("int4 RTN, LM head and embeddings fp32",
                        lambda: {"b": _int4(int4_nodes_to_exclude=_LM)}),
    "int4_kqm_lmfp32": ("int4 k_quant_mixed, LM head and embeddings fp32",
                        lambda: {"b": _int4(int4_algo_config="k_quant_mixed", int4_nodes_to_exclude=_LM)}),
    "int4_kq_lmfp32": ("int4 k_quant (all 4 bit), LM head and embeddings fp32",
                       lambda: {"b": _int4(int4_algo_config="k_quant", int4_nodes_to_exclude=_LM)}),
    "int4_kqm": ("int4 k_quant_mixed, block 32 (the old recommendation)",
                 lambda: {"b": _int4(int4_algo_config="k_quant_mixed")}),
    "int4_kqm_b16": ("int4 k_quant_mixed, block 16",
                     lambda: {"b": _int4(int4_algo_config="k_quant_mixed", block=16)}),
    "int4_kqm_asym": ("int4 k_quant_mixed asymmetric, block 32",
                      lambda: {"b": _int4(int4_algo_config="k_quant_mixed", int4_is_symmetric=False)}),
    "int4_kq_last": ("int4 k_quant, LM head at 8 bits (k_quant_last)",
                     lambda: {"b": _int4(int4_algo_config="k_quant_last")}),
    "int4_kqm_al1": ("int4 k_quant_mixed, accuracy level 1 (fp32 compute)",
                     lambda: {"b": {**_int4(int4_algo_config="k_quant_mixed"), "int4_accuracy_level": 1}}),
    "int4_hqq": ("ModelBuilder fp32, then OnnxHqqQuantization block 32",
                 lambda: {"b": _builder("fp32"),
                          "q": {"type": "OnnxHqqQuantization", "block_size": 32, "accuracy_level": 4}}),
    "int4_hqq_lmfp32": ("ModelBuilder fp32, then OnnxHqqQuantization block 32, LM head left fp32",
                        lambda: {"b": _builder("fp32"),
                                 "q": {"type": "OnnxHqqQuantization", "block_size": 32, "accuracy_level": 4,
                                       "nodes_to_exclude": _LM}}),
    "int4_gptq": ("Gptq 4 bit sym, group 32, local calibration text, then ModelBuilder int4",
                  lambda: {"g": _gptq(), "b": _int4(int4_algo_config="rtn_last")}),
    "int4_gptq_asym": ("Gptq 4 bit asym, group 32, then ModelBuilder int4 (LM head 8 bits)",
                       lambda: {"g": _gptq(sym=False), "b": _int4(int4_algo_config="rtn_last",
                                                                   int4_is_symmetric=False)}),
    "int4_quarot_gptq": ("QuaRot (hadamard), then Gptq 4 bit sym group 32, then ModelBuilder int4",
                         lambda: {"r": {"type": "QuaRot"}, "g": _gptq(),
                                  "b": _int4(int4_algo_config="rtn_last")}),
    "int4_quarot_gptq_b16": ("QuaRot, then Gptq 4 bit sym group 16, then ModelBuilder int4 block 16",
                             lambda: {"r": {"type": "QuaRot"}, "g": _gptq(group_size=16),
                                      "b": _int4(int4_algo_config="rtn_last", block=16)}),
    "int4_quarot_gptq_asym": ("QuaRot, then Gptq 4 bit asym group 32, then ModelBuilder int4",
                              lambda: {"r": {"type": "QuaRot"}, "g": _gptq(sym=False),
                                       "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int4_quarot_gptq_b16_asym": ("QuaRot, then Gptq 4 bit asym group 16, then ModelBuilder int4 block 16",
                                  lambda: {"r": {"type": "QuaRot"}, "g": _gptq(group_size=16, sym=False),
                                           "b": _int4(int4_algo_config="rtn_last", block=16,
                                                      int4_is_symmetric=False)}),
    "int4_quarot_gptq_edges8": ("QuaRot, then Gptq 4 bit sym group 32, first two and last two layers at 8 bits",
                                lambda: {"r": {"type": "QuaRot"}, "g": _gptq(overrides=_EDGES8),
                                         "b": _int4(int4_algo_config="rtn_last")}),
    "int4_quarot_gptq_asym_edges8": ("QuaRot, then Gptq 4 bit asym group 32, first two and last two layers "
                                     "at 8 bits",
                                     lambda: {"r": {"type": "QuaRot"}, "g": _gptq(sym=False, overrides=_EDGES8),
                                              "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int4_quarot_gptq_b16_edges8": ("QuaRot, then Gptq 4 bit sym group 16, first two and last two layers "
                                    "at 8 bits",
                                    lambda: {"r": {"type": "QuaRot"}, "g": _gptq(group_size=16, overrides=_EDGES8),
                                             "b": _int4(int4_algo_config="rtn_last", block=16)}),
    "int4_quarot_gptq_asym_damp": ("QuaRot, then Gptq 4 bit asym group 32, damping 0.1",
                                   lambda: {"r": {"type": "QuaRot"}, "g": _gptq(sym=False, damp_percent=0.1),
                                            "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int4_quarot_gptq_damp": ("QuaRot, then Gptq 4 bit sym group 32, damping 0.1",
                              lambda: {"r": {"type": "QuaRot"}, "g": _gptq(damp_percent=0.1),
                                       "b": _int4(int4_algo_config="rtn_last")}),
    "int4_quarot_gptq_b16_asym_damp": ("QuaRot, then Gptq 4 bit asym group 16, damping 0.1, then ModelBuilder "
                                       "int4 block 16",
                                       lambda: {"r": {"type": "QuaRot"},
                                                "g": _gptq(group_size=16, sym=False, damp_percent=0.1),
                                                "b": _int4(int4_algo_config="rtn_last", block=16,
                                                           int4_is_symmetric=False)}),
    "int4_gptq_asym_damp": ("Gptq 4 bit asym group 32, damping 0.1, no rotation",
                            lambda: {"g": _gptq(sym=False, damp_percent=0.1),
                                     "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int4_quarot_rtn": ("QuaRot, then ModelBuilder int4 RTN (LM head 8 bits), no calibration",
                        lambda: {"r": {"type": "QuaRot"}, "b": _int4(int4_algo_config="rtn_last")}),
    "int4_quarot_kqm_b16": ("QuaRot, then ModelBuilder int4 k_quant_mixed block 16",
                            lambda: {"r": {"type": "QuaRot"},
                                     "b": _int4(int4_algo_config="k_quant_mixed", block=16)}),
    "int8": ("ModelBuilder fp32, then RTN 8 bit block 32, all MatMuls (the old INT8)",
             lambda: {"b": _builder("fp32"), "q": _rtn8()}),
    "int8_lmfp32": ("fp32, then RTN 8 bit block 32, LM head and embeddings left fp32",
                    lambda: {"b": _builder("fp32"), "q": _rtn8(nodes_to_exclude=_LM)}),
    "int8_b128": ("fp32, then RTN 8 bit block 128", lambda: {"b": _builder("fp32"), "q": _rtn8(block=128)}),
    "int8_b128_lmfp32": ("fp32, then RTN 8 bit block 128, LM head fp32",
                         lambda: {"b": _builder("fp32"), "q": _rtn8(block=128, nodes_to_exclude=_LM)}),
    "int8_b16": ("fp32, then RTN 8 bit block 16", lambda: {"b": _builder("fp32"), "q": _rtn8(block=16)}),
    "int8_al1": ("fp32, then RTN 8 bit block 32, accuracy level 1 (fp32 compute, no int8 activations)",
                 lambda: {"b": _builder("fp32"), "q": _rtn8(level=1)}),
    "int8_al0": ("fp32, then RTN 8 bit block 32, accuracy level 0 (the kernel's own choice)",
                 lambda: {"b": _builder("fp32"), "q": _rtn8(level=0)}),
    "int8_b16_al1": ("fp32, then RTN 8 bit block 16, accuracy level 1",
                     lambda: {"b": _builder("fp32"), "q": _rtn8(block=16, level=1)}),
    "int4_kqm_b16_al1": ("int4 k_quant_mixed, block 16, accuracy level 1 (fp32 compute)",
                         lambda: {"b": {**_int4(int4_algo_config="k_quant_mixed", block=16),
                                        "int4_accuracy_level": 1}}),
    "int8_down_fp32": ("fp32, then RTN 8 bit block 32, every MLP down projection left fp32",
                       lambda: {"b": _builder("fp32"), "q": _rtn8(nodes_to_exclude=_DOWN)}),
    "int8_edges_fp32": ("fp32, then RTN 8 bit block 32, the first two and last two layers left fp32",
                        lambda: {"b": _builder("fp32"), "q": _rtn8(nodes_to_exclude=_EDGES)}),
    "int8_quarot": ("QuaRot, then ModelBuilder fp32, then RTN 8 bit block 32 (activations rotated for int8)",
                    lambda: {"r": {"type": "QuaRot"}, "b": _builder("fp32"), "q": _rtn8()}),
    "int8_quarot_gptq": ("QuaRot, then Gptq 8 bit asym group 32, damping 0.1, then ModelBuilder (LM head 8 bits)",
                         lambda: {"r": {"type": "QuaRot"}, "g": _gptq(bits=8, sym=False, damp_percent=0.1),
                                  "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int8_gptq": ("Gptq 8 bit asym group 32, damping 0.1, no rotation, then ModelBuilder (LM head 8 bits)",
                  lambda: {"g": _gptq(bits=8, sym=False, damp_percent=0.1),
                           "b": _int4(int4_algo_config="rtn_last", int4_is_symmetric=False)}),
    "int8_dynamic": ("fp32, then dynamic quantization (MatMulInteger, reduce_range), LM head fp32",
                     lambda: {"b": _builder("fp32"),
                              "q": {"type": "OnnxDynamicQuantization", "precision": "int8",
                                    "reduce_range": True, "per_channel": True, "nodes_to_exclude": _LM,
                                    "op_types_to_quantize": ["MatMul"], "quant_preprocess": False}}),
}


def olive_config(passes: dict[str, dict[str, object]], out: Path, cache: Path) -> dict[str, object]:
    return {"input_model": {"type": "HfModel", "model_path": str(DEMO)},
            "systems": {"local": {"type": "LocalSystem", "accelerators": [
                {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
            "passes": passes, "host": "local", "target": "local", "cache_dir": str(cache),
            "output_dir": str(out), "log_severity_level": 1}


def convert_route(name: str, work: Path) -> tuple[Path | None, float, str]:
    """Run one route through the project's Olive worker; (folder, seconds, error)."""
    out, cache = work / name, work / "cache" / name
    shutil.rmtree(out, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    config_path = work / f"{name}.olive.json"
    config_path.write_text(json.dumps(olive_config(ROUTES[name][1](), out, cache), indent=2))
    command = [sys.executable, "-m", "wizard_steps.conversion._olive_worker", str(out), "--",
               "run", "--config", str(config_path)]
    started = time.monotonic()
    log = (work / f"{name}.log").open("w")
    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=cache,
                           env={**os.environ, **OLIVE_ENV})
    seconds = time.monotonic() - started
    shutil.rmtree(cache, ignore_errors=True)
    lines = (work / f"{name}.log").read_text(errors="replace").splitlines()
    result = next((json.loads(t[8:]) for t in reversed(lines) if t.startswith("@result ")), None)
    if code != 0 or not result or not result.get("ok"):
        reason = (result or {}).get("error") or next((t for t in reversed(lines) if t.strip()), "?")
        return None, seconds, str(reason)[:160]
    return out, seconds, ""


def source_facts(work: Path) -> dict[str, object]:
    """The source model's perplexity, greedy answers and domain replies (cached)."""
    path = work / "source.json"
    if path.is_file():
        return json.loads(path.read_text())
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wizard_steps.prompt.templates import Conversation, get_preset, render
    from wizard_steps.verdict.fidelity import chat_prompt, source_reference
    from wizard_steps.verdict.quality import DEFAULT_SYSTEM, FIDELITY_QUESTIONS, demo_queries, fidelity_text

    prompts = [chat_prompt(DEMO, q) for q in FIDELITY_QUESTIONS]
    ref = source_reference(DEMO, fidelity_text(), prompts, 16)
    tokenizer = AutoTokenizer.from_pretrained(DEMO)
    model = AutoModelForCausalLM.from_pretrained(DEMO, dtype=torch.float32).eval()
    template = get_preset("chatml").template
    replies = []
    for query in demo_queries():
        text = render(template, Conversation(DEFAULT_SYSTEM, (("user", query.prompt),)))
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=64, do_sample=False, repetition_penalty=1.1)
        replies.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    facts = {"perplexity": ref.perplexity, "text_tokens": ref.text_tokens, "prompts": prompts,
             "answers": [list(a) for a in ref.answers], "texts": list(ref.texts),
             "domain_passed": [q.matches(r) for q, r in zip(demo_queries(), replies, strict=True)],
             "domain_replies": replies}
    path.write_text(json.dumps(facts, indent=1))
    return facts


def measure(folder: Path, facts: dict[str, object]) -> dict[str, object]:
    from wizard_steps.measurement import tune
    from wizard_steps.measurement.benchmark import prompt_of_length
    from wizard_steps.model.model_source import folder_size
    from wizard_steps.prompt.templates import get_preset
    from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions
    from wizard_steps.verdict.fidelity import SourceReference, tuning_figures
    from wizard_steps.verdict.quality import check_domain_queries, demo_queries, fidelity_text

    ref = SourceReference(fidelity_text(), facts["perplexity"], facts["text_tokens"],  # type: ignore[arg-type]
                          tuple(facts["prompts"]), tuple(tuple(a) for a in facts["answers"]),  # type: ignore[arg-type]
                          tuple(facts["texts"]))  # type: ignore[arg-type]
    fidelity = tuning_figures(folder, ref)
    template = get_preset("chatml").template
    backend = GenaiBackend(folder, template, overlay=tune.Candidate(2).overlay())
    domain = check_domain_queries(backend, demo_queries())
    assert domain.figures is not None, domain.evidence
    passed = [r.passed for r in domain.figures.results]
    prompt = prompt_of_length(backend, 128)
    options = ReplyOptions(max_new_tokens=64, min_new_tokens=64)
    speeds = []
    for run in range(4):
        done = next(e for e in backend.stream(prompt, options) if isinstance(e, ReplyDone))
        if run:
            speeds.append(done.stats.tokens_per_s)
    backend.close()
    source_ok = facts["domain_passed"]
    return {"size": folder_size(folder), "perplexity": fidelity["converted_perplexity"],
            "ratio": fidelity["ratio"], "agreement": fidelity["agreement"],
            "domain_both": sum(a and b for a, b in zip(passed, source_ok, strict=True)),  # type: ignore[arg-type]
            "domain_source": sum(source_ok), "domain_total": len(passed),  # type: ignore[arg-type]
            "domain_misses": [q.prompt for q, a, b in zip(demo_queries(), passed, source_ok, strict=True)
                              if b and not a],  # type: ignore[arg-type]
            "tok_s": statistics.median(speeds),
            "france": fidelity["answers"][0]["converted"]}


def fidelity_only(folder: Path, work: Path) -> dict[str, object]:
    """Perplexity ratio and greedy agreement of a converted folder against the cached source."""
    from wizard_steps.verdict.fidelity import SourceReference, tuning_figures
    from wizard_steps.verdict.quality import fidelity_text

    facts = json.loads((work / "source.json").read_text())
    ref = SourceReference(fidelity_text(), facts["perplexity"], facts["text_tokens"], tuple(facts["prompts"]),
                          tuple(tuple(a) for a in facts["answers"]), tuple(facts["texts"]))
    figures = tuning_figures(folder, ref)
    return {"ratio": figures["ratio"], "agreement": figures["agreement"],
            "france": figures["answers"][0]["converted"]}


def divergence_margins(names: list[str], work: Path) -> None:
    """Per fidelity question: the source's greedy answer, its top-1 minus top-2 logit margin at
    every token, and where each kept route's greedy answer first differs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wizard_steps.verdict.fidelity import _Onnx, prefix_agreement

    facts = source_facts(work)
    tokenizer = AutoTokenizer.from_pretrained(DEMO)
    model = AutoModelForCausalLM.from_pretrained(DEMO, dtype=torch.float32).eval()
    answers: dict[str, list[list[int]]] = {}
    for name in names:
        onnx = _Onnx(work / name)
        answers[name] = [onnx.greedy(prompt, 16) for prompt in facts["prompts"]]  # type: ignore[union-attr]
        onnx.close()
    for index, (prompt, source) in enumerate(zip(facts["prompts"], facts["answers"], strict=True)):  # type: ignore[call-overload]
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.inference_mode():
            logits = model(torch.cat([ids, torch.tensor([source])], 1)).logits[0, ids.shape[1] - 1:-1]
        top = logits.topk(2).values
        margins = (top[:, 0] - top[:, 1]).tolist()
        print(f"Q{index + 1} source: {facts['texts'][index]!r}")  # type: ignore[index]
        print("   margins: " + " ".join(f"{m:.2f}" for m in margins))
        for name in names:
            got = answers[name][index]
            at = next((i for i, (a, b) in enumerate(zip(got, source, strict=False)) if a != b), None)
            where = "agrees" if at is None else f"leaves it at token {at + 1} (margin {margins[at]:.3f})"
            print(f"   {name:18s} {prefix_agreement(got, source):.2f} {where}: {tokenizer.decode(got)!r}")


def side_by_side(names: list[str], work: Path, lengths: list[int]) -> None:
    """Generation and prompt tok/s of kept route folders, alternating in one run."""
    from benchmarks.levers import measure as alternate
    from benchmarks.levers import print_table
    from wizard_steps.measurement import tune
    from wizard_steps.prompt.templates import get_preset
    from wizard_steps.runtime.engine import GenaiBackend

    missing = [n for n in names if not (work / n / "genai_config.json").is_file()]
    if missing:
        raise SystemExit(f"not kept in {work}: {', '.join(missing)} (convert them without --clean)")
    overlay = tune.Candidate(tune.usable_cpus()).overlay()
    backends = {n: GenaiBackend(work / n, get_preset("chatml").template, overlay=overlay) for n in names}
    table = alternate(backends, lengths, 3, 64)
    for backend in backends.values():
        backend.close()
    print_table(f"Routes at {tune.usable_cpus()} threads", table, names[0], {})


def emulated_avx2(folder: Path, work: Path) -> dict[str, object]:
    """The same fidelity check on an emulated AVX2-only CPU (qemu-user, -cpu Haswell: no AVX-512,
    no VNNI), where onnxruntime picks its AVX2 kernels: the CPUs on which INT8 drifted."""
    command = ["qemu-x86_64", "-cpu", "Haswell", sys.executable, str(Path(__file__).resolve()),
               "--fidelity-only", str(folder), "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **OLIVE_ENV})
    line = next((t for t in reversed(done.stdout.splitlines()) if t.startswith("{")), None)
    return json.loads(line) if line else {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:160]}


def _avx2(row: dict[str, object]) -> str:
    avx2 = row.get("avx2")
    if not isinstance(avx2, dict):
        return "-"
    if "error" in avx2:
        return f"failed: {avx2['error']}"
    return f"{(avx2['ratio'] - 1) * 100:+.1f} %, {avx2['agreement']:.2f}"


def table(results: dict[str, dict[str, object]], facts: dict[str, object]) -> str:
    emulated = any(isinstance(row.get("avx2"), dict) for row in results.values())
    lines = [f"Source (HF fp32): perplexity {facts['perplexity']:.2f}, answers "
             f"{sum(facts['domain_passed'])}/{len(facts['domain_passed'])} domain queries.", "",  # type: ignore[arg-type]
             "| route | how | folder | convert | perplexity | vs source | greedy agreement "
             "| domain (of source's) |" + (" AVX2 (emulated): vs source, agreement |" if emulated else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if emulated else "")]
    for name in ROUTES:
        row = results.get(name)
        if not row:
            continue
        if row.get("error"):
            lines.append(f"| {name} | {ROUTES[name][0]} | - | {row['seconds']:.0f} s | failed: "
                         f"{row['error']} | | | |" + (" |" if emulated else ""))
            continue
        broken = row["ratio"] > 100  # type: ignore[operator]
        change = "broken output" if broken else f"{(row['ratio'] - 1) * 100:+.1f} %"  # type: ignore[operator]
        lines.append(f"| {name} | {ROUTES[name][0]} | {row['size'] / 1e6:.0f} MB | {row['seconds']:.0f} s | "
                     f"{row['perplexity']:.3g} | {change} | {row['agreement']:.2f} | "
                     f"{row['domain_both']}/{row['domain_source']} |" + (f" {_avx2(row)} |" if emulated else ""))
    lines += ["", "Speed: `--speed ROUTE,ROUTE,...` times kept folders side by side (each row's tok/s in "
              "results.json was measured alone and is only a rough guide on a shared machine)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default="", help=f"comma-separated, of: {', '.join(ROUTES)}")
    parser.add_argument("--work", type=Path, default=Path("/tmp/slmops-frontier"))
    parser.add_argument("--again", action="store_true", help="re-measure routes already cached")
    parser.add_argument("--clean", action="store_true", help="delete each converted folder once measured")
    parser.add_argument("--avx2", action="store_true",
                        help="also judge kept folders on an emulated AVX2-only CPU (needs qemu-user)")
    parser.add_argument("--speed", default="", help="kept routes to time side by side, the first as the base")
    parser.add_argument("--lengths", default="16,128,512", help="prompt lengths for --speed")
    parser.add_argument("--margins", default="", help="kept routes whose divergences from the source to explain")
    parser.add_argument("--fidelity-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fidelity_only:
        print(json.dumps(fidelity_only(args.fidelity_only, args.work)))
        return
    if args.margins:
        divergence_margins(args.margins.split(","), args.work)
        return
    if args.speed:
        side_by_side(args.speed.split(","), args.work, [int(n) for n in args.lengths.split(",")])
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in [r for r in args.routes.split(",") if r]:
        if name not in ROUTES:
            raise SystemExit(f"unknown route {name!r}; choose from {', '.join(ROUTES)}")
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        if name in results and not args.again:  # re-read: a run beside this one may have done it
            continue
        print(f"converting {name} ...", flush=True)
        folder, seconds, error = convert_route(name, args.work)
        row: dict[str, object] = {"seconds": seconds}
        if folder is None:
            row["error"] = error
        else:
            try:
                row.update(measure(folder, source_facts(args.work)))
            except Exception as exc:  # a broken model is a result too
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            if args.clean:
                shutil.rmtree(folder, ignore_errors=True)
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        results[name] = row  # re-read first: another run may have added rows meanwhile
        results_path.write_text(json.dumps(results, indent=1))
        print(json.dumps({name: row}), flush=True)
    if args.avx2:
        for name in [r for r in args.routes.split(",") if r] or list(results):
            if (args.work / name / "genai_config.json").is_file() and "avx2" not in results.get(name, {"avx2": 1}):
                print(f"judging {name} on an emulated AVX2 CPU ...", flush=True)
                avx2 = emulated_avx2(args.work / name, args.work)
                results = json.loads(results_path.read_text())
                results[name]["avx2"] = avx2
                results_path.write_text(json.dumps(results, indent=1))
                print(json.dumps({name: avx2}), flush=True)
    import platform

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    print(f"\nMachine: {cpu}, {os.cpu_count()} CPUs\n")
    print(table(results, source_facts(args.work)))


if __name__ == "__main__":
    main()
