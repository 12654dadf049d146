"""Subprocess: turn the demo GGUF into an fp32 Hugging Face folder.

Run as ``python -m wizard_steps.model._demo_worker GGUF_FILE OUT_DIR``; prints ``@progress F STAGE``
lines that ``model_source.prepare_demo`` turns into events. Kept out of the caller's process so
that torch and transformers never load into the TUI.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Literal

from wizard_steps.core.i18n import N_  # stages are English here; the parent shows them with _()


def progress(fraction: float, stage: str) -> None:
    print(f"@progress {fraction:.2f} {stage}", flush=True)


def read_gguf_once() -> None:
    """What transformers computes again and again from the GGUF, computed once per process (the
    file is only read here, and both are read-only):
    - the header, read anew for the tokenizer, the config and the weights: each read walks 98,000
      vocabulary and merge strings one numpy slice at a time (4-5 s on one core, measured);
    - the tensor name map of the architecture, built anew for each of the model's few hundred
      modules as it maps the weights (5 s)."""
    import gguf

    real, readers = gguf.GGUFReader, {}

    def shared(path: str | os.PathLike[str], mode: Literal["r", "r+", "c"] = "r") -> object:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    setattr(gguf, "GGUFReader", shared)  # noqa: B010  (transformers imports both from gguf at each call)
    setattr(gguf, "get_tensor_name_map", functools.cache(gguf.get_tensor_name_map))  # noqa: B010


def main(gguf_file: str, out_dir: str) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    progress(0.05, N_("Importing transformers"))
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    read_gguf_once()

    gguf = Path(gguf_file)
    folder, name = gguf.parent, gguf.name
    progress(0.2, N_("Reading the tokenizer"))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    progress(0.35, N_("De-quantizing the GGUF weights"))
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    progress(0.7, N_("Building a plain fp32 model"))
    # A config saved with its GgufConfig makes the ONNX builder refuse the folder ("The gguf
    # quantized model is not currently supported") while Olive still exits 0: drop it.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["dtype"] = "float32"
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        print(f"State dict mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return 1
    model.eval()
    progress(0.85, N_("Saving the Hugging Face folder"))
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    progress(1.0, N_("Demo model ready"))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()  # everything is saved and printed: skip the teardown of torch (about 1.4 s)
    sys.stderr.flush()
    os._exit(code)
