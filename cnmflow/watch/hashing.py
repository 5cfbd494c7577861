"""Content identity: a run is keyed by what its files hold, not by their names.

A file rewritten with new content is a new recording and must be processed again; a file
merely touched (same bytes) must not.  Hashing a large movie is slow, so each file's hash is
remembered for its size and mtime and only recomputed when those change.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

from cnmflow.lineage import sha256_file


def content_id(members: Sequence[str], hashes: Mapping[str, str]) -> str:
    """One sha256 over a run's files: their names (within the run) in order and their hashes."""
    digest = hashlib.sha256()
    for path in members:
        digest.update(f"{path.rsplit('/', 1)[-1]}\0{hashes[path]}\n".encode())
    return digest.hexdigest()


__all__ = ["content_id", "sha256_file"]
