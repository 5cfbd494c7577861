"""Movie input: readers for .isxd / .tif(f) / .avi, series checks, and concatenation."""

from cnmflow.movies.concat import ConcatenatedMovie, concatenate, work_directory
from cnmflow.movies.info import SUPPORTED_EXTENSIONS, MovieInfo
from cnmflow.movies.read import iter_chunks, read_frames, read_info
from cnmflow.movies.series import MovieSeries, resolve_frame_rate, validate_series

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ConcatenatedMovie",
    "MovieInfo",
    "MovieSeries",
    "concatenate",
    "iter_chunks",
    "read_frames",
    "read_info",
    "resolve_frame_rate",
    "validate_series",
    "work_directory",
]
