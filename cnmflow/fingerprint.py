"""The identity of a run's work: input bytes + effective parameters + the code that computes.

Two runs with the same fingerprint compute the same components, so the orchestrator can reuse a
result (Prefect's cache key) and an output folder can tell whether it is up to date.  The code
is identified by the content of the source files that compute and write results, not by a
version string, so an edited checkout never reuses results of the code before the edit.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from cnmflow.lineage import sha256_file
from cnmflow.params import Params

PACKAGE_DIR = Path(__file__).resolve().parent
#: The parts of cnmflow that decide what a run computes and writes (not tracking, CLI or reports).
COMPUTING_SOURCES: tuple[str, ...] = ("engine", "motion", "movies", "outputs", "params.py", "params_file.py", "request.py",
                                      "validate.py", "pipeline.py", "isx_timing.py", "lineage.py")


_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered for this process while its size and mtime stay the same.

    A parameter sweep validates the same movie once per combination; re-reading gigabytes for
    each would dominate short runs.
    """
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is None:
        known = sha256_file(path)
        with _HASHES_LOCK:
            _HASHES[key] = known
    return known


def input_hashes(series) -> dict[int, str]:
    """sha256 of every movie of a series, by its index in the user's order (streamed)."""
    return {index: file_hash(movie.path) for index, movie in enumerate(series.movies)}


def series_key(hashes: Mapping[int, str]) -> str:
    """Names a series' work copies: the input bytes in the user's order only, whatever the parameters
    (runs with other settings on the same movies share the concatenated copy)."""
    return hashlib.sha256("".join(hashes[k] for k in sorted(hashes)).encode()).hexdigest()


@lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over the computing sources (names and bytes), computed once per process."""
    digest = hashlib.sha256()
    files = [path for name in COMPUTING_SOURCES
             for path in ([PACKAGE_DIR / name] if name.endswith(".py") else (PACKAGE_DIR / name).rglob("*.py"))]
    for path in sorted(files):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_fingerprint(hashes: Mapping[int, str], params: Params) -> str:
    """Hex digest naming the computation: ordered input hashes, every parameter, the code.

    ``n_processes`` is left out: it changes how fast the work runs, not what it computes.
    """
    values = params.model_dump(mode="json", exclude={"n_processes"})
    payload = {"inputs": [hashes[index] for index in sorted(hashes)], "params": values,
               "code": source_digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
