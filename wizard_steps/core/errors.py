"""The one family of errors a user can cause; each carries a one-sentence message and a fix."""

from __future__ import annotations


class WizardError(Exception):
    """A problem with the user's input or environment, shown as one sentence (no traceback)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ModelFolderError(WizardError):
    """The model folder cannot be used as it is."""


class PlanError(WizardError):
    """A conversion plan or its settings are invalid."""


class DeployError(WizardError):
    """Deployment to Foundry Local failed or was refused."""


class Cancelled(WizardError):
    """The user cancelled a long step."""
