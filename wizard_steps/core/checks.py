"""What every quality check shares: the verdict type, the checks' names, the error family and the
texts shipped with slmops. A module of its own so that ``quality`` and ``fidelity`` both build on
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import N_

# The checks' names stay English (keys, and --json values); shown with _(name).
DOMAIN, FORMAT, MEMORY, LENGTHS, EDGES, FIDELITY = (
    N_("Domain queries"), N_("Response format"), N_("No memory leak in long use"),
    N_("Consistent performance across input lengths"), N_("Edge cases and invalid input"),
    N_("Fidelity to the source model"))
DEFAULT_SYSTEM = "You are a helpful assistant."
FIDELITY_QUESTIONS = ("What is the capital of France?", "Give me three tips for staying healthy.",
                      "Explain what a computer is in one sentence.", "Write a short poem about the sea.")


class QualityError(WizardError):
    """A quality check cannot run on what it was given (a bad queries file, schema, folder...)."""


F = TypeVar("F")


@dataclass(frozen=True)
class QualityCheck(Generic[F]):
    """One checklist item's verdict: ``passed`` is None when it was skipped (``evidence`` says why);
    ``figures`` are the item's own measurements (``FidelityFigures``, ``DomainVerdict``...), None
    when skipped."""

    name: str
    passed: bool | None
    evidence: str
    figures: F | None = None

    @property
    def status(self) -> str:
        return "skipped" if self.passed is None else "pass" if self.passed else "fail"


@dataclass(frozen=True)
class CheckFailed:
    """The figures of an item that could not run on what it was given (its one sentence)."""

    error: str


def skipped(name: str, note: str) -> QualityCheck[Any]:
    return QualityCheck(name, None, note)


def data_file(name: str) -> Path:
    """A file shipped in wizard_steps/data (the demo queries, the fidelity text)."""
    return Path(str(resources.files("wizard_steps") / "data" / name))


def fidelity_text() -> str:
    return data_file("fidelity_text.txt").read_text(encoding="utf-8")


def clip(text: str, size: int = 60) -> str:
    """One line of at most ``size`` characters, for evidence lines."""
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"
