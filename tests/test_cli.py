"""The command line as a user meets it: messages, exit codes, what gets printed and written."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnmflow.cli import main, parse_assignment
from cnmflow.synthetic import simulate_1p, write_tiff
from tests.paths import IDEAS



@pytest.fixture(scope="module")
def tif_movie(tmp_path_factory) -> Path:
    simulated = simulate_1p(shape=(40, 48), n_frames=200, n_neurons=4, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=5)
    return write_tiff(tmp_path_factory.mktemp("movie") / "movie.tif", simulated.movie, fr=10.0)


@pytest.mark.parametrize("text, expected", [
    ("min_pnr=8", ("min_pnr", 8)), ("merge_thr=0.8", ("merge_thr", 0.8)), ("K=auto", ("K", None)),
    ("rf=none", ("rf", None)), ("center_psf=false", ("center_psf", False)),
    ("method_init=greedy_roi", ("method_init", "greedy_roi")),
])
def test_set_values_are_parsed_like_the_analysis_table(text, expected):
    assert parse_assignment(text) == expected


def test_set_without_equals_is_refused():
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        parse_assignment("min_pnr")


def test_validate_prints_parameters_with_sources_and_the_movie(tif_movie, capsys):
    assert main(["validate", str(tif_movie), "--set", "min_pnr=8"]) == 0
    out = capsys.readouterr().out
    assert str(tif_movie) in out and "200 frames" in out
    assert "min_pnr" in out and "table" in out
    assert "fr" in out and "ImageJ" in out  # fr = auto, from the TIFF's ImageJ metadata


def test_bad_input_exits_2_with_a_message_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.tif"
    assert main(["validate", str(missing)]) == 2
    assert "nope.tif" in capsys.readouterr().err


def test_bad_parameter_exits_2_naming_the_parameter(tif_movie, capsys):
    assert main(["validate", str(tif_movie), "--set", "merge_thr=3"]) == 2
    assert "merge_thr=3" in capsys.readouterr().err


def test_params_file_without_overwrite_flag_is_reported(tif_movie, tmp_path, capsys):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"init": {"min_pnr": 5}}))
    assert main(["validate", str(tif_movie), "--params-file", str(params)]) == 0
    assert "NOT applied" in capsys.readouterr().out
    assert main(["validate", str(tif_movie), "--params-file", str(params), "--overwrite-params"]) == 0
    assert "file" in capsys.readouterr().out


def test_cellset_given_as_movie_exits_2(capsys):
    cellset = IDEAS / "cellset_series_part1.isxd"
    if not cellset.exists():
        pytest.skip("sample cell set absent")
    assert main(["validate", str(cellset)]) == 2
    assert "cell set" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_run_writes_outputs_and_lineage_explains_them(tif_movie, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(tif_movie), "--output-dir", str(out), "--set", "rf=none", "--set", "gSiz=13",
                 "--set", "min_corr=0.8", "--set", "min_pnr=8", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "components" in printed and str(out) in printed
    assert (out / "cellset_raw.000.isxd").exists() and (out / "manifest.json").exists()
    assert main(["lineage", str(out / "cellset_raw.000.isxd")]) == 0
    assert str(tif_movie) in capsys.readouterr().out
    # A second run into the same folder is refused, not silently overwritten.
    assert main(["run", str(tif_movie), "--output-dir", str(out), "--no-progress"]) == 2
    assert "already holds outputs" in capsys.readouterr().err


def test_console_script_help_runs():
    script = Path(sys.executable).parent / "cnmflow"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cnmflow.cli"]
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DO_NOT_TRACK": "true"})
    assert result.returncode == 0 and "validate" in result.stdout and "run" in result.stdout


@pytest.mark.usefixtures("prefect_harness")
def test_demo_runs_end_to_end_and_scores_against_the_truth(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Effective parameters" in out and "F1" in out
    assert (tmp_path / "results" / "manifest.json").exists()


def test_serve_without_a_server_says_how_to_start_one(tmp_path):
    script = Path(sys.executable).parent / "cnmflow"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path), DO_NOT_TRACK="true")
    result = subprocess.run([str(script), "serve"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr


def test_serve_watch_needs_an_output_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["serve", "--watch", str(tmp_path)]) == 2


def test_sweep_refuses_a_bad_combination_before_running(tif_movie, tmp_path, capsys):
    code = main(["sweep", str(tif_movie), "--output-dir", str(tmp_path / "sweep"), "--grid", "gSiz=13,2",
                 "--set", "gSig=3"])
    assert code == 2
    assert "gSiz=2" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_a_failure_during_the_run_exits_1_naming_the_stage(tif_movie, tmp_path, capsys, monkeypatch):
    import tasks.extract

    def broken_fit(*args, **kwargs):
        raise RuntimeError("numerical trouble")

    monkeypatch.setattr(tasks.extract, "fit_series", broken_fit)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", str(tif_movie), "--output-dir", str(tmp_path / "out"), "--set", "rf=none",
                 "--set", "gSiz=13", "--no-progress", "--no-track"])
    assert code == 1
    err = capsys.readouterr().err
    assert "during 'patches'" in err and "numerical trouble" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
