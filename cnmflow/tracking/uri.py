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


#: Where ``mlflow ui`` serves a local (sqlite) store by default; a server URI is its own UI.
LOCAL_UI = "http://127.0.0.1:5000"


def ui_address(uri: str) -> str:
    """The web address of the MLflow UI showing ``uri``: the server itself, else ``mlflow ui``'s default."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return LOCAL_UI


#: MLflow 3.17's UI opens an experiment as the GenAI/Model-training switch says (default GenAI: an overview
#: of traces) whatever the experiment-kind tag; a link with ``workflowType=machine_learning`` opens the runs.
ML_WORKFLOW = "workflowType=machine_learning"
#: The shared view (an experiment tag, see :mod:`.store`) whose columns show the key metrics.
RUNS_VIEW_KEY = "cnmflow-runs"


def runs_page_url(uri: str, experiment_id: str) -> str:
    """The experiment's runs table, with the key metrics as columns (MLflow shows none by default)."""
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs?{ML_WORKFLOW}&viewStateShareKey={RUNS_VIEW_KEY}"


def run_page_url(uri: str, experiment_id: str, run_id: str) -> str:
    """One run's page in the MLflow UI."""
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs/{run_id}?{ML_WORKFLOW}"
