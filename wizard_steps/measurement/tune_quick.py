"""The default road's short tuning, run by ``convert`` right after a conversion is validated: a
few seconds of the folder's thread setting against the usable core count (spin-waiting, and with
idle threads sleeping), the faster kept (with ``tune``'s undo backup and 5 % rule). The full search
stays in ``slmops tune``.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from wizard_steps.core.events import LogLine, Progress
from wizard_steps.core.i18n import _, percent
from wizard_steps.core.i18n import number as _number
from wizard_steps.measurement import tune
from wizard_steps.measurement.benchmark import prompt_of_length
from wizard_steps.measurement.tune import Candidate, apply, check_writable, current_candidate, record, usable_cpus
from wizard_steps.prompt import detection, templates
from wizard_steps.prompt.templates import render
from wizard_steps.runtime.engine import GenaiBackend

if TYPE_CHECKING:
    from wizard_steps.prompt.templates import PromptTemplate

# The timed prompt's length; tokens per candidate and round; rounds (at least, at most); seconds
# after which no new round starts. One round takes a block of tokens from each load in turn, on
# generators kept open (the prompt is paid once per load), and times each token: a round is about
# 0.2 s on the demo, and a block's median token is not moved by a neighbour's time slice.
# Before each block a pause lets the last load's idle threads stop spin-waiting: without it the
# block pays for them (measured on the demo, four loads, two of them the same setting: the same
# setting read 93 and 138 tok/s with no pause, within 3 % with 20 ms).
QUICK_PROMPT, QUICK_BLOCK, QUICK_ROUNDS, QUICK_BUDGET_S, QUICK_PAUSE_S = 32, 8, (3, 8), 2.0, 0.02


def _block(steps: Iterator[float]) -> float:
    """Tokens per second of the median token among the next ``QUICK_BLOCK``, taken after the
    pause (the first left out: it may still meet another load's threads)."""
    time.sleep(QUICK_PAUSE_S)
    times = [next(steps) for _ in range(QUICK_BLOCK)][1:]
    return 1.0 / statistics.median(times)


def needs_tuning(folder: Path) -> bool:
    """True for a folder no tuning has measured on a machine like this one: no record of a
    measurement beside genai_config.json, and a thread setting other than the usable core count.
    (A deploy of such a folder runs ``quick`` on its copy first.)"""
    folder = Path(folder)
    try:
        note = json.loads((folder / tune.RECORD_NAME).read_text(encoding="utf-8"))
        if note.get("cpus") in (None, usable_cpus()):  # records before "cpus" count as this machine's
            return False
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return current_candidate(folder) != Candidate(usable_cpus())
    except tune.TuneError:
        return False  # nothing to tune: the deploy's own checks say what is wrong


@dataclass(frozen=True)
class QuickTune:
    """What the short tuning did: the setting now in the file (``threads``, ``spinning``), the core
    count it tried, the gain of the written setting over the old one (or of the core count, where
    the old one was kept), and the two speeds; ``applied`` when the file was changed."""

    threads: int | None
    tried: int
    spinning: bool = True
    gain: float = 1.0
    applied: bool = False
    cancelled: bool = False
    error: str = ""
    default_tokens_per_s: float | None = None
    tuned_tokens_per_s: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def quick(folder: Path, source: Path | None = None, cancel: threading.Event | None = None,
          template: PromptTemplate | None = None,
          at: float = 0.99) -> Generator[Progress | LogLine, None, QuickTune]:
    """The default road's short tuning (a few seconds): the folder's setting against the usable
    core count and the core count with idle threads sleeping (``tune.SPIN_KEY``), in turn,
    generation speed compared. The core count is written unless the current setting is at least
    5 % faster; the sleeping threads replace the winner only where they are 5 % faster than it
    (a shared, busy machine).
    The measurement is recorded beside the file either way (``needs_tuning`` reads it). Returns
    what it did (a ``QuickTune``). ``template``
    (else the one detected in ``source``, else ChatML) shapes the timed prompt; ``at`` is the
    progress fraction to report.

    A folder it cannot measure or write is left as it is: the conversion stays good."""


    folder = Path(folder)
    cores = usable_cpus()
    current, tried = current_candidate(folder), Candidate(cores)
    calm = Candidate(cores, spinning=False)
    result = QuickTune(threads=current.threads, tried=cores, spinning=current.spinning)
    if current == tried:
        return result
    trials = [current, tried] + ([calm] if calm != current else [])
    if template is None:
        try:
            template = templates.get_preset(detection.detect(source).preset_key if source else "chatml").template
        except Exception:  # any prompt works to time the threads
            template = templates.get_preset("chatml").template
    if calm in trials:
        yield Progress(_("Tuning for this machine: {current} against {tried} and {sleeping}").format(
            current=current.label, tried=tried.label, sleeping=calm.label), at)
    else:
        yield Progress(_("Tuning for this machine: {current} against {tried}").format(
            current=current.label, tried=tried.label), at)
    backends: dict[Candidate, GenaiBackend] = {}
    speeds: dict[Candidate, list[float]] = {candidate: [] for candidate in trials}

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    try:
        check_writable(folder)
        for candidate in trials:
            backends[candidate] = GenaiBackend(folder, template, overlay=candidate.overlay())
        ids = backends[current].encode(render(template, prompt_of_length(backends[current], QUICK_PROMPT)))
        least, most = QUICK_ROUNDS
        steps = {c: backends[c].decode_times(ids, QUICK_BLOCK * (most + 1)) for c in trials}
        for candidate in trials:  # warm-up: each load's first tokens are not counted
            _block(steps[candidate])
        deadline, rounds = time.monotonic() + QUICK_BUDGET_S, 0
        while not stopped() and (rounds < least or (rounds < most and time.monotonic() < deadline
                                                    and not _decided(speeds, current, tried, calm))):
            first = rounds % len(trials)  # each goes first in turn
            for candidate in trials[first:] + trials[:first]:
                speeds[candidate].append(_block(steps[candidate]))
            rounds += 1
    except Exception as exc:  # a model that loads for Olive's check but not here: keep it untuned
        error = (str(exc).splitlines() or [type(exc).__name__])[0]
        yield LogLine(_("Tuning skipped: {error}").format(error=error))
        return replace(result, error=error)
    finally:
        steps = {}
        for backend in backends.values():
            backend.close()
    if stopped():
        yield LogLine(_("Tuning cancelled; genai_config.json is left as it was."))
        return replace(result, cancelled=True)
    speed = {candidate: statistics.median(v) for candidate, v in speeds.items()}
    before = speed[current]

    def ratio(candidate: Candidate) -> float:  # rounded once: the rule and the report see one figure
        return _ratio(speed, candidate, current)

    chosen = _choose(speed, current, tried, calm)
    reported = chosen if chosen != current else tried  # kept: the report says how the core count did
    gain = ratio(reported)
    result = replace(result, gain=gain, default_tokens_per_s=round(before, 1),
                     tuned_tokens_per_s=round(speed[reported], 1))
    if chosen != current:
        apply(folder, chosen)
        record(folder, chosen, gain)
        result = replace(result, threads=chosen.threads, spinning=chosen.spinning, applied=True)
    else:  # measured and kept: noted, so a deploy of this folder does not measure it again
        with contextlib.suppress(OSError):
            record(folder, current, gain)
    measured = "; ".join(_("{setting} {speed} tok/s").format(setting=c.label, speed=_number(speed[c]))
                         for c in trials)
    yield LogLine(_("Tuning: {measured}: kept {kept}.").format(measured=measured, kept=chosen.label))
    return result


def _ratio(speed: dict[Candidate, float], candidate: Candidate, current: Candidate) -> float:
    """``candidate``'s speed over the current setting's, rounded once: the rule and the report see
    one figure."""
    return round(speed[candidate] / speed[current], 2) if speed[current] else 0.0


def _choose(speed: dict[Candidate, float], current: Candidate, tried: Candidate, calm: Candidate) -> Candidate:
    """The rule, on one speed per candidate. The usable core count unless the current setting is
    clearly (5 %) faster: a few seconds cannot split a near-tie, and full searches (slmops tune)
    keep choosing the explicit count (side by side x1.5 here where the short measurement read
    x1.01: benchmarks/tuning_gain.py --road). Sleeping threads must beat that choice clearly: they
    cost 4-8 % on an idle machine."""
    chosen = tried if _ratio(speed, tried, current) >= 1 - tune.KEEP_MARGIN else current
    if calm in speed and calm != chosen and _ratio(speed, calm, current) >= round(
            _ratio(speed, chosen, current) * (1 + tune.SLEEP_MARGIN), 2):
        chosen = calm
    return chosen


def _decided(speeds: dict[Candidate, list[float]], current: Candidate, tried: Candidate, calm: Candidate) -> bool:
    """True when the rounds' medians make a choice that stands with any one round left out: a
    single outlying round does not decide it, so the tuning stops there (on a quiet machine after
    the first three). A choice at the rule's edge, or rounds split more than one outlier, go on to
    QUICK_ROUNDS' most or the budget."""
    rounds = min(len(v) for v in speeds.values())
    if rounds < 2:
        return False

    def choice(kept: range | list[int]) -> Candidate:
        return _choose({c: statistics.median([v[i] for i in kept]) for c, v in speeds.items()},
                       current, tried, calm)

    chosen = choice(range(rounds))
    return all(choice([i for i in range(rounds) if i != out]) == chosen for out in range(rounds))


def describe(tuned: QuickTune) -> str:
    """One line for the CLI, the unattended run and the summary, from what ``quick`` did."""
    setting = (Candidate(tuned.threads, tuned.spinning).label if isinstance(tuned.threads, int)
               else _("onnxruntime's default threads"))
    if tuned.applied:
        if tuned.gain < 1 + tune.KEEP_MARGIN:
            return _("tuned for this machine: {setting} (x{gain} here, within noise of onnxruntime's "
                     "default)").format(setting=setting, gain=_number(tuned.gain, 2))
        return _("tuned for this machine: {setting}, x{gain}").format(setting=setting, gain=_number(tuned.gain, 2))
    if tuned.cancelled or tuned.error:
        why = _("cancelled") if tuned.cancelled else _("not measured")
        return _("not tuned ({why}): {setting} kept").format(why=why, setting=setting)
    if tuned.tuned_tokens_per_s is None:  # the file already held the usable core count
        return _("tuned for this machine: {setting}").format(setting=setting)
    return _("tuned for this machine: {setting} kept ({tried} was x{gain}, more than {margin} slower)").format(
        setting=setting, tried=Candidate(tuned.tried).label, gain=_number(tuned.gain, 2),
        margin=percent(tune.KEEP_MARGIN * 100))
