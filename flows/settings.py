"""Where orchestration keeps its files: the extraction cache and the movies' work copies.

``CNMFLOW_CACHE_DIR`` (default ``~/.cache/cnmflow``) holds cached extraction results, keyed by
run fingerprint; delete it freely, runs then recompute.  A run's concatenated movie goes to the
flow's ``work_dir`` parameter, by default a hidden folder in the output folder; runs sharing a
copy each hold it, and the last one removes it (see :mod:`cnmflow.movies.work_copy`).  ``CNMFLOW_DASK_ADDRESS`` (e.g. ``tcp://10.0.0.5:8786``) sends patch jobs
to a Dask cluster when a run does not name one.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnmflow.movies.work_copy import WORK_DIR_NAME

CACHE_ENV = "CNMFLOW_CACHE_DIR"
DASK_ENV = "CNMFLOW_DASK_ADDRESS"


def cache_dir() -> Path:
    """Folder for Prefect's stored extraction results (created on first use)."""
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured).expanduser() if configured else Path.home() / ".cache" / "cnmflow"
    folder = base / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def work_root(output_dir: Path, work_dir: str | None) -> Path:
    """Where the run's float32 copy of the series is written."""
    return Path(work_dir).expanduser().absolute() if work_dir else output_dir / WORK_DIR_NAME


def dask_scheduler(address: str | None) -> str | None:
    """The Dask scheduler a run's patch jobs go to: the run's own, else the environment's, else none."""
    return address or os.environ.get(DASK_ENV) or None
