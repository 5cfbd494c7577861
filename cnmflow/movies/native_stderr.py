"""Catch what native (C/C++) code prints to the process's standard error.

`isx` is a C++ library: on a damaged file it prints lines such as
``isxMosaicMovieFile.cpp:604: Exception - Error reading movie frame: …`` straight to file
descriptor 2, where replacing ``sys.stderr`` cannot catch them. `captured_stderr` points fd 2
at a temporary file for the duration of a call, so the useful part can go into the error
message instead of leaking above it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

_LOCK = threading.RLock()  # fd 2 is process-wide: one capture at a time
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
def captured_stderr() -> Iterator[Captured]:
    """Redirect fd 2 to a temporary file while the block runs.

    Native diagnostic lines are kept in the yielded `Captured` (and logged at debug level);
    anything else written meanwhile (another thread's output) is written back to stderr.
    """
    result = Captured()
    with _LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (e.g. a daemon): nothing to capture
            yield result
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield result
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                _sort_output(sink.read().decode("utf-8", "replace"), result)


def _sort_output(text: str, result: Captured) -> None:
    """Keep native diagnostics in `result`; write everything else back to stderr."""
    other: list[str] = []
    for line in text.splitlines(keepends=True):
        if _NATIVE_LINE.search(line):
            result.lines.append(line.rstrip("\n"))
            log.debug("native stderr: %s", line.rstrip())
        else:
            other.append(line)
    if other:
        try:
            os.write(2, "".join(other).encode("utf-8", "replace"))
        except OSError:
            pass


def with_detail(message: str, captured: Captured) -> str:
    """`message` plus the native diagnostics that are not already part of it."""
    extra = [part for part in captured.detail().split("; ") if part and part not in message]
    return f"{message} ({'; '.join(extra)})" if extra else message
