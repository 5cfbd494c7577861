"""Which tracking store: the machine's configured URI, else a sqlite file beside the outputs.

Kept free of MLflow imports so the CLI and the flows can name the store without paying for
``import mlflow``.  MLflow's own default depends on the current directory; ours does not.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnmflow.settings import Settings, load_settings

DEFAULT_EXPERIMENT = "source-extraction"
DB_NAME = "mlflow.db"


def tracking_uri(output_root: str | os.PathLike, machine: Settings | None = None) -> str:
    """The machine's store (``MLFLOW_TRACKING_URI``, see :class:`cnmflow.settings.Settings`; read from the
    environment when ``machine`` is not given) when set, else a sqlite store ``<output_root>/mlflow.db``
    (absolute)."""
    configured = (machine or load_settings()).tracking_uri
    if configured:
        return configured
    return f"sqlite:///{Path(output_root).absolute() / DB_NAME}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])
