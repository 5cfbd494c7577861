"""The extraction results' cache held within a size (``CNMFLOW_CACHE_MAX_GB``), least recently used first out.

Every run stores its components under its fingerprint so that a re-run, a sweep's repeat or an export to another
folder reuses them (``settings.results_cache``). A folder watched for months caches every recording it ever saw,
hundreds of MB for a long one, so the cache is pruned after each run: results are kept newest-used first while
they fit in the bound, and the run's own result is always kept. A result served from the cache is marked used
(its modification time), so a recording re-exported often stays. Deleting a result only costs a refit later: a
run that expected one and finds it gone computes it again (``tasks.extract``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The start of the extract task's cache key (``tasks.extract.fingerprint_key``), which names its stored result;
#: nothing else in the folder is touched.
RESULT_PREFIX = "extract-"


def mark_used(result: Path) -> None:
    """Record that ``result`` served a run now (a missing file is left missing)."""
    try:
        os.utime(result)
    except FileNotFoundError:
        pass


def prune(folder: Path, *, max_bytes: float, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used results in ``folder`` until the rest fit in ``max_bytes``; ``keep`` is never
    deleted (and counts first). The deleted files, oldest last."""
    results = []
    for entry in os.scandir(folder) if folder.is_dir() else ():
        if entry.name.startswith(RESULT_PREFIX) and entry.is_file(follow_symlinks=False):
            stat = entry.stat(follow_symlinks=False)
            results.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    total = sum(size for _, size, path in results if path == keep)
    deleted = []
    for _, size, path in sorted(results, key=lambda result: result[0], reverse=True):
        if path == keep:
            continue
        if total + size <= max_bytes:
            total += size
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted
