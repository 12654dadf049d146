"""What to do when a converted model fails the quality checklist: the precision that keeps closer
to the source (INT8 after INT4, FP32 after INT8), or the one a comparison on this machine found to
pass; and the one step that tries it: convert, then run the checklist again on the new folder.

A remedy never claims more than was measured: "passes here" only when a comparison ran on this
machine for this model; otherwise "try it", and the checklist that follows says whether it holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wizard_steps.conversion import convert
from wizard_steps.conversion.precision import Precision, human_size
from wizard_steps.core.checks import DOMAIN, FIDELITY, QualityCheck
from wizard_steps.core.events import Failed, Finished
from wizard_steps.core.i18n import _
from wizard_steps.model.adapter import inspect_model_or_adapter
from wizard_steps.model.model_source import folder_size
from wizard_steps.prompt.templates import PromptTemplate
from wizard_steps.runtime.engine import GenaiBackend
from wizard_steps.verdict import compare, quality
from wizard_steps.verdict.domain import DomainQuery

CLOSER = {Precision.INT4: Precision.INT8, Precision.INT8: Precision.FP32}


@dataclass(frozen=True)
class Remedy:
    """A precision to convert to, and the one line that says why."""

    precision: Precision
    reason: str
    measured_here: bool  # a comparison on this machine found it to pass

    @property
    def action(self) -> str:
        return _("Convert to {precision} and check again").format(precision=self.precision.value.upper())


@dataclass(frozen=True)
class Converted:
    """The remedy's conversion is done (or an identical one was found): the folder now judged."""

    path: Path
    precision: Precision
    reused: bool


def remedy_for(checks: Sequence[QualityCheck], precision: str | None,
               model_dir: str | Path | None) -> Remedy | None:
    """The fix to offer when the checklist failed on what conversion changes (the domain answers or
    the fidelity); None when nothing failed there or nothing is closer to the source."""
    failed = [c.name for c in checks if c.passed is False and c.name in (DOMAIN, FIDELITY)]
    if not failed or precision is None or model_dir is None:
        return None
    current = Precision(precision)
    saved = compare.load_saved(model_dir)
    if saved is not None and saved.candidate is not None:
        best = compare.candidates()[saved.candidate].precision
        if best is not current:
            return Remedy(best, _("{precision} passes the checklist on this machine ({cpu}, compared here): "
                                  "convert to it.").format(precision=best.value.upper(), cpu=saved.cpu), True)
    closer = CLOSER.get(current)
    if closer is None:
        return None
    what = _(" and ").join(_(name) for name in failed)
    return Remedy(closer, _("{what} failed at {current}. {precision} keeps closer to the source (on the demo: "
                            "KL divergence 0.003 against 0.16 for INT4, measured on an AMD EPYC); convert "
                            "to it and check again here.").format(
                                what=what, current=current.value.upper(), precision=closer.value.upper()),
                  False)


def convert_and_check(model_dir: str | Path, precision: Precision, template: PromptTemplate,
                      queries: Sequence[DomainQuery], cancel: threading.Event | None = None,
                      source: str | Path | None = None, eval_windows: int | None = None) -> Iterator[object]:
    """Convert the model to ``precision`` (slmops' own folder; an identical earlier conversion is
    used as it is), then run the checklist on the result: the conversion's events, ``Converted``,
    then each QualityCheck. A failed or cancelled conversion ends with its Failed."""

    info = inspect_model_or_adapter(model_dir)
    out = convert.default_output_dir(info, precision)
    plan = convert.make_plan(info.path, out, precision, replace_existing=out.is_dir())
    if convert.converted_before(plan):
        folder, reused = out, True
    else:
        final: object = None
        for event in convert.convert(plan, cancel):
            if isinstance(event, (Finished, Failed)):
                final = event
            else:
                yield event
        if not isinstance(final, Finished):
            yield final if isinstance(final, Failed) else Failed(_("The conversion gave no result."))
            return
        folder, reused = final.path, False
    yield Converted(folder, precision, reused)
    if cancel is not None and cancel.is_set():
        return
    backend = GenaiBackend(folder, template)
    try:
        yield from quality.iter_checklist(backend, queries=queries, source=source, converted=folder,
                                          eval_windows=eval_windows, cancel=cancel)
    finally:
        backend.close()


def describe_converted(event: Converted) -> str:
    return (_("Converted earlier with the same settings: {folder} ({size}); checking it…") if event.reused
            else _("Converted to {precision}: {folder} ({size}); checking it…")).format(
        precision=event.precision.value.upper(), folder=event.path, size=human_size(folder_size(event.path)))
