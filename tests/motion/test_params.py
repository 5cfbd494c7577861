"""MotionParams: CaImAn's names and defaults, and errors that name the parameter."""

from __future__ import annotations

import json

import pytest

from cnmflow.errors import ParameterError
from cnmflow.motion import MOTION_PARAM_NAMES, MotionParams, motion_params
from cnmflow.motion.params import check_against_frame
from tests.paths import IDEAS


def test_defaults_are_caimans_and_off():
    p = motion_params()
    assert p.motion_correction == "none"
    assert (p.max_shifts, p.strides, p.overlaps, p.max_deviation_rigid) == ((6, 6), (96, 96), (32, 32), 3)
    assert p.border_nan == "copy" and p.niter_rig == 1   # CaImAn CNMFParams' default and p.gSig_filt is None
    assert p.patch_size == (128, 128)


def test_scalars_and_lists_become_pairs():
    p = motion_params(max_shifts=5, strides=[40, 48], overlaps=(20, 24), gSig_filt=[3, 3])
    assert p.max_shifts == (5, 5) and p.strides == (40, 48) and p.overlaps == (20, 24) and p.gSig_filt == (3, 3)


def test_the_ideas_normcorre_group_validates():
    path = IDEAS / "params_normcorre.json"
    if not path.is_file():
        pytest.skip("shared IDEAS parameter files not present")
    motion = json.loads(path.read_text())["motion"]
    p = motion_params(motion, motion_correction="piecewise_rigid")
    assert p.piecewise and p.pw_rigid is True and p.border_nan == "copy" and p.gSig_filt == (3, 3)


def test_frozen():
    p = motion_params()
    with pytest.raises(Exception):
        p.max_shifts = (1, 1)  # type: ignore[misc]


@pytest.mark.parametrize("values, name", [
    ({"motion_correction": "affine"}, "motion_correction"),
    ({"max_shifts": -1}, "max_shifts"),
    ({"max_shifts": (1, 2, 3)}, "max_shifts"),
    ({"max_shifts": 2.5}, "max_shifts"),
    ({"strides": 0}, "strides"),
    ({"overlaps": -2}, "overlaps"),
    ({"max_deviation_rigid": -1}, "max_deviation_rigid"),
    ({"gSig_filt": 0}, "gSig_filt"),
    ({"border_nan": "nan"}, "border_nan"),
    ({"niter_rig": 0}, "niter_rig"),
    ({"upsample_factor": 0}, "upsample_factor"),
])
def test_bad_values_name_the_parameter(values, name):
    with pytest.raises(ParameterError, match=name):
        motion_params(values)


def test_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ParameterError, match="max_shift.*known: .*max_shifts"):
        motion_params(max_shift=5)


def test_pw_rigid_must_agree_with_motion_correction():
    with pytest.raises(ParameterError, match="pw_rigid"):
        motion_params(motion_correction="rigid", pw_rigid=True)
    with pytest.raises(ParameterError, match="pw_rigid"):
        motion_params(motion_correction="piecewise_rigid", pw_rigid=False)
    assert motion_params(motion_correction="none", pw_rigid=True).piecewise is False


def test_settings_that_do_not_fit_the_frame_name_the_parameter():
    with pytest.raises(ParameterError, match="max_shifts"):
        check_against_frame(motion_params(motion_correction="rigid", max_shifts=32), (64, 64))
    with pytest.raises(ParameterError, match="max_deviation_rigid"):
        check_against_frame(motion_params(motion_correction="piecewise_rigid", max_shifts=6, strides=8,
                                          overlaps=4, max_deviation_rigid=3), (64, 64))


def test_names_are_caimans():
    assert {"max_shifts", "strides", "overlaps", "max_deviation_rigid", "pw_rigid", "gSig_filt", "border_nan",
            "niter_rig"} <= set(MOTION_PARAM_NAMES)
    assert isinstance(motion_params(), MotionParams)
