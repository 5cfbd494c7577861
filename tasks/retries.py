"""Which failures are worth retrying: the machine's, never the user's.

A flaky network share or a patch worker killed by the OOM killer may succeed on a second try;
a bad movie or parameter never will, so it fails once with its message.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from typing import Any

from cnmflow.errors import InputError

#: Failures of the environment that a later attempt may not meet.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, BrokenProcessPool, EOFError, TimeoutError)
#: OSError subclasses that mean the user's paths are wrong, not that the disk hiccuped.
PERMANENT: tuple[type[BaseException], ...] = (InputError, FileExistsError, FileNotFoundError, IsADirectoryError,
                                              NotADirectoryError, PermissionError)

RETRIES = 2
RETRY_DELAY_S = 10.0


def is_transient(error: BaseException | None) -> bool:
    """True for an environment failure a retry may get past — never one raised while an interrupt
    (Ctrl-C, SIGTERM) was unwinding: a cleanup that fails then must not turn the user's stop into a retry."""
    return isinstance(error, TRANSIENT) and not isinstance(error, PERMANENT) and not _during_interrupt(error)


def _during_interrupt(error: BaseException) -> bool:
    """Whether ``error`` was raised while handling (or because of) a KeyboardInterrupt or SystemExit."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, SystemExit)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result()
        except BaseException as raised:  # noqa: BLE001 - inspecting whatever the task raised
            error = raised
    return is_transient(error)


#: Task options shared by every step that touches files or workers.
RETRY_OPTIONS: dict[str, Any] = dict(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S,
                                     retry_condition_fn=retry_transient)
