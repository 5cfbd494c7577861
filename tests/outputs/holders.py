"""Another live process holding an output folder or a work copy, for the one-writer tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]

_HOLD_FOLDER = """
import sys
from cnmflow.outputs.folder_lock import lock_output_dir
lock = lock_output_dir(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
"""

_HOLD_COPY = """
import sys
from cnmflow.movies.work_copy import ensure_work_copy
from cnmflow.validate import validate_inputs
inputs = validate_inputs([sys.argv[1]])
movie, created = ensure_work_copy(inputs.series, sys.argv[2], sys.argv[3])
print(movie.path, flush=True)
sys.stdin.readline()
"""


@contextmanager
def _holding(script: str, *args: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        process.line = process.stdout.readline().strip()  # type: ignore[attr-defined]
        assert process.line, "the holder process did not start"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def holding_folder(folder: Path):
    """A live process holding ``folder``'s output lock (``.kill()`` it to test a dead holder)."""
    return _holding(_HOLD_FOLDER, str(folder))


def holding_work_copy(movie: Path, root: Path, key: str):
    """A live process holding the work copy of ``movie`` under ``root``; ``.line`` is the copy's path."""
    return _holding(_HOLD_COPY, str(movie), str(root), key)


def kill_hard(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
