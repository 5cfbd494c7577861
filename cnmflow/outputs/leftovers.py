"""What dead runs leave in an output folder, removed by the next run that takes the folder's lock.

A run killed with SIGKILL runs no cleanup: its export staging folder, the trash of a swap, its
private work folder, a half-written manifest and the staging folder of a half-written work copy
stay behind (a work copy can be gigabytes).  Holding the folder's lock proves their writer is
dead, so they are deleted.  Finished work copies in the default work root are left for the
concatenate step, which adopts the one it needs and removes the others (see
:mod:`cnmflow.movies.work_copy`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
from pathlib import Path

from cnmflow.atomic_write import temporary_glob
from cnmflow.folder_sweep import SweepRule, sweep_folder
from cnmflow.movies.concat import WORK_PREFIX  # the private work folders of cnmflow.movies.concat.work_directory
from cnmflow.movies.work_copy import WORK_DIR_NAME, remove_unused
from cnmflow.outputs.names import MANIFEST_NAME
from cnmflow.outputs.result_swap import EXPORT_STAGING_PREFIX, JOURNAL_NAME, TRASH_PREFIX, staging_in_use

log = logging.getLogger(__name__)

FOLDER_PATTERNS = (f"{EXPORT_STAGING_PREFIX}*", f"{TRASH_PREFIX}*", f"{WORK_PREFIX}*")
FILE_PATTERNS = (temporary_glob(MANIFEST_NAME), temporary_glob(JOURNAL_NAME))


def remove_leftovers(output_dir: str | os.PathLike) -> list[str]:
    """Delete dead runs' leftovers in ``output_dir`` (call holding its lock); the names removed."""
    output_dir = Path(output_dir)
    rules: list[SweepRule] = [
        (lambda entry: _matches(entry.name, FOLDER_PATTERNS) and entry.is_dir(), _remove_folder),
        (lambda entry: _matches(entry.name, FILE_PATTERNS) and entry.is_file(), _remove_file),
    ]
    removed = sweep_folder(output_dir, rules, keep=staging_in_use(output_dir))
    removed += [f"{WORK_DIR_NAME}/{name}" for name in remove_unused(output_dir / WORK_DIR_NAME, keep_copies=True)]
    if removed:
        log.info("removed what an interrupted run left in %s: %s", output_dir, ", ".join(sorted(removed)))
    return removed


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _remove_folder(folder: Path) -> bool:
    shutil.rmtree(folder, ignore_errors=True)
    return True


def _remove_file(file: Path) -> bool:
    file.unlink(missing_ok=True)
    return True
