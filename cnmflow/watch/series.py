"""Which files make one run: the series rule.

Rules (the flow's ``series_rule`` parameter):

``"subfolder"`` (default)
    Files directly in the watched folder are single-movie runs, except the files of one multi-file
    OME-TIFF (Micro-Manager's ``name.ome.tif``, ``name_1.ome.tif``, …): one run, in part order,
    where the first file's metadata names the others (:func:`confirm_ome_set`).  The matching files in one
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

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Literal, get_args

from cnmflow.errors import MovieError
from cnmflow.movies.read import read_info
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


#: Micro-Manager's names for the files of one multi-file OME-TIFF: ``name.ome.tif``, then ``name_1.ome.tif``, …
_OME_PART = re.compile(r"^(?P<stem>.+?)(?:_(?P<part>[0-9]+))?(?P<ext>\.ome\.tiff?)$", re.IGNORECASE)


def _top_level(paths: Iterable[str]) -> list[Group]:
    """Runs of the files directly in the watched folder: one each, but the files named as the parts of one
    multi-file OME-TIFF (the first, ``name.ome.tif``, among them) one run in part order. Each part alone had
    failed, telling the user to make a sub-folder."""
    parts: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    singles: list[Group] = []
    for path in sorted(paths):
        match = _OME_PART.match(path)
        if match is None:
            singles.append(_single(path))
        else:
            parts[(match["stem"], match["ext"].lower())].append((int(match["part"] or 0), path))
    for named in parts.values():
        ordered = [path for _, path in sorted(named)]
        if len(named) > 1 and min(named)[0] == 0:
            singles.append(Group(key=ordered[0], members=tuple(ordered), output_base=_single(ordered[0]).output_base))
        else:
            singles.extend(_single(path) for path in ordered)
    return sorted(singles, key=lambda group: group.key)


def confirm_ome_set(group: Group, folder: str | Path) -> tuple[list[Group], tuple[str, ...]]:
    """The runs a group of files directly in the watched folder makes once they are finished, and the files its
    OME metadata names that are not there yet.

    A set named as one multi-file OME-TIFF stays one run only with the files its first file's metadata names (two
    recordings named ``a.ome.tif`` and ``a_1.ome.tif``, each complete, had been joined); the others run alone. A set
    copied file by file (rsync writes each under a hidden temporary name, then renames it) whose metadata names a
    file not in the folder yet — a later part, or, for a later part, the first file — makes no run: it waits for
    them (it had been started on the files present, failed and used up its attempts while the copy went on). A first
    file that cannot be read keeps the set whole: its run fails once, for the set, with the reader's message."""
    if group.is_series or _OME_PART.match(group.members[0]) is None:
        return [group], ()
    try:
        info = read_info(Path(folder) / group.members[0])
    except MovieError:
        return [group], ()
    listed = (*info.ome_files, *([info.ome_metadata_file] if info.ome_metadata_file else []))
    missing = tuple(name for name in listed if not (Path(folder) / name).exists())
    if missing:
        return [], missing
    named = set(info.ome_files)
    inside = tuple(path for path in group.members if path in named)
    if len(group.members) == 1 or inside == group.members:
        return [group], ()
    if len(inside) < 2 or inside[0] != group.key:
        return [_single(path) for path in group.members], ()
    return [Group(group.key, inside, group.output_base)] + [_single(p) for p in group.members if p not in inside], ()


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
            groups.extend(_top_level(members))
        else:
            in_order = tuple(sorted(members, key=name_order_key))
            groups.append(Group(key=folder + "/", members=in_order, output_base=folder))
    return groups
