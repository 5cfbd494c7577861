"""A client for a tracking URI that is known to answer, and the experiment to log into.

MLflow's defaults depend on the current directory (``./mlflow.db``, ``./mlruns``), so every
call here takes the URI explicitly (see :mod:`.uri`) and a sqlite store keeps its artifacts
beside its database.  An unreachable server is found by one short probe instead of MLflow's retries (minutes with
the default five retries and exponential back-off).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlparse

import PIL.Image
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cnmflow.tracking.errors import TrackingError
from cnmflow.tracking.uri import RUNS_VIEW_KEY, sqlite_path

ARTIFACTS_NAME = "mlartifacts"

#: MLflow 3's experiment-kind tag: without it the UI may open an experiment on its GenAI overview
#: (traces, token usage) and hide the runs; "custom_model_development" opens the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
RUNS_KIND = "custom_model_development"
#: A shared view of the runs table (MLflow's "share view": an experiment tag the link's
#: ``viewStateShareKey`` names) showing the key metrics, which the table otherwise hides.
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
KEY_METRICS = ("n_components", "n_accepted", "n_rejected", "snr_median", "runtime_s")

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
    """The id of experiment ``name``, created when absent (two callers at once both get the same id).

    The experiment opens on its runs in the UI: a new one is created with the experiment-kind tag,
    an existing one without a kind gets it (a kind a user chose is kept).
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri, name),
                                            tags={EXPERIMENT_KIND_TAG: RUNS_KIND, RUNS_VIEW_TAG: runs_view()})
        except MlflowException:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise TrackingError(f"MLflow experiment {name!r} at {uri} is deleted; restore it "
                            f"(`mlflow experiments restore --experiment-id {found.experiment_id}`) "
                            "or choose another experiment name")
    if not kind_chosen(found.tags.get(EXPERIMENT_KIND_TAG)):
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, RUNS_KIND)
    if RUNS_VIEW_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, RUNS_VIEW_TAG, runs_view())
    return found.experiment_id


def runs_view(params: Sequence[str] = (), *, current: str | None = None) -> str:
    """The shared runs view: the dataset, the key metrics and ``params`` (MLflow keys) as columns, added
    to the columns of ``current`` (the tag's present value)."""
    columns = ["attributes.`Dataset`", *(f"metrics.`{name}`" for name in KEY_METRICS)]
    try:
        columns = list(json.loads(current).get("selectedColumns", [])) if current else columns
    except (ValueError, AttributeError):
        pass
    columns += [column for column in (f"params.`{key}`" for key in params) if column not in columns]
    return json.dumps({"selectedColumns": columns})


def show_params_in_runs_view(client: MlflowClient, experiment: str, params: Sequence[str]) -> None:
    """Add parameter columns (e.g. a sweep's varied ones) to the experiment's shared runs view."""
    current = client.get_experiment(experiment).tags.get(RUNS_VIEW_TAG)
    client.set_experiment_tag(experiment, RUNS_VIEW_TAG, runs_view(params, current=current))


def kind_chosen(kind: str | None) -> bool:
    """Whether an experiment's kind was set on purpose (not absent, nor one the UI only inferred)."""
    return bool(kind) and not kind.endswith("_inferred") and kind != "no_inferred_type"


def log_image_file(client: MlflowClient, run_id: str, path: str | Path, *, key: str, logged_at: int) -> None:
    """Log the image file ``path`` as MLflow image ``key`` (what the chart view's image grid compares)."""
    with PIL.Image.open(path) as image:
        client.log_image(run_id, image.convert("RGB"), key=key, step=0, timestamp=logged_at)
