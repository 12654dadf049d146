"""How conversion time grows with the model for the INT4 algorithms: a random Llama of a given
shape (the weights' values do not change the work), converted by slmops with k_quant_mixed and
with QuaRot + GPTQ, one after the other, each timed whole (Olive, the load-and-generate check).

    .venv/bin/python benchmarks/quant_time.py [--layers 24 --hidden 896 --intermediate 4864]

The defaults are Qwen2.5-0.5B's shape (about 0.5 B parameters with the demo's vocabulary); the demo
itself is 30 layers of 576 / 1536. Prints seconds per algorithm and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability.helpers import make_tiny_model  # the test suite's random Llama, any shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--intermediate", type=int, default=4864)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--algorithms", default="k_quant_mixed,quarot_gptq")
    args = parser.parse_args()
    from wizard_steps.conversion import convert
    from wizard_steps.conversion.precision import Int4Algorithm, Int4Settings, Precision
    from wizard_steps.core.events import Failed, Finished
    from wizard_steps.model import model_source

    work = Path(tempfile.mkdtemp(prefix="slmops-quant-time-"))
    try:
        model = make_tiny_model(model_source.ensure_demo(), work / "model", shape={
            "num_hidden_layers": args.layers, "hidden_size": args.hidden, "intermediate_size": args.intermediate,
            "num_attention_heads": args.heads, "num_key_value_heads": args.kv_heads,
            "head_dim": args.hidden // args.heads})
        params = model_source.inspect_model(model).num_parameters
        print(f"random Llama: {args.layers} layers, {args.hidden} / {args.intermediate}"
              + f", {params / 1e6:.0f} M parameters", flush=True)
        seconds: dict[str, float] = {}
        for name in args.algorithms.split(","):
            plan = convert.make_plan(model, work / name, Precision.INT4,
                                     int4=Int4Settings(algorithm=Int4Algorithm(name)))
            plan = dataclasses.replace(plan, tune=False)
            started = time.monotonic()
            final = None
            for event in convert.convert(plan):
                if isinstance(event, (Finished, Failed)):
                    final = event
            seconds[name] = time.monotonic() - started
            outcome = "ok" if isinstance(final, Finished) else f"failed: {getattr(final, 'reason', final)}"
            print(f"{name:16s} {seconds[name]:7.1f} s ({outcome})", flush=True)
            shutil.rmtree(work / name, ignore_errors=True)
        names = list(seconds)
        if len(names) > 1:
            print(f"{names[1]} / {names[0]}: x{seconds[names[1]] / seconds[names[0]]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
