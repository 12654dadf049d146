"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model under a path with accents and spaces (which must work everywhere)."""
    return make_tiny_model(demo_model, tmp_path_factory.mktemp("tiny") / "modèle ünïcode" / "with space")
