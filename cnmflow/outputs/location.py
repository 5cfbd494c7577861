"""Can results be written at this path?  Decided in milliseconds, before any compute.

An output folder that is a file, lies under a file, is a dangling symbolic link or is not
writable otherwise fails only after validation, hashing and concatenation, with a traceback
that blames the work directory; here each gets one line naming the folder and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnmflow.errors import InputError


def check_output_location(output_dir: str | os.PathLike, *, label: str = "output_dir") -> Path:
    """The absolute folder, or InputError saying why results cannot be written there.

    ``label`` names the folder in the message as the user gave it (``output_dir``, ``--work-dir``).
    """
    folder = Path(output_dir).expanduser().absolute()
    if folder.is_symlink() and not folder.exists():
        raise InputError(f"{label} {folder} is a symbolic link to {os.readlink(folder)}, which does not exist; "
                         "create the folder it points to or give another folder")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{label} {folder} is a file, not a folder; give a folder")
    existing = _nearest_existing(folder)
    if existing.is_symlink() and not existing.exists():
        raise InputError(f"{label} {folder} cannot be created: {existing} is a symbolic link to "
                         f"{os.readlink(existing)}, which does not exist; create that folder or give another path")
    if not existing.is_dir():
        raise InputError(f"{label} {folder} cannot be created: {existing} is a file, not a folder; "
                         "give a path under a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" (its nearest existing parent {existing} is not)"
        raise InputError(f"{label} {folder} is not writable{where}; make it writable (or mount it read-write) "
                         "or give another folder")
    return folder


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists (a dangling link on the way counts as existing)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(folder.anchor)
