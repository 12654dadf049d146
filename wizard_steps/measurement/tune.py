"""Tune a converted folder for the machine it runs on: measure onnxruntime's thread setting
(``model.decoder.session_options.intra_op_num_threads`` in genai_config.json) and whether its
idle threads spin-wait (``session.intra_op.allow_spinning``), and keep the best.

onnxruntime's default ran the demo as if on one thread on a 2-core machine; Foundry Local reads
the same file, so a tuned folder is faster there too. The original file is kept byte for byte
so that ``undo`` restores it exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wizard_steps.core.errors import WizardError
from wizard_steps.core.events import Progress
from wizard_steps.core.i18n import _, ngettext, percent
from wizard_steps.core.i18n import number as _number
from wizard_steps.measurement.benchmark import prompt_of_length
from wizard_steps.runtime.engine import GenaiBackend, ReplyDone, ReplyOptions

BACKUP_NAME = ".genai_config.slmops-original.json"
RECORD_NAME = ".slmops-tuning.json"  # what the last tuning measured, for the summary; undo removes it
KEEP_MARGIN = 0.05  # how much faster a setting must be to win over the usable core count (and the current one)
# onnxruntime-genai passes a string-valued session option it does not know to onnxruntime as a
# session config entry (Foundry Local's runtime too). Spinning off: idle intra-op threads sleep
# instead of spin-waiting; x1.6 where the cores are shared, 4-8 % slower on an idle machine
# (benchmarks/levers.py), so only a measurement on the machine can choose it.
SPIN_KEY = "session.intra_op.allow_spinning"
SLEEP_MARGIN = 0.05  # how much faster sleeping threads must be than the setting chosen without them


class TuneError(WizardError):
    """The folder cannot be tuned (missing, broken or read-only genai_config.json)."""


@dataclass(frozen=True)
class Candidate:
    threads: int | None  # None: onnxruntime's own choice (the key is absent)
    spinning: bool = True  # False: idle threads sleep (SPIN_KEY "0"); True: onnxruntime's default

    @property
    def label(self) -> str:
        if self.threads is None:
            label = _("default")
        else:
            label = ngettext("{count} thread", "{count} threads", self.threads).format(count=self.threads)
        return label if self.spinning else _("{threads}, no spin-wait").format(threads=label)

    def overlay(self) -> dict:
        return {"model": {"decoder": {"session_options": {"intra_op_num_threads": self.threads or 0,
                                                          SPIN_KEY: "1" if self.spinning else "0"}}}}


@dataclass(frozen=True)
class TuneSample:
    candidate: Candidate
    length: int
    run: int
    tokens_per_s: float
    prompt_tokens_per_s: float


@dataclass(frozen=True)
class TuneResult:
    folder: Path
    best: Candidate
    current: Candidate
    focus_length: int
    speeds: dict[str, dict[int, float]] = field(default_factory=dict)  # label -> length -> tok/s
    changed: bool = False
    reason: str = ""

    @property
    def gain(self) -> float:
        before = self.speeds[self.current.label][self.focus_length]
        return self.speeds[self.best.label][self.focus_length] / before if before else 0.0


def usable_cpus() -> int:
    """CPUs this process may run on (affinity where the platform has it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def candidates() -> list[Candidate]:
    """onnxruntime's default, each thread count up to the usable cores, and the core count with
    idle threads sleeping (the one that wins on a shared machine)."""
    cores = usable_cpus()
    return [Candidate(None), *(Candidate(n) for n in range(1, cores + 1)), Candidate(cores, spinning=False)]


def _config_path(folder: Path) -> Path:
    return Path(folder) / "genai_config.json"


def read_config(folder: Path) -> dict:
    path = _config_path(folder)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        config["model"]["decoder"]
    except FileNotFoundError:
        raise TuneError(_("{folder} has no genai_config.json.").format(folder=folder),
                        _("Point to a folder converted by slmops convert.")) from None
    except (ValueError, KeyError, TypeError):
        raise TuneError(_("genai_config.json in {folder} is broken.").format(folder=folder),
                        _("Convert the model again, or restore the file with slmops tune --undo.")) from None
    return config


def current_candidate(folder: Path) -> Candidate:
    options = read_config(folder)["model"]["decoder"].get("session_options", {})
    threads = options.get("intra_op_num_threads")
    return Candidate(int(threads) if threads else None, str(options.get(SPIN_KEY, "1")) != "0")


def check_writable(folder: Path) -> None:
    path = _config_path(folder)
    probe = path.with_name(".slmops-write-probe")
    try:
        probe.write_text("")
        probe.unlink()
        with path.open("r+b"):
            pass
    except OSError as exc:
        raise TuneError(_("genai_config.json in {folder} cannot be written ({error}).").format(
                            folder=folder, error=exc.strerror),
                        _("Check the folder's permissions.")) from None


def apply(folder: Path, candidate: Candidate) -> None:
    """Write the setting atomically; keep the first original's bytes for undo."""
    folder = Path(folder)
    config = read_config(folder)
    check_writable(folder)
    path, backup = _config_path(folder), folder / BACKUP_NAME
    if not backup.exists():
        tmp = backup.with_name(backup.name + ".tmp")
        tmp.write_bytes(path.read_bytes())
        os.replace(tmp, backup)
    options = config["model"]["decoder"].setdefault("session_options", {})
    if candidate.threads is None:
        options.pop("intra_op_num_threads", None)
    else:
        options["intra_op_num_threads"] = candidate.threads
    if candidate.spinning:
        options.pop(SPIN_KEY, None)
    else:
        options[SPIN_KEY] = "0"
    tmp = path.with_name(".genai_config.json.tmp")
    tmp.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def undo(folder: Path) -> bool:
    """Restore the original genai_config.json byte for byte and forget any measurement (the folder
    is then as Olive wrote it, and a deploy measures it again); False when nothing was changed."""
    folder = Path(folder)
    backup = folder / BACKUP_NAME
    if not backup.exists():  # measured and kept, or never measured: only the record to forget
        with contextlib.suppress(OSError):
            (folder / RECORD_NAME).unlink(missing_ok=True)
        return False
    check_writable(folder)
    os.replace(backup, _config_path(folder))
    (folder / RECORD_NAME).unlink(missing_ok=True)
    return True


def record(folder: Path, candidate: Candidate, gain: float) -> None:
    """Note what was chosen and its measured gain beside the file (read by ``recorded``)."""
    tmp = folder / (RECORD_NAME + ".tmp")
    note = {"threads": candidate.threads, "spinning": candidate.spinning, "gain": round(gain, 2),
            "cpus": usable_cpus()}
    tmp.write_text(json.dumps(note) + "\n", encoding="utf-8")
    os.replace(tmp, folder / RECORD_NAME)


def recorded(folder: str | os.PathLike[str]) -> dict | None:
    """The setting in the folder's genai_config.json (threads, spinning) and the gain measured when
    it was chosen; None when the folder was never tuned (or the file cannot be read)."""
    folder = Path(folder)
    if not (folder / BACKUP_NAME).exists():
        return None
    try:
        now = current_candidate(folder)
        note = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        same = note.get("threads") == now.threads and note.get("spinning", True) == now.spinning
        gain = float(note["gain"]) if same else None
    except (TuneError, OSError, ValueError, KeyError, TypeError):
        return None
    return {"threads": now.threads, "spinning": now.spinning, "gain": gain}


def measure(folder: Path, template, lengths: tuple[int, ...] = (128, 512), new_tokens: int = 64,
            runs: int = 3, focus_length: int = 128, cancel: threading.Event | None = None,
            write: bool = True) -> Iterator[Progress | TuneSample | TuneResult]:
    """Try every candidate (one warm-up, then ``runs`` runs per length), pick the fastest at
    ``focus_length`` and write it; the usable core count wins unless another setting is KEEP_MARGIN
    faster than it, and any other setting must also beat the current one by KEEP_MARGIN."""

    folder = Path(folder)
    current = current_candidate(folder)
    if write:
        check_writable(folder)
    if focus_length not in lengths:
        lengths = (*lengths, focus_length)
    options = ReplyOptions(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    trials = candidates()
    if current not in trials:  # set on another machine (more cores): measured too, to compare with
        trials.append(current)
    speeds: dict[str, dict[int, float]] = {}
    for index, candidate in enumerate(trials):
        yield Progress(_("Trying {candidate}").format(candidate=candidate.label), index / len(trials))
        backend = GenaiBackend(folder, template, overlay=candidate.overlay())
        prompts = {n: prompt_of_length(backend, n) for n in lengths}
        per_length: dict[int, list[float]] = {n: [] for n in lengths}
        for length in lengths:
            for run in range(runs + 1):
                if cancel is not None and cancel.is_set():
                    return
                done = next(e for e in backend.stream(prompts[length], options, cancel)
                            if isinstance(e, ReplyDone))
                if run == 0:
                    continue  # warm-up
                per_length[length].append(done.stats.tokens_per_s)
                yield TuneSample(candidate, length, run, done.stats.tokens_per_s,
                                 done.stats.prompt_tokens_per_s)
        backend.close()
        speeds[candidate.label] = {n: statistics.median(v) for n, v in per_length.items()}
    if cancel is not None and cancel.is_set():  # stopped during the very last run: decide nothing
        return
    best = max(trials, key=lambda c: speeds[c.label][focus_length])
    # A near-tie goes to the usable core count: runs this short cannot split it, and side by side
    # the explicit count ran up to x1.8 faster than onnxruntime's default where a search had read
    # them as equal (benchmarks/tuning_gain.py --road). Another setting must beat it by KEEP_MARGIN.
    preferred = Candidate(usable_cpus())
    if best != preferred and speeds[best.label][focus_length] < speeds[preferred.label][focus_length] * (
            1 + KEEP_MARGIN):
        best = preferred
    current_speed = speeds[current.label][focus_length]
    best_speed = speeds[best.label][focus_length]
    if best == current or (best != preferred and best_speed < current_speed * (1 + KEEP_MARGIN)):
        reason = _("Kept {current}: {speed} tok/s at {length} tokens; no setting was more than {margin} "
                   "faster.").format(current=current.label, speed=_number(current_speed), length=focus_length,
                                     margin=percent(KEEP_MARGIN * 100))
        yield TuneResult(folder, current, current, focus_length, speeds, False, reason)
        return
    if write:
        apply(folder, best)
        record(folder, best, best_speed / current_speed)
    reason = _("Chose {best}: {speed} tok/s at {length} tokens against {current_speed} with {current} "
               "(x{gain}).").format(best=best.label, speed=_number(best_speed), length=focus_length,
                                    current_speed=_number(current_speed), current=current.label,
                                    gain=_number(best_speed / current_speed, 2))
    yield TuneResult(folder, best, current, focus_length, speeds, write, reason)

