"""Which task failures are retried: the machine's hiccups, never the user's input or the user's stop."""

from __future__ import annotations

import pytest

from cnmflow.errors import InputError
from cnmflow.tasks.retries import is_transient


def _raised_while_interrupted(interrupt: BaseException) -> OSError:
    try:
        try:
            raise interrupt
        except BaseException:
            raise OSError(9, "Bad file descriptor")  # a cleanup failing as Ctrl-C unwinds
    except OSError as err:
        return err


def test_a_disk_hiccup_is_retried_and_bad_input_is_not():
    assert is_transient(OSError(5, "Input/output error"))
    assert not is_transient(FileNotFoundError("movie.tif"))
    assert not is_transient(InputError("gSig must be positive"))


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), SystemExit(143)])
def test_an_error_raised_while_the_user_stops_the_run_is_not_retried(interrupt):
    """A retry would carry on a run that Ctrl-C / SIGTERM stopped, and it would end 'successfully'."""
    error = _raised_while_interrupted(interrupt)
    assert isinstance(error.__context__, type(interrupt))
    assert not is_transient(error)
