"""Is a file finished?  Only when two scans saw the same size and mtime.

Acquisition software and copies write movies over minutes; starting on a half-written file
gives a truncated or unreadable movie.  There is no portable "file closed" signal, so the
watcher compares each scan's observation with the one remembered from an earlier scan.
An empty file is never ready: acquisition software and some copy tools create the file first
and write its data later, so an empty movie is one whose data has not come yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnmflow.watch.scan import Observation


@dataclass(frozen=True)
class Remembered:
    """What the ledger keeps of a path: the observation and the scan that first made it."""

    size: int
    mtime_ns: int
    scan_id: str
    seen_at: float


def readiness(previous: Remembered | None, current: Observation, *, scan_id: str, now: float,
              min_age_s: float = 0.0) -> str | None:
    """None when ``current`` is ready, else why not (shown to the user as "growing: <why>").

    Ready means a file with data that an earlier scan (not this one) saw with the same size and
    mtime, at least ``min_age_s`` seconds ago (a guard for two scans that happen to run back to back).
    """
    if current.size == 0 and not current.path.endswith("/"):
        return "empty (0 bytes): waiting for its data; remove the file if no recording is coming"
    if previous is None:
        return "first seen; checked again at the next scan"
    if (previous.size, previous.mtime_ns) != (current.size, current.mtime_ns):
        return f"changed since the last scan ({previous.size} -> {current.size} bytes)"
    if previous.scan_id == scan_id:
        return "first seen; checked again at the next scan"
    if now - previous.seen_at < min_age_s:
        return f"unchanged for {now - previous.seen_at:.0f} s only (needs {min_age_s:g} s)"
    return None
