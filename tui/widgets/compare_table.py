"""The precisions compared on this machine, side by side: size, generation speed and perplexity
against the source as bars, the source's answers kept, and the checklist's verdict. Rows are
added as candidates finish; the recommended one carries a star."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from wizard_steps.conversion.precision import human_size
from wizard_steps.core.i18n import N_, _, number, percent
from wizard_steps.verdict.compare import Row
from wizard_steps.verdict.compare_report import why_not

BAR = 8
COLUMNS = (("candidate", N_("precision")), ("size", N_("size")), ("speed", N_("gen tok/s")),
           ("ppl", N_("perplexity")), ("answers", N_("answers")), ("verdict", N_("checklist")))


def bar(value: float, most: float, width: int = BAR) -> str:
    """A bar of ``width`` cells, full at ``most`` (eighth-cell steps)."""
    if most <= 0:
        return " " * width
    eighths = round(max(0.0, min(value / most, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


class CompareTable(DataTable):
    """Measured rows of a comparison (read-only; the screen chooses the precision)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        for key, header in COLUMNS:
            self.add_column(_(header), key=key)

    def show(self, rows: Sequence[Row], recommended: str | None = None) -> None:
        """Replace the rows (called as each candidate finishes, then with the recommendation)."""
        self.clear()
        measured = [r.measurement for r in rows if r.measurement is not None]
        fastest = max((m.gen_tps_focus for m in measured), default=0.0)
        worst = max((m.ratio - 1 for m in measured), default=0.0)
        for row in rows:
            m = row.measurement
            name = row.candidate + (" ★" if row.candidate == recommended else "")
            if m is None:
                self.add_row(Text(name), "", "", "", "", Text("✗ " + _("failed"), style="red"), key=row.candidate)
                continue
            verdict = (Text("✓ " + _("pass"), style="green") if row.passed
                       else Text("✗ " + why_not(row), style="red"))
            change = m.ratio - 1
            self.add_row(
                Text(name, style="bold" if row.candidate == recommended else ""),
                human_size(m.size_bytes),
                Text(bar(m.gen_tps_focus, fastest, 6) + " " + number(m.gen_tps_focus)),
                Text(bar(max(change, 0.0), worst or 1.0, 4) + " "
                     + percent(change * 100, 1, sign=True, space=False),
                     style="" if m.fidelity_passed else "red"),
                f"{m.source_answered - m.domain_losses}/{m.source_answered}",
                verdict, key=row.candidate)
