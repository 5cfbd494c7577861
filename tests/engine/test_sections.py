"""The engine's typed sections: built (and checked) once from Params, small, picklable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cnmflow.engine import check_supported, fit
from cnmflow.engine.sections import EngineSettings, InitSection, PatchJobSettings
from cnmflow.errors import ParameterError
from cnmflow.params import PRESETS, build_params
from cnmflow.settings import Settings
from cnmflow.synthetic import simulate_1p


def _settings(**values) -> EngineSettings:
    return EngineSettings.from_params(build_params(dict(n_processes=1, **values)))


def test_settings_and_their_sections_pickle_and_round_trip():
    settings = _settings(**PRESETS["2p"], gSig=4, gSiz=9, rf=20, stride=10)
    assert pickle.loads(pickle.dumps(settings)) == settings
    job = pickle.loads(pickle.dumps(settings.patch_job))
    assert isinstance(job, PatchJobSettings) and job == settings.patch_job


def test_sections_hold_the_table_values_their_stage_reads():
    settings = _settings(gSig=4, gSiz=17, ssub=2, tsub=3, merge_thr=0.6, p=2, ssub_B=3, rf=30, stride=10,
                         halo_thr=1.8, halo_tail=True)
    assert (settings.quality.focus_thr, settings.quality.halo_thr) == (0.63, 1.8)
    assert settings.ring.halo_tail and settings.patch_job.ring.halo_tail and not _settings().ring.halo_tail
    assert (settings.init.gSig, settings.init.ssub, settings.init.tsub) == (4, 2, 3)
    assert (settings.layout.rf, settings.layout.stride, settings.layout.n_processes) == (30, 10, 1)
    assert settings.merging.merge_thr == 0.6 and settings.traces.p == 2 and settings.ring.ssub_B == 3
    assert not settings.init.low_rank and settings.merging.drop_wide


@pytest.mark.parametrize("gSig, gSiz, ssub, gsig_patch, gsiz_patch",
                         [(4, 12, 2, 2.0, 6), (3, 13, 1, 3.0, 13), (3, 4, 3, 1.0, 1), (1, 1, 4, 0.25, 1)])
def test_neuron_size_on_the_patch_grid(gSig, gSiz, ssub, gsig_patch, gsiz_patch):
    init = _settings(gSig=gSig, gSiz=gSiz, ssub=ssub).init
    assert init.gsig_patch == gsig_patch and init.gsiz_patch == gsiz_patch


def test_a_patch_fits_nb_background_components_only_when_it_covers_the_field_of_view():
    two_p = dict(PRESETS["2p"], nb=2, nb_patch=1)
    assert _settings(**two_p, rf=20, stride=10).init.patch_nb == 1
    assert _settings(**two_p, rf=None).init.patch_nb == 2


def test_rounds_follow_only_init_and_refit():
    assert _settings().rounds.count == 1
    assert _settings(only_init=False).rounds.count == 2
    assert _settings(only_init=False, refit=True).rounds.count == 4


def test_a_bad_memory_setting_is_refused_when_the_settings_are_checked(monkeypatch):
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", "lots")
    with pytest.raises(ParameterError, match="CNMFLOW_CHUNK_MB"):
        check_supported(build_params(dict(n_processes=1)))


def test_fit_reads_no_environment_when_given_the_machine_settings(monkeypatch, tmp_path):
    movie = simulate_1p(shape=(24, 24), n_frames=120, n_neurons=2, gsig=3.0, fr=10.0, rng=0).movie
    params = build_params(dict(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, rf=None, n_processes=1))
    machine = Settings(chunk_mb=0.05, patch_mb=0, scratch_dir=str(tmp_path))
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", "lots")
    monkeypatch.setenv("CNMFLOW_PATCH_MB", "lots")
    assert fit(movie, params, machine=machine).K == fit(movie, params, chunk_mb=1024, machine=machine).K
    assert list(tmp_path.iterdir()) == [], "the patch jobs leave no scratch file in the machine's folder"


def test_fit_takes_settings_already_built_without_checking_them_again(monkeypatch):
    movie = simulate_1p(shape=(24, 24), n_frames=120, n_neurons=2, gsig=3.0, fr=10.0, rng=0).movie
    params = build_params(dict(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, rf=None, n_processes=1))
    from_params = fit(movie, params)
    settings = EngineSettings.from_params(params)

    def refuse(cls, params):
        raise AssertionError("fit checked settings that were already built")

    monkeypatch.setattr(EngineSettings, "from_params", classmethod(refuse))
    from_settings = fit(movie, settings)
    assert from_settings.A.shape == from_params.A.shape
    np.testing.assert_array_equal(from_settings.A.toarray(), from_params.A.toarray())
    np.testing.assert_array_equal(from_settings.C, from_params.C)


def test_init_section_is_what_the_initialisations_receive():
    init = _settings(**PRESETS["2p"], gSig=4, gSiz=9).init
    assert isinstance(init, InitSection) and init.low_rank and init.method_init == "greedy_roi"
