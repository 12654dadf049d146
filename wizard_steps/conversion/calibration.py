"""Calibration text for quantizers that learn from data (GPTQ): a local text, checked before
Olive starts, and the Olive data config that feeds it through our user script.

The shipped text (wizard_steps/data/calibration_text.txt) is our own prose and chat, distinct
from the fidelity text that judges the result, so the judge never sees what the quantizer saw.
"""

from __future__ import annotations

import os
from pathlib import Path

from wizard_steps.core.errors import PlanError
from wizard_steps.core.i18n import _

MIN_WORDS = 100  # fewer words give GPTQ too few tokens to estimate its Hessians


def default_text() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "calibration_text.txt"


def check_text(path: str | os.PathLike[str] | None) -> Path:
    """The calibration text's resolved path; PlanError (one sentence) when it is missing, not
    UTF-8 text, empty, or too short."""
    path = Path(path).expanduser().resolve() if path else default_text()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(_("The calibration text {path} does not exist.").format(path=path),
                        _("Give a plain-text file of a few hundred words like your model's use.")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(_("The calibration text {path} cannot be read as UTF-8 text ({error}).").format(
                            path=path, error=getattr(exc, "strerror", None) or exc),
                        _("Give a plain-text UTF-8 file.")) from None
    words = len(text.split())
    if words < MIN_WORDS:
        raise PlanError(_("The calibration text {path} holds {words} words; GPTQ needs at least "
                          "{least}.").format(path=path, words=words, least=MIN_WORDS),
                        _("Give a plain-text file of a few hundred words like your model's use."))
    return path


def olive_data_config(model_path: str | os.PathLike[str], text_path: str | os.PathLike[str],
                      seq_len: int = 256) -> dict[str, object]:
    """An Olive data config reading ``text_path`` through wizard_steps/conversion/_olive_calibration.py."""
    script = Path(__file__).resolve().parent / "_olive_calibration.py"
    return {"name": "slmops_calibration", "user_script": str(script),
            "load_dataset_config": {"type": "slmops_text_dataset", "params": {
                "model_path": str(model_path), "text_path": str(text_path), "seq_len": seq_len,
                "stride": seq_len // 2, "max_samples": 64}}}
