"""Child processes that die with their parent, and SIGTERM handled like Ctrl-C.

A ``cnmflow run`` starts a temporary Prefect server and patch worker processes. Killed with
SIGKILL (the OOM killer, a scheduler's hard stop), the parent cannot stop them, so each child
asks the kernel to kill it when its parent goes (Linux ``prctl(PR_SET_PDEATHSIG)``); where that
call does not exist (macOS) a thread polls the parent id instead. SIGTERM, what ``kill`` and
batch schedulers send, is turned into the same exception as Ctrl-C, so ``finally`` blocks
remove work copies and staging folders before the process exits.

Run as a module, this file starts another module as such a child::

    python -m cnmflow.processes PARENT_PID MODULE [ARG ...]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pickle
import runpy
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

#: prctl option: the signal this process gets when the thread that created it ends.
PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent id where prctl is missing.
PARENT_POLL_S = 0.5
#: Seconds a launched child may take to shut down cleanly after its parent has gone.
GRACE_S = 3.0
#: Exit statuses a shell reports for a process ended by SIGINT / SIGTERM.
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) received: unwinds like Ctrl-C so every ``finally`` block runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 128 + self.signum)


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL, *, grace_s: float | None = None) -> str:
    """Make this process receive ``sig`` when ``parent_pid`` (its parent) ends; which way it was done.

    Linux delivers the signal when the *thread* that started this process ends, so a parent must
    start such children from a thread that lives as long as they should (the main thread, or the
    thread that owns the pool). Returns ``"prctl"`` or ``"poll"`` (a daemon thread watching the parent
    id, the fallback without prctl). With ``grace_s``, the watching thread also ends the process
    ``grace_s`` seconds after the parent has gone, should ``sig`` have been handled without exiting.
    """
    how = "prctl" if _set_pdeathsig(sig) else "poll"
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        _end_self(sig)
    if how == "poll" or grace_s is not None:
        _watch_parent(parent_pid, sig if how == "poll" else None, grace_s or 0.0)
    return how


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as ended)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While in the block, SIGTERM raises :class:`Interrupted` in the main thread (like Ctrl-C).

    Further SIGTERMs are ignored until the block ends, so cleanup is not cut short (SIGKILL still
    ends the process, and its children with it). Outside the main thread (where Python cannot
    install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigint_blocked_in_children() -> Iterator[None]:
    """Processes started in the block begin with SIGINT blocked; a SIGINT meanwhile waits for this one.

    Ctrl-C in a terminal signals the whole foreground process group. Workers that got it too would
    print their own tracebacks (one per worker, even from inside their start-up) while the run is
    already stopping them. The signal mask is inherited across fork and exec, so blocking SIGINT
    around the moment workers are started keeps it from them; the run's own SIGINT arriving in the
    block is delivered when the block ends. Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class ForkedCall:
    """``function(*args, **kwargs)`` computed in a forked child of this process (which goes on meanwhile);
    :meth:`result` waits for it. The child starts with every module and array of this process, at no cost,
    so this suits a short side job that would otherwise wait its turn on one core (e.g. drawing figures).

    The child dies with this process (SIGKILL), takes Ctrl-C and SIGTERM at their default (it ends), logs
    nothing (the handlers belong to threads it does not have) and leaves by ``os._exit``: no ``atexit`` or
    ``finally`` of this process runs twice. Where ``fork`` is missing (or not Linux) or fails, the call
    runs here, now.
    """

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any):
        self._pid = 0
        self._outcome: tuple[bool, Any] | None = None
        if not (hasattr(os, "fork") and sys.platform.startswith("linux")):
            self._outcome = _outcome(function, args, kwargs)
            return
        parent = os.getpid()
        self._reader, writer = os.pipe()
        try:
            self._pid = os.fork()
        except OSError:  # no memory for a copy of this process's page tables (strict overcommit): here, now
            os.close(self._reader)
            os.close(writer)
            self._outcome = _outcome(function, args, kwargs)
            return
        if self._pid == 0:
            os.close(self._reader)
            _child_call(parent, writer, function, args, kwargs)  # never returns
        os.close(writer)

    def result(self, timeout_s: float | None = None) -> Any:
        """The function's value; its exception (as a RuntimeError naming it) or the child's death raises.

        ``timeout_s``: a child still silent after this long is killed and ChildProcessError raised. A
        forked copy of a threaded process can deadlock on a lock another thread held at the fork; the
        caller then loses that much time, never the run.
        """
        if self._outcome is None:
            payload = self._read_all(timeout_s)
            _, status = os.waitpid(self._pid, 0)
            if not payload:
                raise ChildProcessError(f"the forked child {self._pid} ended without a result (wait status {status})")
            self._outcome = pickle.loads(payload)
        done, value = self._outcome
        if not done:
            raise RuntimeError(value)
        return value

    def _read_all(self, timeout_s: float | None) -> bytes:
        """Everything the child writes to the pipe until it closes it, or ChildProcessError at the deadline."""
        deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        chunks: list[bytes] = []
        reader, self._reader = self._reader, -1  # the with block closes it, however it is left
        with os.fdopen(reader, "rb", buffering=0) as pipe:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not select.select([pipe], [], [], wait)[0]:
                    self._kill_and_reap()
                    self._outcome = (False, f"the forked child did not finish within {timeout_s} s")
                    raise ChildProcessError(f"the forked child {self._pid} did not finish within {timeout_s} s; "
                                            "it was killed")
                chunk = pipe.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def _kill_and_reap(self) -> None:
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self._pid, 0)

    def cancel(self) -> None:
        """Kill the child now (the caller failed or was interrupted) and reap it."""
        if self._outcome is not None or not self._pid:
            return
        self._kill_and_reap()
        if self._reader >= 0:  # not yet handed to a read that an interrupt cut short (it closed the pipe)
            os.close(self._reader)
            self._reader = -1
        self._outcome = (False, "cancelled")


def _child_call(parent: int, writer: int, function: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """The forked child's whole life: compute, send the pickled outcome through the pipe, leave."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent(parent, signal.SIGKILL)
        logging.disable(logging.CRITICAL)
        payload = pickle.dumps(_outcome(function, args, kwargs))
        with os.fdopen(writer, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(0)


def _outcome(function: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """(True, the value) or (False, "<Type>: <message>") of the call, for :meth:`ForkedCall.result`."""
    try:
        return True, function(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - reported to the caller by result()
        return False, f"{type(err).__name__}: {err}"


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, sig: int | None, grace_s: float) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        if sig is not None:
            os.kill(os.getpid(), sig)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="cnmflow-parent-watch", daemon=True).start()


def _end_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(1.0)
    os._exit(1)


def _main(argv: list[str]) -> None:
    """``PARENT_PID MODULE ARGS...``: run MODULE as ``__main__``, ending (SIGTERM, then GRACE_S seconds later for
    good) when the parent does."""
    parent_pid, module, *args = argv
    die_with_parent(int(parent_pid), signal.SIGTERM, grace_s=GRACE_S)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    _main(sys.argv[1:])
