"""One pass over a folder that removes what dead writers left, by name, with a remover per kind.

The output folder (:mod:`cnmflow.outputs.leftovers`) and the work-copy root
(:func:`cnmflow.movies.work_copy.remove_unused`) are cleaned the same way: list the folder once,
give each entry to the first rule whose test it passes, and report the names its remover
deleted. Entries are visited in name order, so a cleaning run is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

__all__ = ["SweepRule", "sweep_folder"]

#: ``(matches(entry), remove(entry) -> whether it was removed)``.
SweepRule = tuple[Callable[[Path], bool], Callable[[Path], bool]]


def sweep_folder(folder: str | os.PathLike, rules: Sequence[SweepRule], *, keep: Collection[str] = ()) -> list[str]:
    """Apply the first matching rule to every entry of ``folder`` not named in ``keep``; the names removed.

    A folder that cannot be listed (missing, no permission) has nothing to remove.
    """
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        if entry.name in keep:
            continue
        remove = next((remove for matches, remove in rules if matches(entry)), None)
        if remove is not None and remove(entry):
            removed.append(entry.name)
    return removed
