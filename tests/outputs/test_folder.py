"""Opening an output folder removes what dead runs left, and nothing of the user's or of live runs."""

from __future__ import annotations

import os

from cnmflow.outputs.folder import open_output_dir


def test_leftovers_of_dead_runs_are_removed_and_user_files_kept(tmp_path):
    out = tmp_path / "out"
    dead = [".cnmflow-export-abc/caiman_output.hdf5", ".cnmflow-trash-def/manifest.json",
            ".cnmflow-work-ghi/concatenated_10x8x8.float32", ".cnmflow-work/.writing-jkl/.users.lock",
            ".cnmflow-work/.writing-jkl/.concatenating-x.partial", ".cnmflow-work/.removing-mno/big.float32",
            ".manifest.json.123-abcd.tmp", ".cnmflow-swap.json.99.tmp"]
    kept = ["my_notes.txt", ".hidden_by_the_user", "analysis/figure.png"]
    for name in dead + kept:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")

    with open_output_dir(out):
        remaining = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert remaining == sorted([*kept, ".cnmflow-lock"])
    assert sorted(os.listdir(out)) == sorted([".hidden_by_the_user", "analysis", "my_notes.txt"])


def test_a_nested_open_in_the_same_run_does_not_sweep(tmp_path):
    out = tmp_path / "out"
    with open_output_dir(out):
        staging = out / ".cnmflow-export-live"   # this run's own export, being written
        staging.mkdir()
        with open_output_dir(out):
            assert staging.is_dir()
