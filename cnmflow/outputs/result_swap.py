"""Replacing one run's complete set of files by another's, so that a kill never leaves a mix.

Overwriting file by file leaves the earlier run's extra files (a 43-cell event set beside
0-cell cell sets, the ``.001`` files of a longer series) next to the new manifest.  Here the
new set is staged complete (manifest included) in a hidden folder first; then a small journal
is written — the commit point — and the swap runs in two phases:

1. ``out``: the old manifest first (so the folder no longer looks finished), then every old
   file, are moved into a hidden trash folder;
2. ``in``: every new file is moved into place, the manifest last.

Journal, trash and staging are then deleted.  Whoever opens the folder next (with its lock
held) calls :func:`finish_interrupted_swap`, which replays the journal — every step is
idempotent — so a kill at any moment ends as the old complete set (no journal yet) or the new
one (journal written).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from cnmflow.atomic_write import atomic_path

JOURNAL_NAME = ".cnmflow-swap.json"
TRASH_PREFIX = ".cnmflow-trash-"
#: Hidden folders a result set is written into before it is swapped in (a killed run's are leftovers).
EXPORT_STAGING_PREFIX = ".cnmflow-export-"


def swap_in(staging: Path, output_dir: Path, *, new: Iterable[str], old: Iterable[str],
            manifest_name: str) -> None:
    """Replace the ``old`` files of ``output_dir`` by the ``new`` files staged in ``staging`` (same filesystem)."""
    new_names = sorted(set(new), key=lambda name: name == manifest_name)           # manifest last
    old_names = sorted(set(old), key=lambda name: name != manifest_name)           # manifest first
    trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=output_dir))
    journal = {"staging": staging.name, "trash": trash.name, "new": new_names, "old": old_names, "phase": "out"}
    _write_journal(output_dir, journal)
    _roll_forward(output_dir, journal)


def pending(output_dir: str | os.PathLike) -> bool:
    """Whether a swap was committed in ``output_dir`` but not finished."""
    return (Path(output_dir) / JOURNAL_NAME).is_file()


def finish_interrupted_swap(output_dir: str | os.PathLike) -> bool:
    """Complete a swap a killed run left behind (call with the folder's lock held); whether there was one."""
    output_dir = Path(output_dir)
    try:
        journal = json.loads((output_dir / JOURNAL_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # written atomically, so never half a journal; unreadable means foreign
        return False
    _roll_forward(output_dir, journal)
    return True


@contextmanager
def staging_folder(output_dir: str | os.PathLike, *, label: str = "") -> Iterator[Path]:
    """A hidden folder inside ``output_dir`` to write a whole result set into before :func:`swap_in`.

    Removed afterwards, also on errors, unless a committed swap still needs it (the next opener
    of the folder finishes that swap); a killed run's staging folder is swept as a leftover.
    """
    output_dir = Path(output_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{EXPORT_STAGING_PREFIX}{label}", dir=output_dir))
    try:
        yield staging
    finally:
        if staging.name not in staging_in_use(output_dir):
            shutil.rmtree(staging, ignore_errors=True)


def staging_in_use(output_dir: str | os.PathLike) -> set[str]:
    """Names of the hidden folders a pending swap still needs (never to be swept as leftovers)."""
    try:
        journal = json.loads((Path(output_dir) / JOURNAL_NAME).read_text(encoding="utf-8"))
        return {journal["staging"], journal["trash"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _roll_forward(output_dir: Path, journal: dict) -> None:
    staging = output_dir / journal["staging"]
    trash = output_dir / journal["trash"]
    if journal["phase"] == "out":
        trash.mkdir(exist_ok=True)
        for name in journal["old"]:
            _move_if_there(output_dir / name, trash / name)
        journal = {**journal, "phase": "in"}
        _write_journal(output_dir, journal)
    for name in journal["new"]:
        _move_if_there(staging / name, output_dir / name)
    (output_dir / JOURNAL_NAME).unlink(missing_ok=True)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def _move_if_there(source: Path, target: Path) -> None:
    if not (source.exists() or source.is_symlink()):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _write_journal(output_dir: Path, journal: dict) -> None:
    """Atomically (temporary name, fsync, rename): a reader sees the old journal or the new one."""
    path = output_dir / JOURNAL_NAME
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(journal, handle)
        handle.flush()
        os.fsync(handle.fileno())
