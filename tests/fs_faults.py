"""File-system faults for tests, made the way the user at hand can: a folder that cannot be
written (chmod for an ordinary user; chattr +i or a read-only bind mount for root, whom chmod
does not stop) and the command prefix that gives a child process a private, size-limited disk
(a tmpfs in its own mount namespace; an ordinary user gets one in a user namespace). A test skips
only where none of these works, and its reason says exactly what failed."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PROBE = ".slmops-write-probe"


def _run(*command: str) -> str | None:
    """None when the command succeeded, else what it said (or that it is missing)."""
    if shutil.which(command[0]) is None:
        return f"{command[0]} is not installed"
    done = subprocess.run(command, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit code {done.returncode}")


@contextlib.contextmanager
def _chmod_read_only(folder: Path) -> Iterator[None]:
    paths = [folder, *folder.rglob("*")]
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in paths if not path.is_symlink()}
    for path, mode in sorted(modes.items(), key=lambda item: -len(item[0].parts)):
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for path, mode in sorted(modes.items(), key=lambda item: len(item[0].parts)):
            path.chmod(mode)


def _as_root(folder: Path) -> tuple[str, list[tuple[str, ...]]] | list[str]:
    """Protect the folder as root: (how, commands that undo it), or why each way failed."""
    failed = []
    why = _run("chattr", "-R", "+i", str(folder))
    if why is None:
        return "chattr +i", [("chattr", "-R", "-i", str(folder))]
    _run("chattr", "-R", "-i", str(folder))
    failed.append(f"chattr +i: {why}")
    why = _run("mount", "--bind", str(folder), str(folder))
    if why is None:
        why = _run("mount", "-o", "remount,bind,ro", str(folder))
        if why is None:
            return "a read-only bind mount", [("umount", str(folder))]
        _run("umount", str(folder))
    failed.append(f"read-only bind mount: {why}")
    return failed


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[str]:
    """Make a folder tree (its files too) unwritable for this process; yields how it was done."""
    if os.name != "posix":
        pytest.skip("unwritable folders are made on POSIX only (chmod, chattr or mount)")
    with contextlib.ExitStack() as undo:
        if os.geteuid() != 0:
            undo.enter_context(_chmod_read_only(folder))
            how = "chmod a-w"
        else:
            done = _as_root(folder)
            if isinstance(done, list):
                pytest.skip(f"running as root, whom chmod does not stop, and {folder} could not be "
                            f"made read-only otherwise ({'; '.join(done)})")
            how, commands = done
            for command in commands:
                undo.callback(_run, *command)
        try:
            (folder / PROBE).write_text("x")
        except OSError:
            pass
        else:
            (folder / PROBE).unlink()
            pytest.skip(f"{folder} could still be written after {how}")
        yield how


def private_disk_prefix(probe_dir: Path) -> list[str]:
    """The command prefix under which a child process may mount a tmpfs that only it sees: its
    own mount namespace as root, a user namespace with one for an ordinary user (Linux)."""
    if shutil.which("unshare") is None:
        pytest.skip("a size-limited disk needs unshare (util-linux, Linux only)")
    if os.geteuid() == 0:
        prefix = ["unshare", "--mount", "--propagation", "private"]
    else:
        prefix = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
    probe_dir.mkdir(parents=True, exist_ok=True)
    why = _run(*prefix, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe_dir))
    if why is not None:
        pytest.skip(f"cannot mount a small tmpfs in a private namespace here ({' '.join(prefix)}): {why}")
    return prefix
