"""slmops' wizard logic: every step as plain functions and typed events, no UI.

Nothing here imports Textual, and heavy libraries (torch, transformers, olive,
onnxruntime_genai, foundry_local_sdk) are imported lazily inside the functions that need them.
"""

from wizard_steps.core.errors import WizardError

__all__ = ["WizardError"]
__version__ = "0.1.0"
