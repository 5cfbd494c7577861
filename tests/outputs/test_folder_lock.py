"""One writer per output folder: refused with who holds it, re-entrant in a process, free when the holder dies."""

from __future__ import annotations

import os
import socket

import pytest

from cnmflow.errors import InputError
from cnmflow.outputs.folder_lock import LOCK_NAME, FolderBusyError, lock_output_dir
from tests.outputs.holders import holding_folder, kill_hard


def test_a_second_run_is_refused_with_the_folder_and_the_holder(tmp_path):
    with holding_folder(tmp_path / "out") as holder:
        with pytest.raises(FolderBusyError) as refused:
            lock_output_dir(tmp_path / "out")
    message = str(refused.value)
    assert isinstance(refused.value, InputError) and "\n" not in message
    assert str(tmp_path / "out") in message and "in use by another cnmflow run" in message
    assert f"pid {holder.pid} on {socket.gethostname()}, since " in message and "UTC" in message


def test_the_lock_of_a_killed_run_is_taken_over_at_once(tmp_path):
    with holding_folder(tmp_path / "out") as holder:
        kill_hard(holder)
        assert (tmp_path / "out" / LOCK_NAME).exists(), "SIGKILL leaves the file behind"
        with lock_output_dir(tmp_path / "out") as lock:
            assert lock.fresh
            assert f'"pid": {os.getpid()}' in (tmp_path / "out" / LOCK_NAME).read_text()


def test_the_same_process_nests_and_the_last_release_removes_the_lock_file(tmp_path):
    outer = lock_output_dir(tmp_path / "out")
    inner = lock_output_dir(tmp_path / "out")    # e.g. the CLI's pre-check, then the flow's validate step
    assert outer.fresh and not inner.fresh
    inner.release()
    inner.release()                               # once per hold, however often it is called
    with holding_folder(tmp_path / "other"):     # (a different folder is independent)
        pass
    assert (tmp_path / "out" / LOCK_NAME).exists()
    outer.release()
    assert os.listdir(tmp_path / "out") == []
