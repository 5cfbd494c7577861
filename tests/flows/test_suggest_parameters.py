"""The suggest-parameters flow: the values as a Prefect artifact, the figure on disk."""

from __future__ import annotations

import pytest
import tifffile
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from cnmflow.synthetic.realistic import simulate_realistic_1p

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_the_flow_reports_the_values_and_writes_the_figure(tmp_path):
    from cnmflow.flows.suggest_parameters import suggest_parameters

    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("cortex_l23", shape=(80, 80), n_frames=300, rng=8).movie)
    figure = tmp_path / "suggest.png"
    values = suggest_parameters([str(movie)], str(figure))
    assert set(values) == {"gSig", "gSiz", "min_corr", "min_pnr"} and figure.stat().st_size > 20_000
    with get_client(sync_client=True) as prefect:
        (table,) = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["suggested-parameters"])))
    assert "half-max" in table.data and f"{values['min_pnr']:g}" in table.data


def test_a_suggestion_for_a_missing_movie_fails_with_a_failure_summary(tmp_path):
    from cnmflow.errors import InputError
    from cnmflow.flows.suggest_parameters import suggest_parameters
    from tests.runs import flow_run_artifacts

    missing = tmp_path / "no_such_movie.tif"
    state = suggest_parameters([str(missing)], str(tmp_path / "suggest.png"), return_state=True)
    assert state.is_failed() and state.message.startswith("suggest:") and "no_such_movie.tif" in state.message
    with pytest.raises(InputError):
        state.result()
    failure = flow_run_artifacts(state.state_details.flow_run_id)["suggest-parameters-failure"].data
    assert failure.startswith("# Parameter suggestion failed in suggest") and str(missing) in failure
    assert not (tmp_path / "suggest.png").exists()
