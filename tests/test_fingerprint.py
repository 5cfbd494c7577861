"""The fingerprint names a run's work: it follows input bytes and parameters, not paths, mtimes or workers."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from cnmflow import fingerprint
from cnmflow.fingerprint import file_hash, input_hashes, run_fingerprint, source_digest, stored_hash
from cnmflow.lineage import sha256_file
from cnmflow.params import build_params
from cnmflow.validate import validate_inputs
from tests.runs import small_movie

HASHES = {0: "a" * 64, 1: "b" * 64}


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return small_movie(tmp_path_factory.mktemp("movie"), rng=7)


def test_a_changed_parameter_changes_the_fingerprint_and_the_worker_count_does_not():
    base = run_fingerprint(HASHES, build_params({"min_pnr": 8}))
    assert run_fingerprint(HASHES, build_params({"min_pnr": 8})) == base
    assert run_fingerprint(HASHES, build_params({"min_pnr": 9})) != base
    assert run_fingerprint(HASHES, build_params({"min_pnr": 8, "n_processes": 1})) == base


def test_the_order_of_the_inputs_counts():
    params = build_params({})
    assert run_fingerprint({0: HASHES[1], 1: HASHES[0]}, params) != run_fingerprint(HASHES, params)


def test_file_hash_follows_the_bytes_not_the_name_or_the_mtime(movie, tmp_path):
    renamed = tmp_path / "other_name.tif"
    shutil.copy(movie, renamed)
    assert file_hash(renamed) == file_hash(movie)
    os.utime(renamed, ns=(1, 1))  # touched: the remembered hash is not used, the bytes give the same one
    assert file_hash(renamed) == file_hash(movie)
    data = bytearray(renamed.read_bytes())
    data[-1] ^= 0xFF
    renamed.write_bytes(bytes(data))
    assert file_hash(renamed) != file_hash(movie)


def _no_reading(path):
    raise AssertionError(f"{path} was read again")


def test_a_recorded_hash_is_reused_by_a_later_run_until_the_file_changes(movie, tmp_path, monkeypatch):
    copy, records = tmp_path / "movie.tif", tmp_path / "hashes"
    shutil.copy(movie, copy)
    assert stored_hash(copy, records) == sha256_file(movie)
    monkeypatch.setattr(fingerprint, "sha256_file", _no_reading)
    assert stored_hash(copy, records) == sha256_file(movie)  # a later run: the record, no reading
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    stat = copy.stat()
    time.sleep(0.05)  # file times tick in steps of a few ms: the rewrite gets a later change time
    copy.write_bytes(bytes(data))  # the same size; even with the old mtime put back, the file is read again
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(AssertionError, match="read again"):
        stored_hash(copy, records)
    monkeypatch.undo()
    assert stored_hash(copy, records) == sha256_file(copy) != sha256_file(movie)


def test_a_replaced_file_or_a_damaged_record_is_read_again(movie, tmp_path):
    copy, records = tmp_path / "movie.tif", tmp_path / "hashes"
    shutil.copy(movie, copy)
    stored_hash(copy, records)
    for record in records.iterdir():
        record.write_text("{not json")
    assert stored_hash(copy, records) == sha256_file(movie)
    other = tmp_path / "other.tif"
    other.write_bytes(b"x" * copy.stat().st_size)
    os.replace(other, copy)  # a new file under the old name (a new inode)
    assert stored_hash(copy, records) == sha256_file(copy) != sha256_file(movie)


def test_the_process_remembers_a_bounded_number_of_file_hashes(tmp_path, monkeypatch):
    """A watch server hashes every new recording: the in-process memo keeps the most recently used ones only."""
    monkeypatch.setattr(fingerprint, "_HASHES", fingerprint.IdentityMemo(max_entries=2))
    files = [tmp_path / f"movie{i}.tif" for i in range(3)]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * 100)
    reads = []
    monkeypatch.setattr(fingerprint, "sha256_file", lambda path: reads.append(path) or sha256_file(path))
    first = [file_hash(path) for path in files]  # the third forgets the first
    assert [file_hash(files[2]), file_hash(files[1])] == first[2:0:-1] and len(reads) == 3
    assert file_hash(files[0]) == first[0] == sha256_file(files[0]) and len(reads) == 4
    monkeypatch.setattr(fingerprint, "sha256_file", _no_reading)
    with pytest.raises(AssertionError, match="read again"):
        file_hash(files[2])  # forgotten when the first came back: read again (and a failure is not remembered)
    with pytest.raises(AssertionError, match="read again"):
        file_hash(files[2])


def test_input_hashes_are_keyed_by_the_users_order(movie, tmp_path):
    second = small_movie(tmp_path, rng=8)
    hashes = input_hashes(validate_inputs([second, movie], table={"gSig": 3, "gSiz": 7}).series)
    assert hashes == {0: file_hash(second), 1: file_hash(movie)} and hashes[0] != hashes[1]


def test_the_code_is_part_of_the_identity():
    assert len(source_digest()) == 64 and source_digest() == source_digest()


def test_a_series_with_mended_pixels_names_other_work_copies_than_its_bytes_alone(tmp_path):
    """A work copy made before a pixel was found defective (or by a version that found others) holds the pixel as
    recorded, one made before blank frames were filled holds them blank; a run that mends or fills must not adopt
    that copy."""
    import dataclasses

    import numpy as np
    import tifffile

    from cnmflow.fingerprint import series_key
    from cnmflow.movies import validate_series

    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 100, (20, 16, 16), dtype=np.uint16))
    series = validate_series([path], min_frames=2)
    hashes = input_hashes(series)
    plain = series_key(hashes, series)
    assert plain == series_key(hashes)
    mended = dataclasses.replace(series, movies=(dataclasses.replace(series.movies[0], defective_pixels=((3, 4),)),))
    assert series_key(hashes, mended) != plain
    filled = dataclasses.replace(series, movies=(dataclasses.replace(series.movies[0], blank_frames=(3, 4)),))
    assert len({series_key(hashes, filled), series_key(hashes, mended), plain}) == 3  # blank frames filled: another
