"""KL divergence and top-1 agreement of the KV-quantized builds against the same INT4 build with an
fp32 KV cache (both fed one token per step): the damage of the KV cache's quantization alone."""
import numpy as np


def load(n):
    z = np.load(f"/tmp/kv/results/lp-builds_{n}-step.npz")
    return np.concatenate([z[f"arr_{i}"] for i in range(len(z.files) - 1)]).astype(np.float64), z["targets"]
base, t = load("q2-int4")
nll0 = -base[np.arange(len(t)), t]
for n in ["q2-int4-kv-int8_per_channel", "q2-int4-kv-int4_per_channel"]:
    lp, _ = load(n)
    kl = (np.exp(base) * (base - lp)).sum(1)
    nll = -lp[np.arange(len(t)), t]
    print(f"{n}: vs int4 fp32-KV: ppl ratio {np.exp(nll.mean()-nll0.mean()):.4f} KL mean {kl.mean():.4f} p99 {np.percentile(kl,99):.4f} top1 same {(lp.argmax(1)==base.argmax(1)).mean():.3f}")
