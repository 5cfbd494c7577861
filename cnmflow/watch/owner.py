"""Who holds a claim, and whether that watcher is still alive.

A claim records the watcher's host, pid and the process's start time.  On the same host a
claim whose process is gone (or whose pid now belongs to a newer process: pids are reused,
e.g. every container restart starts over at low pids) is abandoned and may be taken over.
On another host liveness cannot be checked; there only the claim's age limit frees it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid (Linux: boot id and
    start time in clock ticks); None where the system does not tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    return f"{_boot_id()}:{fields[19]}"  # field 22 of the full line: starttime


@dataclass(frozen=True)
class Owner:
    """A watcher process."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> "Owner":
        """This process."""
        return cls(socket.gethostname(), os.getpid(), process_start(os.getpid()))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_alive(owner: Owner) -> bool | None:
    """True/False for a watcher on this host; None when it ran elsewhere (cannot be checked)."""
    if owner.host != socket.gethostname():
        return None
    if owner.pid <= 0 or not _pid_exists(owner.pid):
        return False
    if owner.started is None:
        return True
    now_started = process_start(owner.pid)
    return now_started is None or now_started == owner.started
