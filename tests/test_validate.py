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


def test_a_movie_without_rate_metadata_records_its_default_fr_as_default_not_metadata(tmp_path):
    """A TIFF without frame-rate metadata ran at the default 30 fps with source "metadata" (summary, manifest, MLflow
    source.fr), claiming a rate read from the file that was never there."""
    import tifffile

    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie_data(40, 24, 20), photometric="minisblack")
    resolved = validate_inputs([path], table=SMALL).resolved
    assert resolved.params.fr == 30.0 and resolved.sources["fr"] == "default"


def test_a_value_that_does_not_fit_the_frame_names_the_parameter(tmp_path):
    from cnmflow.errors import ParameterError

    path = write_isxd(tmp_path / "m.isxd", movie_data(40, 24, 20), period_ms=50, start_ms=2500)
    with pytest.raises(ParameterError, match=r"gSiz=21 does not fit the 24x20 frame"):
        validate_inputs([path], table={"gSig": 3, "gSiz": 21})
    with pytest.raises(ParameterError, match=r"border_pix=10 excludes the whole 24x20 frame"):
        validate_inputs([path], table={**SMALL, "border_pix": 10})


def test_too_few_frames_for_tsub_names_tsub_and_its_fix(tmp_path):
    """30 frames at tsub=5 were refused as needing 50 frames with no word of tsub: the user saw no reason for 50."""
    from cnmflow.errors import MovieError

    path = write_isxd(tmp_path / "m.isxd", movie_data(30, 24, 20), period_ms=50)
    with pytest.raises(MovieError) as err:
        validate_inputs([path], table={**SMALL, "tsub": 5})
    assert str(err.value) == (f"{path} has 30 frames; extraction needs at least 50 (tsub=5); "
                              "give a longer movie or lower tsub")
    with pytest.raises(MovieError, match=r"needs at least 10; give a longer movie$"):  # tsub 1: nothing to lower
        validate_inputs([write_isxd(tmp_path / "short.isxd", movie_data(8, 24, 20), period_ms=50)],
                        table={**SMALL, "tsub": 1})


@pytest.fixture(scope="module")
def wide_movies(tmp_path_factory):
    from tests.runs import wide_cells_movie

    folder = tmp_path_factory.mktemp("wide")
    return {name: wide_cells_movie(folder, name=name) for name in ("ca1", "cortex_l23")}


def test_a_gsig_set_far_below_the_cells_is_noted_before_any_compute(wide_movies):
    # issue #16's IDEAS-file row: gSig 3 on cells of half-max radius ~6.5 px; every value set, nothing "auto"
    from tests.runs import WIDE_TABLE

    inputs = validate_inputs([wide_movies["ca1"]], table=WIDE_TABLE)
    assert inputs.size_note and inputs.size_note.startswith("gSig=3 is set")
    assert "gSig to about 6" in inputs.size_note and "read min_corr / min_pnr again" in inputs.size_note
    assert [note for note in inputs.resolved.notes if "gSig=3" in note] == [inputs.size_note]
    # thresholds left to "auto" are read at the gSig set: the note does not ask to read them again
    auto = validate_inputs([wide_movies["ca1"]], table={**WIDE_TABLE, "min_corr": "auto", "min_pnr": "auto"})
    assert auto.size_note and "read min_corr" not in auto.size_note
    assert [note for note in auto.resolved.notes if "gSig=3 is set" in note] == [auto.size_note]


def test_a_gsig_of_the_cells_size_an_estimated_one_or_a_2p_run_gets_no_note(wide_movies):
    from tests.runs import WIDE_TABLE

    assert validate_inputs([wide_movies["ca1"]], table={**WIDE_TABLE, "gSig": 6, "gSiz": 25}).size_note is None
    assert validate_inputs([wide_movies["cortex_l23"]], table=WIDE_TABLE).size_note is None  # 1.4·gSig
    estimated = validate_inputs([wide_movies["ca1"]], table={**WIDE_TABLE, "gSig": "auto", "gSiz": 25})
    assert estimated.size_note is None and not any("is set" in note for note in estimated.resolved.notes)
    two_p = validate_inputs([wide_movies["ca1"]], preset="2p", table={"gSig": 3, "gSiz": 13, "fr": 10.0})
    assert two_p.size_note is None
    from cnmflow.motion_run import validate_motion_inputs  # motion correction alone seeds nothing

    assert validate_motion_inputs([wide_movies["ca1"]], table=WIDE_TABLE).size_note is None


@pytest.mark.parametrize("kind", ["flat", "noise", "tiny"])
def test_a_movie_whose_cells_cannot_be_read_validates_without_a_note(tmp_path, kind):
    """The radius only feeds a note: no blob, too few blobs or a frame too small to read it never fails a run."""
    from cnmflow.synthetic import write_tiff

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 32, dtype=np.float32)[None, None, :]  # a frame of one value holds no image: refused
    flat = np.zeros((60, 32, 32), np.float32) + np.arange(60, dtype=np.float32)[:, None, None] + ramp  # no blob
    movie = {"flat": flat, "noise": rng.normal(size=(60, 32, 32)).astype(np.float32),
             "tiny": rng.normal(size=(60, 8, 9)).astype(np.float32)}[kind]
    path = write_tiff(tmp_path / f"{kind}.tif", movie, fr=10.0)
    inputs = validate_inputs([path], table={"gSig": 1, "gSiz": 3, "fr": 10.0})
    assert inputs.size_note is None


def test_the_cells_radius_is_read_once_per_series_and_downsampling(wide_movies, monkeypatch):
    """The CLI's pre-check, the flow's validate step and a sweep's combinations validate the same movie."""
    from cnmflow.auto_params import estimate as estimate_module
    from tests.runs import WIDE_TABLE

    reads = []
    real = estimate_module.sample_radius
    monkeypatch.setattr(estimate_module, "sample_radius", lambda movie: reads.append(movie.shape) or real(movie))
    monkeypatch.setattr(estimate_module, "_CELL_RADII", estimate_module.SeriesMemo())
    first = validate_inputs([wide_movies["ca1"]], table=WIDE_TABLE)
    again = validate_inputs([wide_movies["ca1"]], table={**WIDE_TABLE, "min_pnr": 7})
    assert len(reads) == 1 and again.size_note == first.size_note
    validate_inputs([wide_movies["ca1"]], table={**WIDE_TABLE, "tsub": 1})
    assert len(reads) == 2


def test_auto_is_estimated_once_per_series_and_options(wide_movies, monkeypatch):
    """`cnmflow run` validates before the flow and the flow's validate step again, and a sweep validates each
    combination: with "auto" each would estimate the movie anew (seconds on a 256² movie) without the memo."""
    from cnmflow.auto_params import estimate as estimate_module
    from tests.runs import WIDE_TABLE

    made = []
    real = estimate_module.estimate_parameters
    monkeypatch.setattr(estimate_module, "estimate_parameters", lambda *a, **k: made.append(k) or real(*a, **k))
    monkeypatch.setattr(estimate_module, "_ESTIMATES", estimate_module.SeriesMemo())
    table = {**WIDE_TABLE, "gSig": "auto", "min_corr": "auto", "min_pnr": "auto"}
    first = validate_inputs([wide_movies["ca1"]], table=table)
    again = validate_inputs([wide_movies["ca1"]], table={**table, "merge_thr": 0.9})
    assert len(made) == 1 and again.resolved.params.min_pnr == first.resolved.params.min_pnr
    assert again.resolved.notes == first.resolved.notes  # the same evidence recorded
    validate_inputs([wide_movies["ca1"]], table={**table, "gSig": 6})  # another gSig: another estimate
    assert len(made) == 2


def test_a_series_memo_forgets_the_least_recently_used_and_never_a_failure(tmp_path):
    from types import SimpleNamespace

    from cnmflow.auto_params.estimate import SeriesMemo

    def series(name):
        path = tmp_path / name
        path.write_bytes(b"x")
        return SimpleNamespace(movies=[SimpleNamespace(path=path)], order=[0])

    memo, calls = SeriesMemo(max_entries=2), []
    a, b, c = series("a"), series("b"), series("c")
    for s in (a, b, a, c, a, b):  # b is forgotten when c comes (a was used since), then read again
        memo.get(s, (), lambda s=s: calls.append(s.movies[0].path.name) or len(calls))
    assert calls == ["a", "b", "c", "b"]

    def fails():
        calls.append("failed")
        raise ValueError("unreadable")

    for _ in range(2):
        with pytest.raises(ValueError):
            memo.get(series("d"), (), fails)
    assert calls.count("failed") == 2
    (tmp_path / "a").write_bytes(b"changed")  # a file changed: its identity too, so it is read again
    memo.get(a, (), lambda: calls.append("a again"))
    assert calls[-1] == "a again"


def test_auto_on_a_file_cut_short_names_it_and_remembers_nothing(wide_movies, tmp_path, monkeypatch):
    """A recording still being copied (truncated) gives one clear error naming the file before any estimate is
    remembered; once the copy completes, the same path is validated as the whole file is."""
    import shutil

    from cnmflow.auto_params import estimate as estimate_module
    from cnmflow.errors import MovieError
    from tests.runs import WIDE_TABLE

    monkeypatch.setattr(estimate_module, "_ESTIMATES", estimate_module.SeriesMemo())
    table = {**WIDE_TABLE, "gSig": "auto", "min_corr": "auto", "min_pnr": "auto"}
    whole = validate_inputs([wide_movies["ca1"]], table=table)
    copy = tmp_path / "copying.tif"
    data = wide_movies["ca1"].read_bytes()
    copy.write_bytes(data[:len(data) // 2])
    with pytest.raises(MovieError) as err:
        validate_inputs([copy], table=table)
    assert str(copy) in str(err.value)
    shutil.copyfile(wide_movies["ca1"], copy)  # the copy completes: same path, new bytes
    again = validate_inputs([copy], table=table)
    assert again.resolved.params.gSiz == whole.resolved.params.gSiz
    assert again.resolved.params.min_pnr == whole.resolved.params.min_pnr


def test_isxd_parts_recorded_a_day_apart_are_noted_and_a_break_within_a_session_is_not(tmp_path):
    """Sessions a day apart were joined as one movie without a word on the premise that every cell lies on the
    same pixels in both; a pause of minutes between parts of one session is no such note."""
    first = write_isxd(tmp_path / "day1.isxd", movie_data(30, 24, 20, seed=1), period_ms=100, start_ms=0)
    pause = write_isxd(tmp_path / "after_break.isxd", movie_data(30, 24, 20, seed=2), start_ms=600_000)
    day2 = write_isxd(tmp_path / "day2.isxd", movie_data(30, 24, 20, seed=3), start_ms=86_403_000)
    notes = validate_inputs([day2, pause, first], table=SMALL).resolved.notes
    said = [note for note in notes if "analysed as one movie" in note]
    assert len(said) == 1 and said[0].startswith(f"{day2} starts 23.8 h after {pause} ends"), said
    assert "turn motion correction on or extract the sessions separately" in said[0]
