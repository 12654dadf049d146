"""Perplexity ratio and KL divergence of ONNX folders against a reference folder (the fp32 build of
the same builder), on 512-token windows of narrative.txt and technical.txt (the first WPT windows of
each, no history), all with onnxruntime_genai 0.18.0 (/tmp/kv/venv/bin/python).

Two ways to feed a window:
  whole  the window appended at once, the logits of every position read (how slmops' evaluation does
         it; in a prefill the attention reads this step's own K/V, so a quantized cache is hardly used)
  step   one token per step: every position attends to the cache written by the earlier steps
         (what generation does; this is where a quantized KV cache shows)
The reference is always fed 'whole' (its cache is fp32: both ways give the same logits).

    quality.py REF FOLDER[:mode] ... [--wpt 2] [--out f.json]
Each FOLDER is run in its own child process (one heavy process at a time).
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys

import numpy as np

TEXTS = ["/work/main/wizard_steps/data/eval/narrative.txt", "/work/main/wizard_steps/data/eval/technical.txt"]
W = 512


def windows(og, model, wpt):
    tok = og.Tokenizer(model)
    out = []
    for path in TEXTS:
        ids = [int(t) for t in tok.encode(open(path, encoding="utf-8").read())]
        out += [ids[i * W:(i + 1) * W] for i in range(wpt) if (i + 1) * W <= len(ids)]
    return out


def logprobs_of(folder, mode, wpt):
    import onnxruntime_genai as og
    model = og.Model(folder)
    res = []
    for win in windows(og, model, wpt):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=W, do_sample=False)
        gen = og.Generator(model, params)
        if mode == "whole":
            gen.append_tokens(win)
            logits = np.asarray(gen.get_output("logits"), dtype=np.float32).reshape(-1, 49152)
            assert len(logits) == len(win), logits.shape
        else:
            rows = []
            for t in win:
                gen.append_tokens([t])
                rows.append(np.asarray(gen.get_output("logits"), dtype=np.float32).reshape(-1)[-49152:])
            logits = np.stack(rows)
        logits = logits[:-1].astype(np.float64)          # position i predicts token i+1
        m = logits.max(1, keepdims=True)
        lp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
        res.append((lp, np.asarray(win[1:])))
        del gen
    return res


def child(folder, mode, wpt, out):
    res = logprobs_of(folder, mode, wpt)
    np.savez(out, *[lp.astype(np.float32) for lp, _ in res], targets=np.concatenate([t for _, t in res]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ref")
    p.add_argument("folders", nargs="+")
    p.add_argument("--wpt", type=int, default=2)
    p.add_argument("--out", default="")
    p.add_argument("--child", nargs=4)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]), a.child[3])
        return

    def run(folder, mode):
        path = f"/tmp/kv/results/lp-{folder.strip('/').replace('/', '_')}-{mode}.npz"
        subprocess.run([sys.executable, __file__, "x", "x", "--child", folder, mode, str(a.wpt), path], check=True)
        z = np.load(path)
        lps = [z[f"arr_{i}"] for i in range(len(z.files) - 1)]
        return np.concatenate(lps).astype(np.float64), z["targets"], [len(x) for x in lps]

    ref, tgt, sizes = run(a.ref, "whole")
    ref_nll = -ref[np.arange(len(tgt)), tgt]
    rows = []
    for spec in a.folders:
        folder, mode = ([*spec.rsplit(":", 1), "whole"])[:2] if ":" in spec else (spec, "whole")
        lp, t2, _ = run(folder, mode)
        assert (t2 == tgt).all()
        nll = -lp[np.arange(len(tgt)), tgt]
        kl = (np.exp(ref) * (ref - lp)).sum(1)
        # per-window ratios, then the overall
        bounds = np.cumsum([0, *sizes])
        win_ratio = [float(np.exp(nll[b:e].mean() - ref_nll[b:e].mean())) for b, e in itertools.pairwise(bounds)]
        row = {"folder": folder, "mode": mode, "ppl_ref": float(np.exp(ref_nll.mean())),
               "ppl": float(np.exp(nll.mean())), "ppl_ratio": float(np.exp(nll.mean() - ref_nll.mean())),
               "window_ratios": win_ratio, "kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)),
               "top1_same": float((lp.argmax(1) == ref.argmax(1)).mean()), "positions": len(tgt)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
