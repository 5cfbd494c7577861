"""``cnmflow suggest``: values with reasons on stdout, and the figure."""

from __future__ import annotations

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
    assert "  gSig" not in out and "min_pnr" in out
    assert main(["suggest", str(tmp_path / "absent.tif")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
