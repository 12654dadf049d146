"""Every location slmops reads or writes, in one place.

By default the platform's cache/config/data directories (platformdirs); when the environment
variable ``SLMOPS_HOME`` is set, everything moves under that one root (tests, classrooms).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "slmops"
HOME_ENV = "SLMOPS_HOME"


def home() -> Path | None:
    """The root that overrides every location, or None when the platform defaults apply."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def _dir(kind: str) -> Path:
    root = home()
    if root is not None:
        return root / kind
    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    if kind == "config":
        return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    return _dir("cache")


def config_dir() -> Path:
    return _dir("config")


def data_dir() -> Path:
    return _dir("data")


def demo_model_dir() -> Path:
    """Where the demo model (SmolLM2-135M-Instruct as an fp32 HF folder) is prepared once."""
    return cache_dir() / "demo" / "SmolLM2-135M-Instruct"


def models_dir() -> Path:
    """Default parent of converted ONNX model folders."""
    return data_dir() / "models"


def olive_cache_dir() -> Path:
    """Olive's own run cache, kept under ours so it can be cleaned (it grows by ~250 MB a run)."""
    return cache_dir() / "olive"


def logs_dir() -> Path:
    return data_dir() / "logs"


def foundry_cache_dir() -> Path:
    """The Foundry Local model cache the SDK deploys into (overridable per call)."""
    return data_dir() / "foundry"


def state_file() -> Path:
    return config_dir() / "state.json"


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
