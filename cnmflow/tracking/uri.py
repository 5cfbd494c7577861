"""Which tracking store: the URI from the environment, else a sqlite file beside the outputs.

Kept free of MLflow imports so the CLI and the flows can name the store without paying for
``import mlflow``.  MLflow's own default depends on the current directory; ours does not.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "source-extraction"
DB_NAME = "mlflow.db"


def tracking_uri(output_root: str | os.PathLike) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a sqlite store ``<output_root>/mlflow.db`` (absolute)."""
    from_env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{Path(output_root).absolute() / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])
