"""slmops' wizard logic: every step as plain functions and typed events, no UI.

The package is split into rooms that follow the road (``core``, ``model``, ``prompt``,
``runtime``, ``measurement``, ``conversion``, ``deployment``, ``verdict``, ``road``); a room
reads only the rooms before it in that list, and nothing here imports the terminal UI
(``tests/test_layering.py`` holds both).

Imports sit at the top of modules, with one exception: the libraries in ``LAZY`` are imported
inside the functions that need them, so that starting the wizard (or ``slmops --help``) loads none
of them. They are the heavy runtimes and converters, and the UI libraries a headless command never
needs; a module of ours that imports one of them at its top is imported lazily too.
"""

from wizard_steps.core.errors import WizardError

LAZY = frozenset({
    # heavy: seconds and hundreds of MB each
    "torch", "transformers", "peft", "olive", "onnx", "onnxruntime", "onnxruntime_genai", "foundry_local_sdk",
    "numpy", "tokenizers", "tqdm", "gguf",
    # the interfaces a headless command does not need (the TUI, the browser view, the plain mode)
    "textual", "textual_serve", "aiohttp", "aiohttp_jinja2", "jinja2", "questionary",
})

__all__ = ["LAZY", "WizardError"]
__version__ = "0.1.0"
