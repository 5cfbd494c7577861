"""Which files make one run: the series rule.

Rules (the flow's ``series_rule`` parameter):

``"subfolder"`` (default)
    Files directly in the watched folder are single-movie runs.  The matching files in one
    sub-folder (at any depth; each folder is judged by the files directly inside it) form one
    series: one run over all of them, in name order with numbers compared as numbers (2.avi before
    10.avi, msCam9 before msCam10; the extraction itself orders .isxd movies by start time).
    A session copied as a folder therefore becomes one run.
``"file"``
    Every file is its own run, wherever it is.

A run's output folder mirrors its place in the watched folder: ``<sub-folder>`` for a series,
``<path without extension>`` for a single movie.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Literal, get_args

from cnmflow.movies.series import name_order_key

SeriesRule = Literal["subfolder", "file"]
SERIES_RULES: tuple[str, ...] = get_args(SeriesRule)


@dataclass(frozen=True)
class Group:
    """The files of one run.  ``key`` names it in the ledger: the movie's path, or the series
    folder's path ending in '/' (so a folder and a file never share a key)."""

    key: str
    members: tuple[str, ...]
    output_base: str

    @property
    def is_series(self) -> bool:
        """True for a sub-folder series (whose listing must also be stable before it starts)."""
        return self.key.endswith("/")


def _single(path: str) -> Group:
    pure = PurePosixPath(path)
    return Group(key=path, members=(path,), output_base=pure.with_suffix("").as_posix())


def group_files(paths: Iterable[str], rule: str = "subfolder") -> list[Group]:
    """The runs that the files at ``paths`` (relative, '/'-separated) make under ``rule``."""
    if rule not in SERIES_RULES:
        raise ValueError(f"series_rule={rule!r} is not known; choose one of {', '.join(SERIES_RULES)}")
    if rule == "file":
        return [_single(p) for p in sorted(paths)]
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_folder[PurePosixPath(path).parent.as_posix()].append(path)
    groups: list[Group] = []
    for folder, members in sorted(by_folder.items()):
        if folder == ".":
            groups.extend(_single(p) for p in sorted(members))
        else:
            in_order = tuple(sorted(members, key=name_order_key))
            groups.append(Group(key=folder + "/", members=in_order, output_base=folder))
    return groups
