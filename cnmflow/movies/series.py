"""A series of movies analysed as one: checks before any compute, order, frame rate."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Mapping, Sequence

from cnmflow.errors import MovieError, ParameterError
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import kind_of
from cnmflow.movies.read import check_file, read_info
from cnmflow.movies.tiff import SingleImageError
from cnmflow.progress import part_of, report

DEFAULT_FRAME_RATE = 30.0
PERIOD_ATOL_S = 1e-6
FR_RTOL = 1e-3
#: Frame rates (Hz) a calcium-imaging recording can have: one read from a file's metadata outside them is a unit
#: slip (an ImageJ interval in ms read as seconds gives 0.01-0.05 Hz), and the deconvolution's decay, in frames,
#: would be wrong by as much.
PLAUSIBLE_FR = (0.1, 1000.0)


@dataclass(frozen=True)
class MovieSeries:
    movies: tuple[MovieInfo, ...]
    order: tuple[int, ...]
    frame_shape: tuple[int, int]
    frame_rate: float | None
    frame_rate_source: str | None

    @property
    def n_frames(self) -> int:
        return sum(m.n_frames for m in self.movies)

    @property
    def kind(self) -> str:
        return self.movies[0].kind

    def offsets(self) -> dict[int, tuple[int, int]]:
        """Movie index -> (first, stop) frame range in the concatenated movie."""
        out, first = {}, 0
        for k in self.order:
            out[k] = (first, first + self.movies[k].n_frames)
            first += self.movies[k].n_frames
        return out


def _names(movies: Sequence[MovieInfo]) -> str:
    return ", ".join(str(m.path) for m in movies)


def _refuse_listed_twice(paths: Sequence[str | os.PathLike]) -> None:
    """Each file once: not under two paths to it, nor under two hard links (one inode under two names)."""
    files: dict[tuple[int, int], tuple[str, Path]] = {}   # (device, inode) -> the name first listed, its path
    for p in paths:
        r = check_file(p)
        stat = os.stat(r)
        if (stat.st_dev, stat.st_ino) in files:
            name, first = files[(stat.st_dev, stat.st_ino)]
            how = f"are both {r}" if first == r else "are hard links to one file"
            raise MovieError(f"the same movie is listed twice: {name} and {p} {how}; list each movie once")
        files[(stat.st_dev, stat.st_ino)] = (str(p), r)


def name_order_key(name: str) -> tuple:
    """Sort key for file names in recording order: runs of digits compare as numbers ("2.avi" before "10.avi",
    "msCam9" before "msCam10"), the rest as text; the name itself breaks ties. Miniscope software and many exports
    number their chunks without leading zeros, which a plain (and a shell glob's) sort puts 0, 1, 10, 11, 2, …"""
    parts = re.split(r"(\d+)", str(name))
    return tuple(int(part) if k % 2 else part for k, part in enumerate(parts)), str(name)


def _refuse_name_sorted_numbers(paths: Sequence[str | os.PathLike]) -> None:
    """Refuse files listed in plain name order where that order is not their numbers' order (``*.avi`` of
    0.avi … 11.avi lists 10.avi before 2.avi): TIFFs and AVIs are joined in the order given, so time was scrambled
    without a word. An order that is neither the plain nor the numeric one was chosen by hand and is kept."""
    names = [os.fspath(p) for p in paths]
    numeric = sorted(names, key=name_order_key)
    if names == numeric or names not in (sorted(names), sorted(names, key=str.casefold)):
        return
    first = next(k for k, (given, meant) in enumerate(zip(names, numeric)) if given != meant)
    short = [Path(n).name for n in names] if len({str(Path(n).parent) for n in names}) == 1 else names
    numeric_short = sorted(short, key=name_order_key)
    suffix = Path(names[0]).suffix
    shown = " ".join(numeric_short[:6]) + (" …" if len(numeric_short) > 6 else "")
    raise MovieError(
        f"the movies are listed in plain name order, which puts {short[first]} before "
        f"{numeric_short[first]} (a shell glob such as *{suffix} sorts this way) and would join them out of time "
        f"order; list them in the order of their numbers ({shown}; `ls *{suffix} | sort -V` lists them so), "
        "or rename them with leading zeros (002, 010) if the name order is the recording order")


#: The progress stage of reading a series' movies' metadata.
READING_MOVIES = "reading movies"
#: The narrowest frame side a movie may have. A side of 1–2 px is a line scan or a stack stored with its frames last,
#: never a field of cells; it reached the fit's gSiz check, whose message suggested a smaller gSiz. Small crops of
#: 3–4 px (the plumbing tests') still pass.
MIN_FRAME_SIDE = 3


def _is_single_image(path: str | os.PathLike) -> bool:
    try:
        read_info(path)
    except SingleImageError:
        return True
    except MovieError:
        return False
    return False


def _reported_member_info(index: int, path: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> MovieInfo:
    """The ``index``-th movie's info, reported as that share of reading the series' movies (an AVI decodes them)."""
    with part_of(READING_MOVIES, index, len(paths)):
        info = _read_member_info(path, paths)
        report(READING_MOVIES, 1.0)
    return info


def _read_member_info(path: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> MovieInfo:
    """read_info, with a series' word for a single image in it: a TIFF image sequence (one frame per file), whose
    files are read one at a time and would each be refused as 'a single image' with no word on the sequence they
    make; or one image among movies (a projection saved beside them), which the file's own word asked to give as
    'a multi-page TIFF' (and, listed first, the sequence's word asked to stack with the movies)."""
    try:
        return read_info(path)
    except SingleImageError:
        if len(paths) < 2:
            raise
        if path is not paths[0] or not _is_single_image(paths[1]):
            raise MovieError(
                f"{path} holds a single 2-D image, not a movie, listed among {len(paths)} files ({paths[0]} … "
                f"{paths[-1]}): a projection or reference image saved beside the movies, or a recording's one-frame "
                "last part? Leave it out of the series (a file pattern such as *.tif picks up every TIFF in the "
                "folder)") from None
        raise MovieError(
            f"{path} holds a single 2-D image, not a movie: the {len(paths)} files given ({paths[0]} … {paths[-1]}) "
            "look like an image sequence, one frame per file, which cnmflow does not join; stack them into one "
            "multi-page TIFF in recording order first "
            "(Fiji: File > Import > Image Sequence…, then File > Save As > Tiff…; Python: tifffile.imwrite(out, "
            "numpy.stack([tifffile.imread(f) for f in files])))") from None


def _check_ome_parts(movies: Sequence[MovieInfo]) -> None:
    """Every file of a multi-file OME-TIFF listed, next to each other and in the metadata's order: the first file
    alone is only its own part of the recording."""
    listed = {m.path: k for k, m in enumerate(movies)}
    for m in movies:
        _refuse_part_without_its_first(m, listed)
        if not m.ome_files:
            continue
        parts = [m.path.parent / name for name in m.ome_files]
        missing = [p for p in parts if p not in listed]
        names = ", ".join(m.ome_files)
        if missing:
            absent = [p.name for p in missing if not p.exists()]
            where = f" ({', '.join(absent)} not found next to it: copy {'it' if len(absent) == 1 else 'them'} too)" \
                if absent else ""
            raise MovieError(
                f"{m.path} is one file of a multi-file OME-TIFF (as Micro-Manager writes long recordings): its "
                f"metadata spreads the recording over {len(parts)} files ({names}); "
                f"{', '.join(p.name for p in missing)} {'is' if len(missing) == 1 else 'are'} not listed{where}; "
                f"list all {len(parts)}, in that order")
        positions = [listed[p] for p in parts]
        if positions != list(range(positions[0], positions[0] + len(parts))):
            raise MovieError(f"{m.path} is one file of a multi-file OME-TIFF whose metadata orders its files {names}; "
                             "list them next to each other in that order")


def _refuse_part_without_its_first(m: MovieInfo, listed: Mapping[Path, int]) -> None:
    """A later file of a multi-file OME-TIFF needs the file holding its metadata (and the first frames) listed before
    it; that file's own check then asks for every part, in order."""
    first = m.path.parent / m.ome_metadata_file if m.ome_metadata_file else None
    if first is None or (first in listed and listed[first] < listed[m.path]):
        return
    where = " (not found next to it: copy it too)" if not first.exists() else ""
    raise MovieError(
        f"{m.path} is a later file of a multi-file OME-TIFF (as Micro-Manager splits a long recording): the "
        f"recording's metadata and first frames are in {first.name}{where}; list {first.name} first and every part "
        "after it, in order (in a watched folder, put the recording's files in one sub-folder)")


def _check_alike(movies: Sequence[MovieInfo]) -> None:
    """One frame size, and integers of one width and sign, across the series."""
    first = movies[0]
    for m in movies[1:]:
        if m.frame_shape != first.frame_shape:
            raise MovieError(
                f"frame sizes differ: {first.path} is {first.frame_shape[0]}x{first.frame_shape[1]} (rows x cols) "
                f"but {m.path} is {m.frame_shape[0]}x{m.frame_shape[1]}; all movies of a series need the same "
                "frame size: export (crop, downsample) them alike, or analyse them separately"
            )

    for m in movies[1:]:  # integers of another width or sign: one part converted apart (byte order aside)
        a, b = first.dtype.newbyteorder("="), m.dtype.newbyteorder("=")
        if a != b and a.kind in "ui" and b.kind in "ui":
            raise MovieError(
                f"pixel types differ: {first.path} holds {a.name} pixels but {m.path} holds {b.name}; a part "
                "converted apart from the others (e.g. to 8 bits in Fiji) no longer holds the camera's counts, and "
                "joined they would read as a step in every pixel — export all movies of a series alike, or "
                "analyse them separately")


def _um(value: tuple[int, int]) -> str:
    return f"{value[0] / value[1]:.6g}"


def _check_same_field(movies: Sequence[MovieInfo]) -> None:
    """isxd movies of one pixel size and one crop of the sensor: a part downsampled or cropped apart to the same
    frame size images another field, and joined pixel by pixel its cells land on the others' pixels."""
    spaced = [m for m in movies if m.spacing is not None]
    for m in spaced[1:]:
        first, a, b = spaced[0], spaced[0].spacing, m.spacing
        size_a, size_b = (a.pixel_height, a.pixel_width), (b.pixel_height, b.pixel_width)
        if [_um(v) for v in size_a] != [_um(v) for v in size_b]:
            raise MovieError(
                f"pixel sizes differ: {first.path} has pixels of {_um(size_a[0])}x{_um(size_a[1])} µm but {m.path} "
                f"of {_um(size_b[0])}x{_um(size_b[1])} µm (rows x cols): one part was spatially downsampled apart, "
                "so its frames of the same size show another field; export all movies of a series alike, or "
                "analyse them separately")
        if [_um(a.top), _um(a.left)] != [_um(b.top), _um(b.left)]:
            raise MovieError(
                f"crops differ: {first.path} starts at {_um(a.top)} µm from the sensor's top and {_um(a.left)} µm "
                f"from its left but {m.path} at {_um(b.top)} and {_um(b.left)} µm: the parts, cropped apart to the "
                "same frame size, show different parts of the sensor, so their pixels do not line up; crop all "
                "movies of a series alike, or analyse them separately")


def _refuse_overlap(in_time: Sequence[MovieInfo]) -> None:
    """isxd movies (in start-time order) must not overlap in time: one that starts before the one before it ends is
    a trimmed or processed copy of it (or of a part), and joined they analysed those frames twice."""
    for before, after in zip(in_time, in_time[1:]):
        if before.frame_period is None or after.start_time is None or before.start_time is None:
            continue
        end = before.start_time + timedelta(seconds=before.n_frames * before.frame_period)
        if (end - after.start_time).total_seconds() > before.frame_period / 2:
            raise MovieError(
                f"{before.path} ({before.start_time.isoformat()} to {end.isoformat()}) and {after.path} (from "
                f"{after.start_time.isoformat()}) overlap in time: is one a trimmed or processed copy of the other? "
                "A series needs consecutive recordings; give each recording once")


def validate_series(paths: Sequence[str | os.PathLike], *, min_frames: int = 1, tsub: int | None = None) -> MovieSeries:
    """Check a list of movie files can be analysed as one movie; raise MovieError naming the problem.

    `tsub` only adds the temporal-downsampling factor (above 1) to the too-few-frames message.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise MovieError("no movie files given; give at least one .isxd, .tif/.tiff or .avi movie")

    for p in paths:  # a folder has no movie extension: say it is a folder, not an unsupported file type
        if Path(os.fspath(p)).expanduser().is_dir():
            check_file(p)
    kinds = [kind_of(p) for p in paths]
    if len(set(kinds)) > 1:
        listing = "; ".join(f"{p} ({k})" for p, k in zip(paths, kinds))
        raise MovieError(f"a series must hold one file type, got {sorted(set(kinds))}: {listing}; "
                         "convert the movies to one format or analyse them separately")

    if kinds[0] != "isxd":  # isxd movies are ordered by their start times
        _refuse_name_sorted_numbers(paths)
    _refuse_listed_twice(paths)
    movies = tuple(_reported_member_info(k, p, paths) for k, p in enumerate(paths))

    for m in movies:
        if m.n_frames == 0:
            raise MovieError(f"{m.path} has 0 frames; give a movie with frames or leave it out of the series")
        if len(m.invalid_frames) >= m.n_frames:
            raise MovieError(f"all {m.n_frames} frames of {m.path} are dropped or cropped; "
                             "leave it out of the series")
        if min(m.frame_shape) < MIN_FRAME_SIDE:
            raise MovieError(
                f"{m.path} has frames of {m.frame_shape[0]}x{m.frame_shape[1]} pixels (rows x cols), too narrow to "
                f"hold a cell; is it a line scan, or a movie stored with its axes in another order (frames last)? "
                f"Give a movie whose frames are at least {MIN_FRAME_SIDE} pixels on each side")

    _check_ome_parts(movies)
    _check_alike(movies)
    _check_same_field(movies)
    first = movies[0]
    timed = [m for m in movies if m.frame_period is not None]
    for m in timed[1:]:
        if not math.isclose(m.frame_period, timed[0].frame_period, rel_tol=0.0, abs_tol=PERIOD_ATOL_S):
            raise MovieError(
                f"frame periods differ: {timed[0].path} has {timed[0].frame_period:.9g} s "
                f"({1 / timed[0].frame_period:.6g} Hz) but {m.path} has {m.frame_period:.9g} s "
                f"({1 / m.frame_period:.6g} Hz); all movies of a series need the same frame rate: analyse them "
                "separately, or, where a TIFF's frame interval is wrong, correct it (Fiji: Image > Properties…)"
            )

    order = tuple(range(len(movies)))
    if first.kind == "isxd":
        seen: dict = {}
        for k, m in enumerate(movies):
            if m.start_time in seen:
                raise MovieError(
                    f"{movies[seen[m.start_time]].path} and {m.path} have the same start time "
                    f"({m.start_time.isoformat()}); a series needs distinct start times — are they the same recording?"
                )
            seen[m.start_time] = k
        order = tuple(sorted(order, key=lambda k: movies[k].start_time))
        _refuse_overlap([movies[k] for k in order])

    total = sum(m.n_frames for m in movies)
    if total < min_frames:
        what = str(movies[0].path) if len(movies) == 1 else f"the series ({_names(movies)})"
        downsampled = tsub is not None and tsub > 1
        hint = f" (tsub={tsub})" if downsampled else ""
        raise MovieError(f"{what} has {total} frames; extraction needs at least {min_frames}{hint}; "
                         "give a longer movie" + (" or lower tsub" if downsampled else ""))

    rate = timed[0].frame_rate if timed else None
    source = timed[0].frame_rate_source if timed else None
    if timed and timed[0].kind == "isxd":
        rate = 1.0 / timed[0].frame_period
    return MovieSeries(movies=movies, order=order, frame_shape=first.frame_shape,
                       frame_rate=rate, frame_rate_source=source)


#: A pause between two isxd parts longer than this is another session, not a break within one: noted.
SESSION_GAP_S = 3600.0


def gap_notes(series: MovieSeries) -> list[str]:
    """A note for each pause between consecutive isxd parts longer than SESSION_GAP_S: parts recorded hours or days
    apart are joined as one movie (as the reference tool does) on the premise that each cell lies on the same
    pixels in both, which a field that moved between sessions breaks (each cell found twice, or smeared)."""
    notes = []
    in_time = [series.movies[k] for k in series.order]
    for before, after in zip(in_time, in_time[1:]):
        if before.frame_period is None or before.start_time is None or after.start_time is None:
            continue
        end = before.start_time + timedelta(seconds=before.n_frames * before.frame_period)
        gap = (after.start_time - end).total_seconds()
        if gap > SESSION_GAP_S:
            hours = f"{gap / 3600:.1f} h" if gap < 2 * 86400 else f"{gap / 86400:.1f} days"
            notes.append(f"{after.path} starts {hours} after {before.path} ends: they are analysed as one movie, so "
                         "each cell must lie on the same pixels in both; if the field moved between the sessions, "
                         "turn motion correction on or extract the sessions separately")
    return notes


def refuse_repeated_bytes(series: MovieSeries, hashes: Mapping[int, str]) -> None:
    """Refuse a series listing two files with the same bytes (sha256 by movie index): a copy listed with its original
    (``day1.tif`` and ``day1 - Copy.tif``) was analysed as the recording followed by itself. Checked where the
    hashes are made, before any compute; names cannot tell, and reading every movie at validation would cost more."""
    seen: dict[str, int] = {}
    for index, digest in hashes.items():
        if digest in seen:
            first, again = series.movies[seen[digest]].path, series.movies[index].path
            raise MovieError(f"{first} and {again} hold the same bytes (sha256 {digest[:12]}…): the series would "
                             "analyse one recording twice; list each movie once")
        seen[digest] = index


def _untimed_warning(series: MovieSeries, rate: float, source: str | None) -> list[str]:
    """The warning for a series whose rate comes from some of its files while others carry none: their rate is
    assumed, not read (a TIFF exported without metadata beside one that has it)."""
    untimed = [m for m in series.movies if m.frame_period is None]
    if not untimed or len(untimed) == len(series.movies):
        return []
    timed = next(m for m in series.movies if m.frame_period is not None)
    verb = "carries" if len(untimed) == 1 else "carry"
    return [f"{_names(untimed)} {verb} no frame rate; the series is analysed at {rate:.6g} Hz from {timed.path} "
            f"({source}) — set fr if they were recorded at another rate"]


def resolve_frame_rate(series: MovieSeries, user_fr: float | None) -> tuple[float, str, list[str]]:
    """The frame rate to analyse with: (fr, where it came from, warnings to log)."""
    meta, source = series.frame_rate, series.frame_rate_source
    names = _names(series.movies)
    if isinstance(user_fr, str) and user_fr.strip().lower() == "auto":
        user_fr = None
    implausible = meta is not None and not PLAUSIBLE_FR[0] <= meta <= PLAUSIBLE_FR[1]
    if user_fr is None:
        if implausible:
            raise ParameterError(
                f"the frame rate in the metadata of {names} reads {meta:.6g} Hz ({source}), outside the "
                f"{PLAUSIBLE_FR[0]:g}-{PLAUSIBLE_FR[1]:g} Hz calcium imaging runs at: its unit is likely wrong (a "
                "frame interval in ms read as seconds?), and the deconvolution would take every decay to be as far "
                "off; set fr to the recording's frame rate")
        if meta is not None:
            return float(meta), str(source), _untimed_warning(series, meta, source)
        return DEFAULT_FRAME_RATE, "default", [
            f"no frame-rate metadata in {names}; using {DEFAULT_FRAME_RATE:g} fps — set fr"]
    try:
        fr = float(user_fr)
    except (TypeError, ValueError):
        raise ParameterError(f"fr must be a number of frames per second or 'auto', got {user_fr!r}") from None
    if not (math.isfinite(fr) and fr > 0):
        raise ParameterError(f"fr must be a positive number of frames per second, got {user_fr!r}")
    if meta is None:
        return fr, "user", []
    if implausible:
        return fr, "user", [f"the frame rate in the metadata of {names} reads {meta:.6g} Hz ({source}), which no "
                            f"calcium imaging runs at; using fr={fr:g} as set"]
    if math.isclose(fr, meta, rel_tol=FR_RTOL):
        return float(meta), str(source), []
    if series.kind in ("isxd", "avi"):
        return float(meta), str(source), [
            f"fr={fr:g} disagrees with the frame rate in {names} ({meta:.6g} Hz from {source}); "
            f"using the file's {meta:.6g} Hz"]
    return fr, "user", [
        f"fr={fr:g} disagrees with the TIFF metadata of {names} ({meta:.6g} Hz from {source}); "
        f"using fr={fr:g} as set"]
