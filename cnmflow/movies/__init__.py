"""Movie input: readers for .isxd / .tif(f) / .avi, series checks, and concatenation."""

from cnmflow.movies.concat import ConcatenatedMovie, concatenate, work_directory
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import SUPPORTED_EXTENSIONS, iter_chunks, read_frames, read_info
from cnmflow.movies.series import MovieSeries, resolve_frame_rate, validate_series
from cnmflow.movies.work_copy import ensure_work_copy, find_work_copy, remove_work_copy

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ConcatenatedMovie",
    "MovieInfo",
    "MovieSeries",
    "concatenate",
    "ensure_work_copy",
    "find_work_copy",
    "iter_chunks",
    "read_frames",
    "read_info",
    "remove_work_copy",
    "resolve_frame_rate",
    "validate_series",
    "work_directory",
]
