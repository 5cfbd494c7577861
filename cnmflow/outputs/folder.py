"""Opening an output folder for writing: checked, locked, and put back in order after a killed run.

Every writer — the command line's pre-check, the flow's validate step, ``cnmflow.extract``,
the export — opens the folder here before doing anything else, so that a second run is
refused before any compute, an interrupted result swap is finished (rolled forward: its staged
set is complete) and the leftovers of dead runs are removed before anything reads the folder.
"""

from __future__ import annotations

import os

from cnmflow.outputs.folder_lock import OutputLock, lock_output_dir
from cnmflow.outputs.leftovers import remove_leftovers
from cnmflow.outputs.location import check_output_location
from cnmflow.outputs.result_swap import finish_interrupted_swap


def open_output_dir(output_dir: str | os.PathLike) -> OutputLock:
    """This process's hold on ``output_dir`` (InputError when unusable or busy); release it when done."""
    folder = check_output_location(output_dir)
    lock = lock_output_dir(folder)
    try:
        finish_interrupted_swap(lock.folder)
        if lock.fresh:
            remove_leftovers(lock.folder)
    except BaseException:
        lock.release()
        raise
    return lock
