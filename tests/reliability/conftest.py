"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tiny_llama: Path) -> Path:
    """The session's tiny Llama, under a path with accents and spaces (which must work everywhere)."""
    return tiny_llama
