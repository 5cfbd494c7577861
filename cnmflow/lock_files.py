"""Lock files that their last holder unlinks: is the file we locked still the one at its path?

A process can open a lock file, and before its ``flock`` succeeds the previous holder may unlink
the file on release (the output-folder lock, a work copy's users file). The lock is then held on
an orphan that nobody else will ever open, so a holder checks the path still names its file.
"""

from __future__ import annotations

import os
from pathlib import Path


def still_linked(fd: int, path: Path) -> bool:
    """Whether ``path`` names the file open as ``fd`` (False when it is gone or cannot be looked at)."""
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
