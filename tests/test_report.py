"""What a finished run tells its user, read back from the output folder's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnmflow.errors import InputError
from cnmflow.lineage import MANIFEST_NAME, SCHEMA, SCHEMA_VERSION
from cnmflow.report import components_line, report_from_manifest, summary_markdown

MANIFEST = {
    "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
    "inputs": [{"index": 0, "path": "/data/m.tif", "n_frames": 200, "frame_rate": 10.0, "sha256": "ab" * 32}],
    "outputs": {"cellset_raw.000.isxd": {}, "caiman_output.hdf5": {}},
    "parameters": {"min_pnr": {"value": 8, "source": "table"}, "K": {"value": None, "source": "preset 1p"}},
    "parameter_notes": ["fr = 10 Hz (ImageJ)"], "notes": ["tracking missing"],
    "run_ids": {"prefect_flow_run_id": "f1"},
    "run": {"n_components": 3, "n_frames": 200, "peak_rss_mb": 512.0, "statuses": {"undecided": 3},
            "timings_s": {"fit": 2.5}},
}


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(MANIFEST))
    return tmp_path


def test_the_report_holds_the_manifests_facts(folder):
    report = report_from_manifest(folder, reused_extraction=True, up_to_date=False, timings_s={"validate": 0.5})
    assert report.n_components == 3 and report.output_dir == folder
    assert report.files == ("caiman_output.hdf5", "cellset_raw.000.isxd", "manifest.json")
    assert report.notes == ("fr = 10 Hz (ImageJ)", "tracking missing")
    assert report.peak_rss_mb == 512.0 and report.mlflow_run_id is None
    assert report.run_ids == {"prefect_flow_run_id": "f1"}


def test_the_summary_lists_inputs_parameters_with_sources_and_timings(folder):
    report = report_from_manifest(folder, reused_extraction=False, up_to_date=True, timings_s={"validate": 0.5},
                                  tracking_error="store down")
    text = summary_markdown(report)
    assert text.startswith("# Source extraction: 3 components")
    assert "already up to date: nothing was recomputed" in text
    assert "| 0 | `/data/m.tif` | 200 | 10 Hz | `" + "ab" * 8 + "` |" in text
    assert "| min_pnr | 8 | table |" in text and "| K | auto | preset 1p |" in text
    assert "| fit | 2.5 |" in text and "| validate | 0.5 |" in text
    assert "**Not tracked**: store down" in text and "- tracking missing" in text


def test_the_count_says_how_many_components_the_engine_rejected(tmp_path):
    """A 2P run marks neuropil components rejected: "66 components" alone would read as 66 cells."""
    run = {**MANIFEST["run"], "n_components": 66, "statuses": {"accepted": 0, "undecided": 43, "rejected": 23}}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**MANIFEST, "run": run}))
    report = report_from_manifest(tmp_path, reused_extraction=False, up_to_date=False)
    assert report.statuses == {"accepted": 0, "undecided": 43, "rejected": 23}
    assert components_line(report) == "66 components: 43 undecided, 23 rejected"
    assert "66 components: 43 undecided, 23 rejected (over 200 frames)" in summary_markdown(report)


def test_a_folder_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(InputError, match="no lineage manifest"):
        report_from_manifest(tmp_path, reused_extraction=False, up_to_date=False)


def test_the_summary_shows_the_output_folder_as_text_not_a_file_link(folder):
    summary = summary_markdown(report_from_manifest(folder, reused_extraction=False, up_to_date=False))
    assert f"```\n{folder}\n```" in summary and "file://" not in summary


def test_a_capped_n_processes_says_what_was_asked(tmp_path):
    manifest = {**MANIFEST, "parameters": {"n_processes": {"value": 2, "source": "machine"}},
                "parameter_notes": ["n_processes=7 capped to this machine's 2 cores"]}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    summary = summary_markdown(report_from_manifest(tmp_path, reused_extraction=False, up_to_date=False))
    assert "| n_processes | 2 | machine: n_processes=7 capped to this machine's 2 cores |" in summary


def test_a_failure_summary_names_the_stage_the_file_and_the_fix():
    from cnmflow.errors import MovieError
    from cnmflow.report import failure_markdown

    text = failure_markdown(stage="validate", error=MovieError("movie file not found: /d/m.tif; check the path"),
                            movies=["/d/m.tif"], output_dir="/d/out")
    assert text.startswith("# Source extraction failed in validate")
    assert "**What to fix:** movie file not found: /d/m.tif; check the path" in text and "Bad input" in text
    bug = failure_markdown(stage="patches", error=ZeroDivisionError("x"), movies=["/d/m.tif"], output_dir="/d/out")
    assert "ZeroDivisionError" in bug and "traceback is in the run's logs" in bug


def test_a_tracked_run_links_its_experiments_runs_page(tmp_path):
    runs_url = "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
    tracked = {**MANIFEST, "run_ids": {"prefect_flow_run_id": "f1", "mlflow_run_id": "r1", "mlflow_experiment": "e",
                                       "mlflow_tracking_uri": "sqlite:///x.db", "mlflow_runs_url": runs_url}}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(tracked))
    summary = summary_markdown(report_from_manifest(tmp_path, reused_extraction=False, up_to_date=False))
    assert "MLflow run `r1`" in summary and runs_url in summary
