"""One writer per results folder, so two runs of one command never compute the same configs twice.

A whole sweep holds ``DIR/.satbench.lock`` exclusively. Shards of one sweep (``--shard``,
``--distributed``) may share the folder: each holds it shared, plus its own slice's lock
exclusively, so a second copy of one shard, or a whole run beside shards, is refused. The locks
are the operating system's (``flock``): they vanish with the process, even on SIGKILL, so a
killed run never leaves the folder locked. Each lock file holds its owner's pid, for the message.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from satbench import spec

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not protected from each other
    fcntl = None

FOLDER_LOCK = ".satbench.lock"


class Busy(spec.SpecError):
    """Another satbench process is writing the folder (one line, exit code 2)."""


def slice_lock_name(shard: tuple[int, int]) -> str:
    return f".satbench-shard-{shard[0]}-of-{shard[1]}.lock"


def _is_held(path: Path) -> bool:
    """Whether some open file holds ``path``'s lock now (a pid left by a killed run is stale)."""
    try:
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    except OSError:
        return False


def _owner(path: Path) -> str:
    """The pid of whoever holds ``path``: its own pid, else (shards hold the folder lock shared
    and write no pid there) the pid of a slice lock that is held."""
    candidates = [path, *sorted(path.parent.glob(".satbench-shard-*.lock"))]
    for candidate in candidates:
        try:
            pid = candidate.read_text().strip()
        except OSError:
            continue
        if pid.isdigit() and (candidate == path or _is_held(candidate)):
            return pid
    return "unknown"


def _take(path: Path, exclusive: bool, out: Path):
    """An open file holding ``path``'s lock; raises Busy if another process holds it."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise Busy(f"--out {out}: another satbench run (pid {_owner(path)}) is writing this folder; "
                   "wait for it to finish, or choose another --out") from None
    return fh


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool, out: Path):
    fh = _take(path, exclusive, out)
    try:
        if exclusive:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        yield
    finally:
        if exclusive:  # a finished run leaves no pid behind
            fh.truncate(0)
        fh.close()


@contextlib.contextmanager
def hold(out: Path, shard: tuple[int, int] | None = None):
    """Hold ``out`` for a whole sweep (``shard`` None) or for one slice of it, for the block."""
    if fcntl is None:
        yield
        return
    out = Path(out)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_locked(out / FOLDER_LOCK, shard is None, out))
        if shard is not None:
            stack.enter_context(_locked(out / slice_lock_name(shard), True, out))
        yield
