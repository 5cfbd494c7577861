"""One writer per output folder: an exclusive ``flock`` on a lock file inside it.

Two runs writing one folder at once mix their files (the second reports its own count while
the folder holds the first's cells) and delete each other's work copy, so every writer holds
this lock from its pre-checks until its export and tracking are done.  The kernel drops a
``flock`` when its process dies, so a killed run never blocks the next one: its lock file is
simply taken over.  The file records who holds it (pid, host, since when) for the message the
refused run prints.

The command line checks the folder and then runs the flow in the same process, and the flow's
validate step locks the folder again; the lock is therefore counted per process, so the inner
acquisition nests inside the outer one instead of refusing it.  (Two threads of one process
writing one folder are not told apart — cnmflow never does that.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cnmflow.errors import InputError
from cnmflow.lock_files import still_linked

LOCK_NAME = ".cnmflow-lock"
_ATTEMPTS = 20


class FolderBusyError(InputError):
    """Another live run holds the output folder."""


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


class OutputLock:
    """This process's hold on an output folder; ``release`` (or ``with``) gives it back once."""

    def __init__(self, folder: Path, *, fresh: bool) -> None:
        self.folder = folder
        #: True when this acquisition took the folder from nobody in this process: the moment to
        #: tidy up after dead runs.
        self.fresh = fresh
        self._released = False

    def release(self) -> None:
        """Drop this hold; the last hold of the process unlocks and removes the lock file."""
        with _guard:
            if self._released:
                return
            self._released = True
            held = _held.get(self.folder)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _held[self.folder]
            _unlock(self.folder, held)

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_output_dir(output_dir: str | os.PathLike) -> OutputLock:
    """Hold ``output_dir`` (created if needed) for this process; FolderBusyError when another run has it."""
    folder = Path(output_dir).expanduser().absolute()
    with _guard:
        key = _key(folder)
        if key in _held:
            _held[key].count += 1
            return OutputLock(key, fresh=False)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            key = _key(folder)
            fd = _take(key)
        except OSError as exc:
            raise InputError(f"output_dir {folder}: cannot create its lock file ({exc.strerror or exc}); "
                             "give a writable folder for the results") from None
        _held[key] = _Held(fd=fd, count=1)
        return OutputLock(key, fresh=True)


def holder_of(output_dir: str | os.PathLike) -> str:
    """Who holds (or last held) the folder, in words, from its lock file."""
    try:
        text = (Path(output_dir) / LOCK_NAME).read_text(encoding="utf-8")
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder not recorded yet"


def _key(folder: Path) -> Path:
    return Path(os.path.realpath(folder))


def _take(folder: Path) -> int:
    """An fd holding the exclusive lock on ``folder/LOCK_NAME``; the path is checked to still be that file."""
    path = folder / LOCK_NAME
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(
                f"output_dir {folder} is in use by another cnmflow run ({holder_of(folder)}); wait for it to "
                "finish or give another output directory") from None
        except BaseException:
            os.close(fd)
            raise
        if still_linked(fd, path):  # not unlinked by a holder releasing between our open and our lock
            _record_holder(fd)
            return fd
        os.close(fd)
    raise FolderBusyError(f"output_dir {folder}: its lock file keeps changing hands; another cnmflow run is "
                          "starting there — wait for it to finish or give another output directory")


def _record_holder(fd: int) -> None:
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since})
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def _unlock(folder: Path, held: _Held) -> None:
    """Remove the lock file while still holding it, then unlock (a waiting opener then retries on a new file)."""
    try:
        if still_linked(held.fd, folder / LOCK_NAME):
            os.unlink(folder / LOCK_NAME)
    except OSError:
        pass
    os.close(held.fd)
