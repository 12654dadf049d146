"""Reading Olive's log: stages and a real progress fraction, and the reason of a failure."""

from __future__ import annotations

import re

from wizard_steps.conversion.sensitivity import ANNOUNCE as SENSITIVITY_LINE
from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import _

_LAYER = re.compile(r"^Reading layer (\d+)")
_RUNNING_PASS = re.compile(r"Running pass (\S+)")
_PASS_DONE = re.compile(r"Pass (\S+) finished in ([\d.]+) seconds")
_QUANTIZER = re.compile(r"^Progress: \[[# ]*\]\s*([\d.]+)%")  # onnxruntime's weight quantizer, drawn with \r
_LAYERS_DONE = re.compile(r"^Processing layers (\d+)/(\d+)")  # Gptq's layer counter (our worker prints it)
_ERROR_LINE = re.compile(r"^(?:[\w.]+(?:Error|Exception|Exit)|AssertionError|KeyError)\b.*")


def is_live(line: str) -> bool:
    """A progress-bar line that redraws the one before it (printed after a carriage return)."""
    return _QUANTIZER.match(line.strip()) is not None


def split_live(line: str) -> tuple[str, str]:
    """The progress bar at the start of a line and what follows it on the same line (the bar's
    last draw ends with no line break, so the next log line is glued to it); ("", line) when the
    line holds no bar."""
    match = _QUANTIZER.match(line.strip())
    if match is None:
        return "", line
    return match.group(0), line.strip()[match.end():]


class LogProgress:
    """Turns the ModelBuilder's "Reading layer N" lines, and the weight quantizer's own
    "Progress: [###   ] N%" bar, into a fraction of the whole run."""

    QUANTIZER_START = 0.5  # of the builder's share, when a quantizer with its own bar follows

    def __init__(self, num_layers: int, two_passes: bool = False, quantizer: bool = False) -> None:
        self.num_layers = max(num_layers, 1)
        self.builder_span = 0.6 if two_passes else 0.9
        self.quantizer = quantizer  # k-quant: saving takes most of the run, and draws a bar
        self.passes_seen = 0

    def _builder(self, share: float) -> float:
        if self.quantizer:  # reading the layers is the short part; the quantizer's bar the long one
            share = share * self.QUANTIZER_START / 0.93 if share <= 0.93 else share
        return 0.02 + share * (self.builder_span - 0.02)

    def update(self, line: str) -> Progress | None:
        text = line.strip()
        if match := _QUANTIZER.match(text):
            done = min(max(float(match.group(1)) / 100, 0.0), 1.0)
            start = self.QUANTIZER_START if self.quantizer else 0.93
            share = start + done * (0.97 - start)  # already on the builder's scale
            return Progress(_("Quantizing the weights: {percent} %").format(percent=round(done * 100)),
                            0.02 + share * (self.builder_span - 0.02))
        if match := _RUNNING_PASS.search(text):
            self.passes_seen += 1
            name = match.group(1).split(":")[0]
            # the builder, the quantizer after it, then short passes (renaming an output)
            fraction = {1: 0.02, 2: self.builder_span + 0.02}.get(self.passes_seen, 0.93)
            return Progress(_("Running pass {name}").format(name=name), fraction)
        if self.passes_seen > 1:
            if match := _PASS_DONE.search(text):
                return Progress(_("Pass {name} finished").format(name=match.group(1).split(":")[0]),
                                0.92 if self.passes_seen == 2 else 0.94)
            return None
        if text.startswith("Reading embedding layer"):
            return Progress(_("Reading embedding layer"), self._builder(0.05))
        if match := _LAYER.match(text):
            layer = int(match.group(1))
            share = 0.05 + 0.8 * (layer + 1) / self.num_layers
            return Progress(_("Reading layer {layer}/{layers}").format(layer=layer + 1, layers=self.num_layers),
                            self._builder(share))
        if text.startswith("Reading final norm"):
            return Progress(_("Reading final norm"), self._builder(0.87))
        if text.startswith("Reading LM head"):
            return Progress(_("Reading LM head"), self._builder(0.9))
        if text.startswith("Saving ONNX model"):
            return Progress(_("Saving ONNX model"), self._builder(0.93))
        if match := _PASS_DONE.search(text):
            return Progress(_("Pass {name} finished").format(name=match.group(1).split(":")[0]),
                            self.builder_span)
        if "Saved output model to" in text:
            return Progress(_("Validating: loading with onnxruntime-genai, generating"), 0.95)
        return None


class CalibratedProgress:
    """Olive's log with a calibrated quantizer (Gptq, layer by layer) before the builder: its
    layer counter fills the first part of the bar, the usual tracker the rest."""

    SPAN = 0.6  # GPTQ takes most of the run: minutes, against the builder's tens of seconds

    def __init__(self, inner: LogProgress, pass_name: str) -> None:
        self.inner, self.pass_name, self.quantizing = inner, pass_name, False

    def update(self, line: str) -> Progress | None:
        text = line.strip()
        if f"Running pass {self.pass_name}:" in text:
            self.quantizing = True
            return Progress(_("Calibrating and quantizing with GPTQ (torch)"), 0.02)
        if self.quantizing:
            if match := _LAYERS_DONE.match(text):
                done, total = int(match.group(1)), max(int(match.group(2)), 1)
                return Progress(_("GPTQ: layer {layer}/{layers} quantized").format(layer=done, layers=total),
                                0.02 + (self.SPAN - 0.02) * min(done / total, 1.0))
            if f"Pass {self.pass_name}:" in text and "finished" in text:
                self.quantizing = False
                return Progress(_("GPTQ finished"), self.SPAN)
            return None
        step = self.inner.update(line)
        if step is None or step.fraction is None:
            return step
        return Progress(step.stage, self.SPAN + step.fraction * (1 - self.SPAN))


class RotateProgress:
    """Olive's log with QuaRot before the quantizer (seconds, no data): its own stage, and its
    log lines kept from the tracker after it, which counts passes and reads layer numbers."""

    def __init__(self, inner: LogProgress | CalibratedProgress, pass_name: str) -> None:
        self.inner, self.pass_name = inner, pass_name
        self.rotating = self.between = self.rotated = False

    def update(self, line: str) -> Progress | None:
        if f"Running pass {self.pass_name}:" in line:
            if self.rotated:  # again, after the measurement of sensitivity: Olive's cache has it
                self.between = True
                return None
            self.rotating = True
            return Progress(_("Rotating the weights (QuaRot)"), 0.01)
        if self.rotating:
            if f"Pass {self.pass_name}:" in line and "finished" in line:
                self.rotating, self.between, self.rotated = False, True, True
                return Progress(_("Weights rotated"), 0.02)
            return None
        if line.strip().startswith(SENSITIVITY_LINE):
            return Progress(_("Measuring which layers lose most at 4 bits"), 0.02)
        if self.between:  # the rotated model saved for the measurement, or loaded from the cache
            if _RUNNING_PASS.search(line) is None:
                return None
            self.between = False
        return self.inner.update(line)


def failure_reason(lines: list[str]) -> str:
    """The one line that says why: the last exception line of a traceback, else the last
    error-looking log line, else the last line."""
    for line in reversed(lines):
        if _ERROR_LINE.match(line.strip()):
            return line.strip()
    for line in reversed(lines):
        if "[ERROR]" in line or "[CRITICAL]" in line:
            return line.split("]")[-1].strip() or line.strip()
    meaningful = [line.strip() for line in lines if line.strip()]
    return meaningful[-1] if meaningful else _("the process printed nothing")
