"""``cnmflow suggest``: values with reasons on stdout, and the figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from cnmflow.cli import main
from cnmflow.synthetic.realistic import simulate_realistic_1p


def test_suggest_prints_the_values_and_writes_the_figure(tmp_path, capsys):
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("cortex_l23", shape=(96, 96), n_frames=400, rng=5).movie)
    figure = tmp_path / "fig" / "suggest.png"
    assert main(["suggest", str(movie), "--output", str(figure)]) == 0
    out = capsys.readouterr().out
    for name in ("gSig", "gSiz", "min_corr", "min_pnr"):
        assert f"  {name}" in out
    assert "half-max" in out and "null" in out and "--set gSig=" in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000


def test_suggest_keeps_a_gsig_given_and_refuses_a_missing_movie(tmp_path, capsys):
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=200, rng=6).movie)
    assert main(["suggest", str(movie), "--set", "gSig=4", "--output", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "  gSig" not in out and "min_pnr" in out and "Note:" not in out  # cortex's cells at gSig 4: no note
    assert main(["suggest", str(tmp_path / "absent.tif")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_2p_suggestion_gives_the_size_only_and_says_why(tmp_path, capsys):
    """greedy_roi does not read min_corr / min_pnr: suggesting them for a 2P run asked for settings that do nothing."""
    from cnmflow.synthetic import simulate_realistic_2p

    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_2p(shape=(96, 96), n_frames=300, rng=3).movie)
    assert main(["suggest", str(movie), "--preset", "2p", "--output", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "  gSig" in out and "  gSiz" in out and "  min_corr" not in out and "  min_pnr" not in out
    assert "method_init greedy_roi does not read them" in out
    assert "K=4 is set" in out and "K=auto searches until nothing stands out" in out   # the preset's K cuts it short
    use = [line for line in out.splitlines() if line.startswith("Use:")][0]
    assert "gSig=" in use and "min_pnr" not in use and "min_corr" not in use
    assert main(["suggest", str(movie), "--preset", "2p", "--set", "gSig=5", "--output", str(tmp_path / "g.png")]) == 0
    given = capsys.readouterr().out
    assert "Use: the values given" in given


def test_suggest_refuses_a_movie_with_an_infinite_pixel_before_estimating(tmp_path, capsys):
    """One inf pixel once printed ``min_pnr nan`` and ``Use: --set ... min_pnr=nan`` with exit status 0."""
    data = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=200, rng=6).movie
    data[5, 3, 3] = np.inf
    movie = tmp_path / "inf.tif"
    tifffile.imwrite(movie, data)
    figure = tmp_path / "f.png"
    assert main(["suggest", str(movie), "--output", str(figure)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert str(movie) in captured.err and "frame 5 holds 1 infinite pixel" in captured.err
    assert "nan" not in captured.out and not figure.exists()


def test_the_figure_of_a_relaxed_estimate_is_written(tmp_path):
    """The fallback's cuts (a 40-frame movie: no candidate passes the null's) are drawn next to the null's."""
    from cnmflow.auto_params import estimate_from_movie
    from cnmflow.suggest_figure import write_suggestion_figure

    sim = simulate_realistic_1p("ca1", shape=(96, 96), n_frames=40, rng=4, peak_snr=(2.0, 6.0))
    est = estimate_from_movie(sim.movie, tsub=1, gsig=7.0)   # the fallback's premise at this gSig (see test_auto_params)
    assert est.relaxed > 0
    path = write_suggestion_figure(est, tmp_path / "relaxed.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_suggest_notes_a_gsig_set_far_below_the_cells_radius(tmp_path, capsys):
    # issue #16's IDEAS-file row: the file's gSig 3 on CA1's cells of half-max radius ~6.5 px
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("ca1", shape=(128, 128), n_frames=600, rng=5).movie)
    assert main(["suggest", str(movie), "--set", "gSig=3", "--output", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "Note: gSig=3 is set, but the cells' half-max radius reads" in out and "gSig to about 6" in out


def test_suggest_says_when_min_pnr_is_the_ceiling_not_the_nulls_cut(tmp_path, capsys):
    """Dense CA1 (training seed 17): the null's PNR cut lies above the ceiling; the line for min_pnr gives both
    numbers, the value to use is the ceiling, and the figure (which marks the cut used) is written."""
    from cnmflow.auto_params import MIN_PNR_CEILING

    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("ca1", shape=(128, 128), n_frames=800, rng=17, n_neurons=240).movie)
    figure = tmp_path / "f.png"
    assert main(["suggest", str(movie), "--set", "tsub=2", "--output", str(figure)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("  min_pnr"))
    assert f"capped at {MIN_PNR_CEILING:g}" in line and "the null's cut" in line
    assert f"min_pnr={MIN_PNR_CEILING:g}" in out and figure.stat().st_size > 20_000


def _unwritable(monkeypatch, folder):
    """``folder`` reads as not writable (tests may run as root, which os.access lets write anywhere)."""
    import cnmflow.outputs.location as location

    real_access = location.os.access
    monkeypatch.setattr(location.os, "access", lambda path, mode: Path(path) != folder and real_access(path, mode))


def _no_estimate(monkeypatch):
    import cnmflow.auto_params as auto_params

    def refuse(*args, **kwargs):
        raise AssertionError("the estimate ran before the figure's path was checked")

    monkeypatch.setattr(auto_params, "estimate_parameters", refuse)


def test_suggest_writes_the_figure_in_the_current_folder_when_the_movies_folder_is_read_only(tmp_path, monkeypatch,
                                                                                               capsys):
    """A read-only acquisition share: the estimate ran, then writing the figure beside the movie failed."""
    data_dir, here = tmp_path / "share", tmp_path / "here"
    data_dir.mkdir()
    here.mkdir()
    movie = data_dir / "m.tif"
    tifffile.imwrite(movie, simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=200, rng=6).movie)
    _unwritable(monkeypatch, data_dir)
    monkeypatch.chdir(here)
    assert main(["suggest", str(movie)]) == 0
    out = capsys.readouterr().out
    assert (here / "m.tif.suggest.png").exists() and not (data_dir / "m.tif.suggest.png").exists()
    assert f"Figure: {here / 'm.tif.suggest.png'}" in out
    assert f"Note: the figure is in the current folder: the movie's folder {data_dir} cannot be written" in out
    assert not [p for p in here.iterdir() if p.name.startswith(".")]  # the temporary name was renamed


def test_suggest_refuses_a_figure_it_cannot_write_before_estimating(tmp_path, monkeypatch, capsys):
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, np.zeros((40, 16, 16), np.uint16))
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    _no_estimate(monkeypatch)
    for output, expected in ((locked / "f.png", f"the figure's folder {locked} is not writable"),
                             (tmp_path / "f.docx", ".docx is not a figure format; end the name in .png"),
                             (tmp_path, f"the figure's path {tmp_path} is a folder")):
        assert main(["suggest", str(movie), "--output", str(output)]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    monkeypatch.chdir(locked)
    _unwritable(monkeypatch, tmp_path)  # neither the movie's folder nor the current one
    assert main(["suggest", str(movie)]) == 2
    assert "nor can the current folder be written: give the figure's path with --output" in capsys.readouterr().err


def test_suggest_without_movies_says_so():
    import pytest

    from cnmflow.errors import MovieError
    from cnmflow.suggestion import suggest

    with pytest.raises(MovieError, match="no movie files given"):  # not an IndexError from the figure's default name
        suggest([])
