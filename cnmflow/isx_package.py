"""The Inscopix ``isx`` package, imported where it is first needed, on a thread that outlives the process's work.

Importing cnmflow must stay cheap and work where isx's native library cannot load (a CLI
``--help``, the engine in a worker): every isx user calls :func:`isx_package` instead of a
module-level ``import isx``.

Importing isx starts its native library on the importing thread, and isx shuts it down at exit on
the main thread. Where that import ran on a thread that had ended by then (a sweep's or a batch's
worker thread, a Dask worker's), the process dies with SIGSEGV at exit after its work is done:
``cnmflow sweep`` exited 139. So the first import runs on one parked daemon thread, which also runs
isx's shutdown at exit.
"""

from __future__ import annotations

import atexit
import importlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from types import ModuleType

from cnmflow.errors import MovieError

__all__ = ["isx_package"]

#: Seconds the exit waits for isx's shutdown on its owner thread.
SHUTDOWN_WAIT_S = 30.0

_lock = threading.Lock()
_loaded: ModuleType | None = None


class _Owner:
    """The thread that imported isx: it runs what it is handed, isx's shutdown at exit among them."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[Callable[[], object], threading.Event]] = queue.Queue()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._serve, name="isx-owner", daemon=True)
        self.thread.start()

    def run(self, call: Callable[[], object], timeout_s: float | None = None) -> object:
        """``call()`` on the owner thread; its exception is raised here."""
        outcome: dict[str, object] = {}
        done = threading.Event()

        def job() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # handed back to the caller
                outcome["error"] = exc

        self.jobs.put((job, done))
        if not done.wait(timeout_s):
            raise TimeoutError(f"isx's owner thread did not answer within {timeout_s} s")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome.get("value")

    def _serve(self) -> None:
        while True:
            job, done = self.jobs.get()
            job()
            done.set()


def _import_on_owner() -> ModuleType:
    """``import isx`` on a new owner thread, with isx's exit-time shutdown moved onto that thread."""
    owner = _Owner()

    def load() -> ModuleType:
        import isx  # noqa: PLC0415

        atexit.unregister(isx._internal.shutdown)
        return isx

    isx = owner.run(load)

    def shut_down() -> None:
        # A forked child has neither the owner thread nor (leaving by os._exit) a reason to shut isx down.
        if os.getpid() == owner.pid and owner.thread.is_alive():
            owner.run(isx._internal.shutdown, timeout_s=SHUTDOWN_WAIT_S)

    atexit.register(shut_down)
    return isx  # type: ignore[return-value]


def isx_package(*, needed_for: str | None = None) -> ModuleType:
    """The ``isx`` module. ``needed_for`` (e.g. ``"reading .isxd files"``): a missing isx is then a
    MovieError that says what needs it, instead of the ImportError."""
    global _loaded
    if _loaded is not None:
        return _loaded
    try:
        with _lock:
            if _loaded is None:
                # Imported by its user already (``import isx``): its start and shutdown are that thread's affair.
                _loaded = importlib.import_module("isx") if "isx" in sys.modules else _import_on_owner()
    except ImportError as exc:  # pragma: no cover - isx is a dependency
        if needed_for is None:
            raise
        raise MovieError(f"{needed_for} needs the 'isx' package ({exc})") from exc
    return _loaded
