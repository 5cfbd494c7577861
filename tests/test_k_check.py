"""The note a run gives when K, the most components a patch may return, stopped most patches' search."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

import cnmflow
from cnmflow.engine.estimates import Estimates
from cnmflow.k_check import k_hint, k_note
from cnmflow.synthetic import simulate_2p, write_tiff


def _estimates(patches_at_k: tuple[int, int]) -> Estimates:
    zeros = np.zeros((0, 5))
    return Estimates(A=sp.csc_matrix((16, 0)), C=zeros, S=zeros, YrA=zeros, bl=np.zeros(0), c1=np.zeros(0),
                     g=np.zeros((0, 1)), neurons_sn=np.zeros(0), lam=np.zeros(0), dims=(4, 4), sn=np.ones(16),
                     b0=np.zeros(16), patches_at_k=patches_at_k)


def test_most_patches_stopped_by_k_get_a_note_naming_k_and_the_fix():
    note = k_note(_estimates((14, 16)), K=4, method_init="greedy_roi")
    assert note is not None and "K=4" in note and "14 of 16 patches" in note and "K=auto" in note
    assert k_note(_estimates((8, 16)), K=20, method_init="corr_pnr") is not None   # half: the cells go missing there


def test_no_note_where_the_search_ran_out_of_cells_or_k_is_not_a_search_bound():
    assert k_note(_estimates((3, 16)), K=4, method_init="greedy_roi") is None      # most patches had fewer cells
    assert k_note(_estimates((0, 16)), K=None, method_init="greedy_roi") is None   # auto
    assert k_note(_estimates((16, 16)), K=4, method_init="sparse_NMF") is None     # a rank is always reached
    assert k_note(_estimates((0, 0)), K=4, method_init="greedy_roi") is None


def test_suggest_names_k_auto_only_where_greedy_roi_is_cut_at_a_fixed_k():
    assert "K=auto" in k_hint(K=4, method_init="greedy_roi")
    assert k_hint(K=None, method_init="greedy_roi") is None
    assert k_hint(K=4, method_init="sparse_NMF") is None and k_hint(K=8, method_init="corr_pnr") is None


def test_a_2p_run_whose_k_was_too_small_says_so_and_k_auto_finds_the_cells(tmp_path):
    sim = simulate_2p(shape=(64, 64), n_frames=400, n_neurons=10, nb=2, gsig=3.0, rng=1)
    movie = write_tiff(tmp_path / "movie.tif", sim.movie, fr=30.0)
    params = {"gSig": 3, "gSiz": 7, "fr": 30, "rf": None, "n_processes": 1}
    guessed = cnmflow.extract([movie], tmp_path / "k4", preset="2p", params=params)   # the preset's K 4
    assert guessed.extraction.estimates.patches_at_k == (1, 1) and guessed.extraction.estimates.K == 4
    notes = [note for note in guessed.outputs.notes if "K=4 stopped the search in 1 of 1 patches" in note]
    assert len(notes) == 1
    assert notes[0] in json.loads((tmp_path / "k4" / "output_metadata.json").read_text())["notes"]["messages"]
    searched = cnmflow.extract([movie], tmp_path / "auto", preset="2p", params={**params, "K": None})
    assert searched.extraction.estimates.K >= 9 and searched.extraction.estimates.patches_at_k == (0, 1)
    assert not any("stopped the search" in note for note in searched.outputs.notes)
    assert replace(searched.extraction.estimates).patches_at_k == (0, 1)   # carried by copies of the estimates
