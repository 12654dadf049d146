"""A comparison as people and programs read it: the one-line reason of the recommendation, a
Markdown table (the README's, the export's) and JSON (``slmops compare --json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from wizard_steps.conversion.precision import human_size
from wizard_steps.core.i18n import _, percent
from wizard_steps.core.i18n import number as _number
from wizard_steps.verdict.compare_measure import FIDELITY_TOLERANCE, Recommendation, Row
from wizard_steps.verdict.fidelity import KL_BOUND


def why_not(row: Row) -> str:
    """The first reason a candidate fails the checklist, short."""
    m = row.measurement
    if m is None:
        return row.error or _("not measured")
    if not m.fidelity_passed:
        if max(m.ratio, m.ratio_high) > 1 + FIDELITY_TOLERANCE:
            return _("perplexity {change} (up to {high})").format(
                change=percent((m.ratio - 1) * 100, 1, sign=True, space=False),
                high=percent((max(m.ratio, m.ratio_high) - 1) * 100, 1, sign=True, space=False))
        if m.kl_mean > KL_BOUND:
            return _("KL divergence {value}").format(value=_number(m.kl_mean, 3))
        return _("same first token {value}").format(value=percent(m.agreement * 100, 0))
    if not m.domain_passed:
        return _("lost {lost} of the source's {answered} answers").format(lost=m.domain_losses,
                                                                         answered=m.source_answered)
    return ""


def recommendation_reason(best: Row | None, rows: Sequence[Row]) -> str:
    """One line: why this candidate (the fastest that passes), and what was faster but failed."""
    if best is None or best.measurement is None:
        failing = "; ".join(f"{r.candidate}: {why_not(r)}" for r in rows)
        return _("No candidate passes the checklist on this machine ({failing}).").format(failing=failing)
    m = best.measurement
    length = min(m.gen_tps)
    reason = _("{name} is the fastest that passes the checklist: {speed} tok/s at {length} tokens, "
               "perplexity {change} against the source, {kept} of the source's {answered} answers kept").format(
        name=best.candidate, speed=_number(m.gen_tps[length]), length=length,
        change=percent((m.ratio - 1) * 100, 1, sign=True, space=False),
        kept=m.source_answered - m.domain_losses, answered=m.source_answered)
    faster = [r for r in rows if r.measurement is not None and not r.passed
              and r.measurement.gen_tps.get(length, 0.0) > m.gen_tps[length]]
    if faster:
        reason += _("; faster but failing: {rows}").format(
            rows=", ".join(f"{r.candidate} ({why_not(r)})" for r in faster))
    return reason + "."


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def to_markdown(result: Recommendation, title: str | None = None) -> str:
    """The comparison as a Markdown table, with the machine and the recommendation."""

    lengths = next((r.measurement.lengths for r in result.rows if r.measurement), (128, 512))
    per = "/".join(str(n) for n in lengths)
    lines = [f"## {title or _('Precisions compared on this machine')}", "",
             _("CPU: {cpu}. Speeds at {lengths}-token prompts; perplexity against the source on the "
               "evaluation text (95 % interval), KL divergence and same first token over the same tokens; "
               "domain queries answered (the source answers).").format(cpu=result.cpu, lengths=per), "",
             _("| precision | size | prompt tok/s ({lengths}) | generation tok/s ({lengths}) | perplexity "
               "(vs source) | KL divergence | same first token | domain queries | checklist |"
               ).format(lengths=per),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in result.rows:
        m = row.measurement
        star = " ★" if row.candidate == result.candidate else ""
        if m is None:
            lines.append(f"| {row.candidate}{star} | | | | | | | | ❌ {_cell(row.error)} |")
            continue
        verdict = _("✅ pass") if m.passed else "❌ " + _cell(why_not(row))
        lines.append("| " + " | ".join([
            row.candidate + star, human_size(m.size_bytes),
            " / ".join(_number(m.prompt_tps[n]) for n in lengths),
            " / ".join(_number(m.gen_tps[n]) for n in lengths),
            f"{_number(m.perplexity, 2)} ({percent((m.ratio - 1) * 100, 1, sign=True, space=False)}, "
            f"≤ {percent((m.ratio_high - 1) * 100, 1, sign=True, space=False)})",
            _number(m.kl_mean, 3), percent(m.agreement * 100, 0),
            f"{m.domain_answered}/{m.domain_total} ({m.source_answered})",
            verdict]) + " |")
    lines += ["", _("**Recommended: {name}.** {reason}").format(name=result.candidate or _("none"),
                                                               reason=result.reason), ""]
    return "\n".join(lines)


def to_json(result: Recommendation) -> str:
    """Machine output: one object per candidate with the measured fields (English, no _())."""
    rows = []
    for row in result.rows:
        m = row.measurement
        item: dict[str, object] = {"candidate": row.candidate, "precision": row.precision,
                                   "folder": row.folder, "reused": row.reused, "passed": row.passed,
                                   "error": row.error or None}
        if m is not None:
            item.update(size_bytes=m.size_bytes, threads=m.threads,
                        prompt_tokens_per_s={str(k): round(v, 1) for k, v in m.prompt_tps.items()},
                        generation_tokens_per_s={str(k): round(v, 1) for k, v in m.gen_tps.items()},
                        perplexity=round(m.perplexity, 3), source_perplexity=round(m.source_perplexity, 3),
                        perplexity_change=round(m.ratio - 1, 4), perplexity_ratio_high=round(m.ratio_high, 4),
                        kl_mean=round(m.kl_mean, 4), kl_p99=round(m.kl_p99, 4),
                        top1_agreement=round(m.agreement, 3),
                        evaluated_tokens=m.eval_tokens,
                        domain_queries=m.domain_total, domain_answered=m.domain_answered,
                        source_answered=m.source_answered, lost_in_conversion=m.domain_losses,
                        domain_passed=m.domain_passed, fidelity_passed=m.fidelity_passed)
        rows.append(item)
    return json.dumps({"model": result.model, "cpu": result.cpu, "recommended": result.candidate,
                       "reason": result.reason, "rows": rows}, indent=2)
