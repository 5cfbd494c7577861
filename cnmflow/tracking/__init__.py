"""MLflow tracking of finished output folders and parameter sweeps (issue #6).

The engine and the writers know nothing of MLflow: a run is tracked *after* its output folder
is complete, from what the folder holds (``manifest.json``, ``output_metadata.json``,
``caiman_output.hdf5``, previews).  Modules, one job each:

- :mod:`.errors`    -- :class:`TrackingError`;
- :mod:`.uri`       -- which tracking URI (no MLflow import);
- :mod:`.store`     -- a client known to answer, the experiment;
- :mod:`.params`    -- parameters flattened as CaImAn ``group.name`` keys, and back;
- :mod:`.folder`    -- what an output folder says: metrics, params, tags, inputs;
- :mod:`.log_run`   -- :func:`log_output_folder`, one MLflow run per output folder;
- :mod:`.compare`   -- comparison rows from folders or from MLflow, and their text table;
- :mod:`.figures`   -- the comparison table image and the footprint contact sheet;
- :mod:`.sweep`     -- the parent run of a parameter sweep;
- :mod:`.commands`  -- ``cnmflow track`` and ``cnmflow compare``.

Importing this package does not import MLflow (``import mlflow`` costs ~1.4 s); the names
below are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TrackingError": "errors",
    "DEFAULT_EXPERIMENT": "uri",
    "tracking_uri": "uri",
    "log_output_folder": "log_run",
    "log_scores": "log_run",
    "comparison_rows": "compare",
    "format_table": "compare",
    "Comparison": "sweep",
    "start_sweep_run": "sweep",
    "finish_sweep": "sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
