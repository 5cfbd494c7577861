"""The fingerprint names a run's work: it follows input bytes and parameters, not paths, mtimes or workers."""

from __future__ import annotations

import os
import shutil

import pytest

from cnmflow.fingerprint import file_hash, input_hashes, run_fingerprint, source_digest
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


def test_input_hashes_are_keyed_by_the_users_order(movie, tmp_path):
    second = tmp_path / "second.tif"
    shutil.copy(movie, second)
    hashes = input_hashes(validate_inputs([movie, second], table={"gSig": 3, "gSiz": 7}).series)
    assert sorted(hashes) == [0, 1] and hashes[0] == hashes[1] == file_hash(movie)


def test_the_code_is_part_of_the_identity():
    assert len(source_digest()) == 64 and source_digest() == source_digest()
