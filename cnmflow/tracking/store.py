"""A client for a tracking URI that is known to answer, and the experiment to log into.

MLflow's defaults depend on the current directory (``./mlflow.db``, ``./mlruns``), so every
call here takes the URI explicitly (see :mod:`.uri`) and a sqlite store keeps its artifacts
beside its database.  An unreachable server is found by one short probe instead of MLflow's retries (minutes with
the default five retries and exponential back-off).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlparse

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cnmflow.tracking.errors import TrackingError
from cnmflow.tracking.uri import sqlite_path

ARTIFACTS_NAME = "mlartifacts"

#: Seconds the reachability probe of an http(s) tracking server may take.
PROBE_TIMEOUT_S = 5.0

_TRACK_LATER = "or track later with `cnmflow track OUTPUT_DIR --tracking-uri URI`"


def how_to_fix(uri: str) -> str:
    """What the user can do when ``uri`` fails."""
    if urlparse(uri).scheme in ("http", "https"):
        return f"start the server (e.g. `mlflow server --host 127.0.0.1 --port 5000`) or check the URI, {_TRACK_LATER}"
    return f"check the URI and that the store is writable, {_TRACK_LATER}"


def check_reachable(uri: str) -> None:
    """Raise TrackingError unless an http(s) tracking server answers within PROBE_TIMEOUT_S.

    Any HTTP answer (even 401 or 404) means a server is there; only a refused or timed-out
    connection is "unreachable".  Other stores are checked by their first real call.
    """
    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason}); {how_to_fix(uri)}") from None


def connect(uri: str) -> MlflowClient:
    """A client for ``uri`` whose server answers (sqlite: its folder is created)."""
    check_reachable(uri)
    database = sqlite_path(uri)
    try:
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=uri)
    except (MlflowException, OSError, ValueError) as err:
        raise tracking_failure(uri, err) from err


def tracking_failure(uri: str, err: BaseException) -> TrackingError:
    """A TrackingError naming the URI, what went wrong and what to do."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return TrackingError(f"could not track to MLflow at {uri}: {text[:500]}; {how_to_fix(uri)}")


@contextmanager
def reported(uri: str) -> Iterator[None]:
    """Turn any failure of the block into a TrackingError naming ``uri`` (the original is chained)."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 -- every store failure is reported the same way
        raise tracking_failure(uri, err) from err


def artifact_location(uri: str, experiment: str) -> str | None:
    """For a sqlite store: ``<db folder>/mlartifacts/<experiment>``; None lets a server decide."""
    database = sqlite_path(uri)
    if database is None:
        return None
    safe = re.sub(r"[^0-9A-Za-z._-]+", "_", experiment).strip("._") or "experiment"
    return (database.parent.absolute() / ARTIFACTS_NAME / safe).as_uri()


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created when absent (two callers at once both get the same id)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri, name))
        except MlflowException:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {name!r} at {uri} is deleted; restore it "
                            f"(`mlflow experiments restore --experiment-id {found.experiment_id}`) "
                            "or choose another experiment name")
    return found.experiment_id
