"""The memory of one chunk of frames in the engine's passes over a whole movie ($CNMFLOW_CHUNK_MB).

Its own module so that the engine's settings (:mod:`cnmflow.engine.sections`) can check it
without importing the fit that uses it.
"""

from __future__ import annotations

import os

from cnmflow.errors import ParameterError

#: Default memory (MB) of one chunk of frames in the passes over the whole movie.
DEFAULT_CHUNK_MB = 128.0
#: Environment variable that sets the chunk memory for every run (CLI, flows, deployments).
CHUNK_MB_VARIABLE = "CNMFLOW_CHUNK_MB"


def chunk_mb_setting() -> float:
    """The chunk memory from ``$CNMFLOW_CHUNK_MB``, else the default; a bad value is refused."""
    text = os.environ.get(CHUNK_MB_VARIABLE, "").strip()
    if not text:
        return DEFAULT_CHUNK_MB
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ParameterError(f"{CHUNK_MB_VARIABLE}={text!r} must be a positive number of megabytes "
                             f"(default {DEFAULT_CHUNK_MB:g}); unset it or set e.g. {CHUNK_MB_VARIABLE}=64")
    return value
