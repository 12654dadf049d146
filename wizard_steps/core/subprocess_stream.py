"""Run a child process and stream its output line by line, cancellable within a fraction of a
second on every platform (``Popen.terminate``/``kill``, no POSIX-only signals)."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

_POLL_S = 0.1
_KILL_GRACE_S = 1.0


def _pump(stream, lines: queue.Queue) -> None:
    for raw in iter(stream.readline, ""):
        lines.put(raw.rstrip("\r\n"))
    lines.put(None)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill if it has not gone within a second."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stream_process(
    command: list[str],
    cancel: threading.Event | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, object]]:
    """Yield ("line", text) for each output line (stdout and stderr merged), then ("exit", code),
    or ("cancelled", None) once ``cancel`` is set. Closing the iterator kills the process too."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    full_env.setdefault("PYTHONIOENCODING", "utf-8")
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        while True:
            if cancel is not None and cancel.is_set():
                stop_process(process)
                yield ("cancelled", None)
                return
            try:
                line = lines.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if line is None:
                break
            yield ("line", line)
        yield ("exit", process.wait())
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
