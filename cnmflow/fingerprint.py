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
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from cnmflow.atomic_write import atomic_path
from cnmflow.file_memo import IdentityMemo, file_identity
from cnmflow.lineage import sha256_file
from cnmflow.movies.series import MovieSeries, refuse_repeated_bytes
from cnmflow.params import Params

PACKAGE_DIR = Path(__file__).resolve().parent
#: The parts of cnmflow that decide what a run computes and writes (not tracking, CLI or reports).
COMPUTING_SOURCES: tuple[str, ...] = ("engine", "motion", "movies", "outputs", "params.py", "params_file.py", "request.py",
                                      "validate.py", "pipeline.py", "isx_timing.py", "lineage.py")


#: Each file's sha256 by its identity; 4096 entries are ~1 MB, more files than a day of recordings.
_HASHES = IdentityMemo(max_entries=4096)


def file_hash(path: str | os.PathLike, *, remembered_in: Path | None = None) -> str:
    """sha256 of a file, remembered while its identity (:func:`file_identity`) stays the same: for this
    process, and across runs in ``remembered_in`` (a folder of small records, e.g. the results cache's).

    A parameter sweep validates the same movie once per combination, and a user re-runs the same
    movie with new parameters; re-reading gigabytes for each would dominate short runs.
    """
    def read() -> str:
        return stored_hash(path, remembered_in) if remembered_in is not None else sha256_file(path)

    return _HASHES.get(file_identity(path), read)


def stored_hash(path: str | os.PathLike, folder: Path) -> str:
    """sha256 of a file from its record in ``folder`` while the file's identity matches it, else read and
    recorded (one record per path; a file that changed while it was read is not recorded)."""
    identity = file_identity(path)
    record_path = Path(folder) / f"{hashlib.sha256(identity[0].encode()).hexdigest()[:32]}.json"
    try:
        record = json.loads(record_path.read_text())
        if tuple(record["identity"]) == identity and isinstance(record["sha256"], str):
            return record["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no record, or one of another state of the file (or damaged): read the file
    digest = sha256_file(path)
    if file_identity(path) == identity:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with atomic_path(record_path) as staged:
                staged.write_text(json.dumps({"identity": list(identity), "sha256": digest}))
        except OSError:
            pass  # a cache that cannot be written costs the next run a re-read, never this run
    return digest


def input_hashes(series, *, remembered_in: Path | None = None) -> dict[int, str]:
    """sha256 of every movie of a series, by its index in the user's order (streamed; see :func:`file_hash`); two
    movies of the same bytes are refused (:func:`~cnmflow.movies.series.refuse_repeated_bytes`)."""
    hashes = {index: file_hash(movie.path, remembered_in=remembered_in) for index, movie in enumerate(series.movies)}
    refuse_repeated_bytes(series, hashes)
    return hashes


def series_key(hashes: Mapping[int, str], series: MovieSeries | None = None) -> str:
    """Names a series' work copies: the input bytes in the user's order only, whatever the parameters
    (runs with other settings on the same movies share the concatenated copy) — and the defective pixels a copy of
    ``series`` has mended and the blank frames it has filled, where it has some (a copy kept from a version that
    mended other pixels, or kept blank frames as they are stored, is not reused)."""
    mended = [list(map(list, movie.defective_pixels)) for movie in series.movies] if series is not None else []
    blank = [list(movie.blank_frames) for movie in series.movies] if series is not None else []
    text = ("".join(hashes[k] for k in sorted(hashes)) + (json.dumps(mended) if any(mended) else "")
            + (json.dumps({"blank": blank}) if any(blank) else ""))
    return hashlib.sha256(text.encode()).hexdigest()


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
