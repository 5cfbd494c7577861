"""validate_inputs: what the CLI pre-check and the flow's validate task both rely on."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from cnmflow.engine.estimates import Estimates
from cnmflow.pipeline import ExtractionResult
from cnmflow.validate import validate_inputs
from tests.movies.conftest import movie_data, write_isxd

SMALL = {"gSig": 3, "gSiz": 7}


def _estimates(dims: tuple[int, int], T: int, K: int = 2) -> Estimates:
    pixels = dims[0] * dims[1]
    A = sp.random(pixels, K, density=0.05, format="csc", random_state=0, dtype=np.float32)
    traces = np.abs(np.random.default_rng(1).normal(size=(K, T))).astype(np.float32)
    zeros = np.zeros(K, np.float32)
    return Estimates(A=A, C=traces, S=traces, YrA=traces * 0, bl=zeros, c1=zeros, g=np.zeros((K, 1)),
                     neurons_sn=zeros, lam=zeros, dims=dims, sn=np.ones(pixels, np.float32),
                     b0=np.zeros(pixels, np.float32))


def test_isxd_inputs_and_results_pickle_for_the_cache(tmp_path):
    """Prefect caches ExtractionResult by pickling it: isx (ctypes) objects inside made every isxd run miss."""
    import cloudpickle
    import isx

    from cnmflow.outputs.isxd_sets import output_spacing, output_timing, write_cellset

    path = write_isxd(tmp_path / "m.isxd", movie_data(40, 24, 20), period_ms=50, start_ms=2500, dropped=[4, 9])
    inputs = validate_inputs([path], table=SMALL)
    movie = inputs.series.movies[0]
    result = ExtractionResult(inputs=inputs, estimates=_estimates((24, 20), 40), offsets={0: (0, 40)},
                              filled_frames={0: movie.invalid_frames})
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        again = loads(dumps(result))
        assert again.inputs == inputs
        assert again.inputs.series.movies[0].timing == movie.timing
        assert again.inputs.series.movies[0].spacing == movie.spacing
    assert pickle.loads(pickle.dumps(inputs)) == inputs

    # cell sets written from the unpickled description keep the input's exact timing (dropped frames too)
    restored = pickle.loads(pickle.dumps(result)).inputs.series.movies[0]
    est = result.estimates
    out = write_cellset(tmp_path / "cellset_raw.000.isxd", footprints=est.A, dims=est.dims, traces=est.C,
                        timing=output_timing(restored, fr=99.0), spacing=output_spacing(restored, dxy=1.0),
                        statuses=["undecided", "undecided"])
    source, written = isx.Movie.read(str(path)), isx.CellSet.read(str(out))
    assert written.timing == source.timing and written.spacing == source.spacing
    assert written.timing.dropped == [4, 9]
    assert (written.timing.period._impl.num, written.timing.period._impl.den) == (
        source.timing.period._impl.num, source.timing.period._impl.den)
    del source, written


def test_a_request_and_its_keyword_form_validate_alike(tmp_path):
    from cnmflow.request import RunRequest

    path = write_isxd(tmp_path / "m.isxd", movie_data(40, 24, 20), period_ms=50, start_ms=2500)
    by_request = validate_inputs([path], RunRequest(table=SMALL))
    assert by_request == validate_inputs([path], table=SMALL)
    assert by_request.resolved.sources["gSig"] == "table" and by_request.resolved.sources["fr"] == "metadata"


def test_a_value_that_does_not_fit_the_frame_names_the_parameter(tmp_path):
    from cnmflow.errors import ParameterError

    path = write_isxd(tmp_path / "m.isxd", movie_data(40, 24, 20), period_ms=50, start_ms=2500)
    with pytest.raises(ParameterError, match=r"gSiz=21 does not fit the 24x20 frame"):
        validate_inputs([path], table={"gSig": 3, "gSiz": 21})
    with pytest.raises(ParameterError, match=r"border_pix=10 excludes the whole 24x20 frame"):
        validate_inputs([path], table={**SMALL, "border_pix": 10})
