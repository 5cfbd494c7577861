"""Catch what native (C/C++) code prints to the process's standard output and error.

`isx` is a C++ library: on a damaged file it prints lines such as
``isxMosaicMovieFile.cpp:604: Exception - Error reading movie frame: …`` straight to file
descriptor 2 — and some, such as ``isxJsonUtils.cpp:646: Exception - …`` for a file that is not
an isxd at all, to descriptor 1 — where replacing ``sys.stderr`` / ``sys.stdout`` cannot catch them.
`captured_native` points both descriptors at temporary files for the duration of a call, so the
useful part can go into the error message instead of leaking above it (or into a command's output).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_LOCK = threading.RLock()  # fds 1 and 2 are process-wide: one capture at a time
#: isx's native diagnostics: "file.cpp:123: Exception - text" and assertion failures
_NATIVE_LINE = re.compile(r"\.(?:cpp|cc|cxx|h|hpp):\d+|^\s*Assertion\b|\bAssertion\b.*\bfailed")
_PREFIX = re.compile(r"^.*?[\w./-]+\.(?:cpp|cc|cxx|h|hpp):\d+:?\s*(?:Exception\s*-\s*)?")

log = logging.getLogger(__name__)


@dataclass
class Captured:
    """The native diagnostic lines printed while the capture was active (filled on exit)."""

    lines: list[str] = field(default_factory=list)

    def detail(self) -> str:
        """The diagnostics without their source-file prefixes, joined on one line."""
        seen: list[str] = []
        for line in self.lines:
            text = _PREFIX.sub("", line).strip()
            if text and text not in seen:
                seen.append(text)
        return "; ".join(seen)


@contextmanager
def captured_native() -> Iterator[Captured]:
    """Redirect fds 1 and 2 to temporary files while the block runs.

    Native diagnostic lines are kept in the yielded `Captured` (and logged at debug level);
    anything else written meanwhile (another thread's output) is written back where it was going.
    """
    result = Captured()
    with _LOCK, ExitStack() as stack:
        for fd in (1, 2):
            stack.enter_context(_redirected(fd, result))
        yield result


@contextmanager
def _redirected(fd: int, result: Captured) -> Iterator[None]:
    """``fd`` pointed at a temporary file while the block runs, its native lines sorted into ``result`` after."""
    stream = sys.stdout if fd == 1 else sys.stderr
    try:
        stream.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(fd)
    except OSError:  # no such fd (e.g. a daemon): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            _sort_output(sink.read().decode("utf-8", "replace"), result, fd)


def _sort_output(text: str, result: Captured, fd: int) -> None:
    """Keep native diagnostics in `result`; write everything else back to ``fd``."""
    other: list[str] = []
    for line in text.splitlines(keepends=True):
        if _NATIVE_LINE.search(line):
            result.lines.append(line.rstrip("\n"))
            log.debug("native output: %s", line.rstrip())
        else:
            other.append(line)
    if other:
        try:
            os.write(fd, "".join(other).encode("utf-8", "replace"))
        except OSError:
            pass


def with_detail(message: str, captured: Captured) -> str:
    """`message` plus the native diagnostics that are not already part of it."""
    extra = [part for part in captured.detail().split("; ") if part and part not in message]
    return f"{message} ({'; '.join(extra)})" if extra else message
