"""The command line as a user meets it: messages, exit codes, what gets printed and written."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnmflow.cli import main, parse_assignment
from tests.paths import IDEAS
from tests.runs import small_movie



@pytest.fixture(scope="module")
def tif_movie(tmp_path_factory) -> Path:
    return small_movie(tmp_path_factory.mktemp("movie"), rng=5)


@pytest.mark.parametrize("text, expected", [
    ("min_pnr=8", ("min_pnr", 8)), ("merge_thr=0.8", ("merge_thr", 0.8)), ("K=auto", ("K", None)),
    ("rf=none", ("rf", None)), ("center_psf=false", ("center_psf", False)),
    ("method_init=greedy_roi", ("method_init", "greedy_roi")),
    # numbers JSON spells otherwise were text, refused with "give the number without quotes" for quotes never typed
    ("min_corr=.8", ("min_corr", 0.8)), ("min_pnr=8.", ("min_pnr", 8.0)), ("K=+8", ("K", 8.0)),
    # "none" is one of motion_correction's own values, not a null (was refused: "motion_correction=None: must be
    # 'none', 'rigid' or 'piecewise_rigid'")
    ("motion_correction=none", ("motion_correction", "none")),
    ("motion_correction=None", ("motion_correction", "none")),
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


def test_long_checks_show_their_progress_and_short_ones_nothing(tif_movie, tmp_path, monkeypatch, capsys):
    """Counting a long AVI's frames and the motion check's blocks took a minute without a word before the run's bars."""
    import cnmflow.cli.app as app
    from tests.movies.conftest import write_avi

    assert main(["validate", str(tif_movie)]) == 0
    assert capsys.readouterr().err == ""  # a quick check leaves no line
    avi = write_avi(tmp_path / "long.avi", np.random.default_rng(2).integers(0, 200, (400, 64, 64), dtype=np.uint8))
    monkeypatch.setattr(app, "CHECKS_SHOWN_AFTER_S", 0.0)  # as if each check took long
    assert main(["validate", str(avi)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split("] ")[1] for line in err] == ["reading movies done", "motion check done"]


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
    assert "ophys.000.nwb" in printed   # NWB by default, listed with the results
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
    from cnmflow.tasks import extract as extract_task

    def broken_fit(*args, **kwargs):
        raise RuntimeError("numerical trouble")

    monkeypatch.setattr(extract_task, "fit_series", broken_fit)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", str(tif_movie), "--output-dir", str(tmp_path / "out"), "--set", "rf=none",
                 "--set", "gSiz=13", "--no-progress", "--no-track"])
    assert code == 1
    err = capsys.readouterr().err
    assert "during 'patches'" in err and "numerical trouble" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def _table_options(table: dict) -> list[str]:
    return [part for name, value in table.items()
            for part in ("--set", f"{name}={'none' if value is None else value}")]


@pytest.fixture(scope="module")
def wide_movie(tmp_path_factory) -> Path:
    from tests.runs import wide_cells_movie

    return wide_cells_movie(tmp_path_factory.mktemp("wide"))


@pytest.mark.usefixtures("prefect_harness")
def test_a_gsig_far_below_the_cells_is_said_before_the_fit_even_when_the_fit_fails(wide_movie, tmp_path, capsys,
                                                                                   monkeypatch):
    # issue #16's IDEAS-file row, every value set: the user hears it before the compute, not only after it
    from cnmflow.run_log import LOG_FOLDER
    from cnmflow.tasks import extract as extract_task
    from tests.runs import WIDE_TABLE

    def broken_fit(*args, **kwargs):
        raise RuntimeError("numerical trouble")

    monkeypatch.setattr(extract_task, "fit_series", broken_fit)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = main(["run", str(wide_movie), "--output-dir", str(out), "--no-progress", "--no-track", "--no-nwb",
                 *_table_options(WIDE_TABLE)])
    assert code == 1
    notes = [line for line in capsys.readouterr().out.splitlines() if "gSig=3 is set" in line]
    assert len(notes) == 1 and notes[0].startswith("note: gSig=3 is set") and "gSig to about 6" in notes[0]
    log = next((out / LOG_FOLDER).glob("run-*.log")).read_text()  # the flow's log: the validate step warns
    assert "WARNING" in log and log.index("gSig=3 is set") < log.index("numerical trouble")


@pytest.mark.usefixtures("prefect_harness")
def test_a_gsig_far_below_the_cells_is_one_note_of_the_run(wide_movie, tmp_path, capsys):
    """Said before the fit, not again after it: the fit's own check (its components' radius) would fire too."""
    from tests.runs import WIDE_TABLE

    out = tmp_path / "out"
    assert main(["run", str(wide_movie), "--output-dir", str(out), "--no-progress", "--no-track", "--no-nwb",
                 *_table_options(WIDE_TABLE)]) == 0
    printed = capsys.readouterr().out
    about_gsig = [line for line in printed.splitlines() if "gSig=3" in line]
    assert len(about_gsig) == 1 and about_gsig[0].startswith("note: gSig=3 is set"), printed
    note = about_gsig[0].removeprefix("note: ")
    messages = json.loads((out / "output_metadata.json").read_text())["notes"]["messages"]
    assert [m for m in messages if "gSig=3" in m] == [note]
    assert [m for m in json.loads((out / "manifest.json").read_text())["parameter_notes"] if "gSig=3" in m] == [note]


#: The command line with a fit that raises: what a user sees when the engine breaks mid-run.
BROKEN_FIT_DRIVER = """
import sys
from cnmflow.tasks import extract as extract_task

def broken_fit(*args, **kwargs):
    raise RuntimeError("numerical trouble in the fit")

extract_task.fit_series = broken_fit
from cnmflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_failed_run_prints_one_line_naming_the_stage_and_the_log(tif_movie, tmp_path):
    """Prefect's two ~60-line tracebacks stay out of the terminal; the log file named keeps them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), CNMFLOW_CACHE_DIR=str(tmp_path / "cache"),
               DO_NOT_TRACK="true")
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_FIT_DRIVER, "run", str(tif_movie), "--output-dir", str(tmp_path / "out"),
         "--set", "rf=none", "--set", "gSiz=13", "--no-progress", "--no-track"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[1])
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cnmflow: error: the run failed during 'patches': RuntimeError: numerical trouble")
    log = Path(lines[0].rsplit("(full log: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "out" / ".cnmflow-logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "broken_fit" in text
    assert result.stdout == ""


# --- Nothing silently wrong (issue #14): parameter errors are one line, exit 2, before any run ---------


def _one_clean_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "http" not in err and "Traceback" not in err and "pydantic" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["validate", "run", "sweep"])
@pytest.mark.parametrize("assignment, named", [
    ("min_pnr=inf", "min_pnr='inf'"), ("min_pnr=Infinity", "min_pnr=inf"), ("gSig=NaN", "gSig=nan"),
    ("min_pnr=-1", "min_pnr=-1"), ("merge_thr=3", "merge_thr=3"), ("gSig=true", "gSig=True"),
])
def test_bad_set_values_exit_2_with_one_line_from_every_command(tif_movie, tmp_path, capsys, command,
                                                                assignment, named):
    argv = [command, str(tif_movie), "--set", assignment]
    if command != "validate":
        argv += ["--output-dir", str(tmp_path / "out")]
    if command == "sweep":
        argv += ["--grid", "min_corr=0.7,0.8"]
    assert main(argv) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert named in line
    assert not (tmp_path / "out").exists(), "refused before any run started"


@pytest.mark.parametrize("document, named", [
    ('{"init": {"gSig": true}}', "init.gSig=true"),
    ('{"init": {"min_pnr": Infinity}}', "init.min_pnr=Infinity"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_bad_params_file_exits_2_with_one_line_naming_the_file(tif_movie, tmp_path, capsys, document, named):
    path = tmp_path / "bad_params.json"
    path.write_text(document)
    assert main(["validate", str(tif_movie), "--params-file", str(path), "--overwrite-params"]) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert "bad_params.json" in line and named in line


@pytest.mark.parametrize("name", ["gSiz", "stride", "p"])
def test_auto_for_a_parameter_without_auto_says_so_with_the_fix(tif_movie, capsys, name):
    """``--set gSiz=auto`` was refused as "gSiz=None: must be a valid integer": neither 'auto' nor the fix. It names
    the parameter, says it has no 'auto' and what to give."""
    assert main(["validate", str(tif_movie), "--set", f"{name}=auto"]) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert f"parameter {name}=None" in line and "has no 'auto' (null); give a number, or leave it out" in line
    assert "valid integer" not in line


@pytest.mark.parametrize("grid, named", [("min_pnr=5,inf", "min_pnr=inf"), ("gSig=3,true", "gSig=True"),
                                         ("tsub=1,50", "tsub=50"), ("method_init=greedy_roi", "preset='1p'")])
def test_sweep_with_an_impossible_value_exits_2_before_running(tif_movie, tmp_path, capsys, grid, named):
    assert main(["sweep", str(tif_movie), "--output-dir", str(tmp_path / "sweep"), "--grid", grid,
                 "--set", "gSiz=13"]) == 2
    assert named in _one_clean_line(capsys.readouterr().err)
    assert not (tmp_path / "sweep").exists()


def test_sweep_grid_option_given_twice_is_refused(tif_movie, tmp_path, capsys):
    assert main(["sweep", str(tif_movie), "--output-dir", str(tmp_path / "sweep"), "--grid", "min_pnr=5",
                 "--grid", "min_pnr=6"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_preset_switched_without_method_init_is_refused(tif_movie, tmp_path, capsys):
    assert main(["run", str(tif_movie), "--output-dir", str(tmp_path / "out"), "--preset", "2p",
                 "--set", "method_init=corr_pnr"]) == 2
    assert "choose preset '1p'" in _one_clean_line(capsys.readouterr().err)


@pytest.mark.usefixtures("prefect_harness")
def test_sweep_with_a_failed_combination_exits_1_naming_it(tif_movie, tmp_path, capsys, monkeypatch):
    from cnmflow.tasks import extract as extract_task

    real_fit = extract_task.fit_series

    def fit_failing_at_9(inputs, *args, **kwargs):
        if inputs.resolved.params.min_pnr == 9:
            raise RuntimeError("numerical trouble")
        return real_fit(inputs, *args, **kwargs)

    monkeypatch.setattr(extract_task, "fit_series", fit_failing_at_9)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["sweep", str(tif_movie), "--output-dir", str(tmp_path / "sweep"), "--grid", "min_pnr=6,9",
                 "--set", "rf=none", "--set", "gSiz=13", "--experiment", "cli-sweep-fail"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 of 2 sweep combinations failed: min_pnr=9: RuntimeError: numerical trouble" in captured.err
    assert "min_pnr" in captured.out and (tmp_path / "sweep" / "comparison.csv").exists()


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("document, named", [
    ('{"session": {"session_start_time": ["2024-05-02T10:31:00", "2024-05-02T11:00:00"]}}', "lists 2 times for 1"),
    ('{"subject": {"sex": "female"}}', "subject.sex = 'female'"),
    ('{"subject": {"name": "m1"}}', "subject.name is not a known key"),
])
def test_a_bad_nwb_metadata_file_exits_2_with_one_line_before_any_run(tif_movie, tmp_path, capsys, command,
                                                                      document, named):
    metadata = tmp_path / "nwb.json"
    metadata.write_text(document)
    argv = [command, str(tif_movie), "--output-dir", str(tmp_path / "out"), "--nwb-metadata", str(metadata)]
    if command == "sweep":
        argv += ["--grid", "min_corr=0.7,0.8"]
    assert main(argv) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert "nwb.json" in line and named in line
    assert not (tmp_path / "out").exists(), "refused before any run started"


def test_nwb_metadata_with_no_nwb_is_refused(tif_movie, tmp_path, capsys):
    metadata = tmp_path / "nwb.yaml"
    metadata.write_text("subject: {subject_id: m1}\n")
    assert main(["run", str(tif_movie), "--output-dir", str(tmp_path / "out"), "--no-nwb",
                 "--nwb-metadata", str(metadata)]) == 2
    assert "NWB output is off" in _one_clean_line(capsys.readouterr().err)
