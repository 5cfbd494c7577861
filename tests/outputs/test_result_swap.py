"""Overwrite replaces the whole set of files: exactly the new manifest's, and a kill never leaves a mix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import cnmflow
from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.outputs import result_swap
from cnmflow.outputs.folder import open_output_dir
from cnmflow.outputs.result_swap import JOURNAL_NAME, finish_interrupted_swap, swap_in
from cnmflow.synthetic import simulate_1p, write_tiff

OLD = {"manifest.json": "old manifest", "cellset_raw.000.isxd": "old 43 cells", "neural_events.000.isxd": "old",
       "cellset_raw.001.isxd": "old second movie"}
NEW = {"cellset_raw.000.isxd": "new 0 cells", "output_metadata.json": "new", "manifest.json": "new manifest"}


def _folder_with_old_set_and_staged_new_set(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    staging = out / ".cnmflow-export-x"
    staging.mkdir(parents=True)
    for name, text in OLD.items():
        (out / name).write_text(text)
    for name, text in NEW.items():
        (staging / name).write_text(text)
    (out / "my_notes.txt").write_text("the user's own file")
    return out, staging


def _contents(out: Path) -> dict[str, str]:
    """Every visible file's text (hidden journal, staging and trash are the swap's own)."""
    return {path.name: path.read_text() for path in out.iterdir() if path.is_file() and not path.name.startswith(".")}


def test_swap_leaves_exactly_the_new_set_and_the_users_files(tmp_path):
    out, staging = _folder_with_old_set_and_staged_new_set(tmp_path)
    swap_in(staging, out, new=NEW, old=OLD, manifest_name="manifest.json")
    assert _contents(out) == {**NEW, "my_notes.txt": "the user's own file"}
    assert sorted(os.listdir(out)) == sorted([*NEW, "my_notes.txt"]), "no journal, trash or staging left"


@pytest.mark.parametrize("moves_before_kill", range(len(OLD) + len(NEW)))
def test_a_swap_killed_after_any_move_ends_as_the_new_set(tmp_path, monkeypatch, moves_before_kill):
    out, staging = _folder_with_old_set_and_staged_new_set(tmp_path)
    real_replace, moves = os.replace, []

    def dying_replace(src, dst):
        if JOURNAL_NAME not in str(dst):
            if len(moves) == moves_before_kill:
                raise KeyboardInterrupt("killed")
            moves.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(result_swap.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        swap_in(staging, out, new=NEW, old=OLD, manifest_name="manifest.json")
    monkeypatch.undo()
    if moves_before_kill == 0:    # committed, nothing moved yet: still the old complete set
        assert _contents(out) == {**OLD, "my_notes.txt": "the user's own file"}
    else:                         # a mix of old and new files: it must not look finished
        assert not (out / "manifest.json").exists()
    with open_output_dir(out):   # the next opener rolls forward
        pass
    assert _contents(out) == {**NEW, "my_notes.txt": "the user's own file"}
    assert sorted(os.listdir(out)) == sorted([*NEW, "my_notes.txt"])


def test_a_swap_killed_before_its_journal_leaves_the_old_set(tmp_path, monkeypatch):
    out, staging = _folder_with_old_set_and_staged_new_set(tmp_path)

    def no_journal(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(result_swap, "_write_journal", no_journal)
    with pytest.raises(KeyboardInterrupt):
        swap_in(staging, out, new=NEW, old=OLD, manifest_name="manifest.json")
    monkeypatch.undo()
    assert not finish_interrupted_swap(out)
    with open_output_dir(out):   # the dead run's staging and trash are removed
        pass
    assert _contents(out) == {**OLD, "my_notes.txt": "the user's own file"}
    assert sorted(os.listdir(out)) == sorted([*OLD, "my_notes.txt"])


@pytest.fixture(scope="module")
def two_movies(tmp_path_factory) -> list[Path]:
    simulated = simulate_1p(shape=(40, 48), n_frames=240, n_neurons=5, gsig=3.0, fr=10.0, peak_snr=(6, 14), rng=11)
    folder = tmp_path_factory.mktemp("movies")
    return [write_tiff(folder / "part1.tif", simulated.movie[:120], fr=10.0),
            write_tiff(folder / "part2.tif", simulated.movie[120:], fr=10.0)]


def test_overwrite_with_one_movie_and_no_cells_removes_everything_of_the_earlier_series(two_movies, tmp_path,
                                                                                         monkeypatch):
    from cnmflow.outputs import export as export_module
    from tests.faults.quick_previews import quick_preview

    monkeypatch.setattr(export_module, "safe_preview", quick_preview)
    params = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "rf": None, "n_processes": 1}
    out = tmp_path / "out"
    first = cnmflow.extract(two_movies, out, params={**params, "min_pnr": 5})
    assert first.extraction.estimates.K > 0 and (out / "neural_events.001.isxd").exists()
    (out / "my_notes.txt").write_text("keep me")

    cnmflow.extract(two_movies[:1], out, params={**params, "min_pnr": 30}, overwrite=True)
    manifest = read_manifest(out)
    assert manifest["run"]["n_components"] == 0 and verify_manifest(out) == []
    assert sorted(os.listdir(out)) == sorted([*manifest["outputs"], "manifest.json", "my_notes.txt"])
    assert not list(out.glob("*.001.*")) and not (out / "neural_events.000.isxd").exists()
    assert json.loads((out / "output_metadata.json").read_text())["neural_events.000.isxd"]["written"] is False
