"""correct_motion: streamed in chunks (same result for any chunk size or executor), outputs and borders."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.errors import MovieError, ParameterError
from cnmflow.motion import CropBox, correct_motion, motion_params
from tests.motion.conftest import shifted, textured_image

PIECEWISE = dict(motion_correction="piecewise_rigid", max_shifts=6, strides=(32, 32), overlaps=(16, 16),
                 max_deviation_rigid=2)


@pytest.fixture(scope="module")
def moving():
    rng = np.random.default_rng(31)
    image = textured_image((80, 96), rng=32)
    true = rng.uniform(-4, 4, size=(45, 2))
    return shifted(np.repeat(image[None], 45, axis=0), true) + rng.normal(0, 1, (45, 80, 96)).astype(np.float32)


@pytest.mark.parametrize("values", [dict(motion_correction="rigid", max_shifts=6), PIECEWISE])
def test_results_are_identical_for_any_chunk_size(moving, values):
    params = motion_params(values)
    outputs, results = [], []
    for chunk in (7, 16, 1000):
        out = np.empty_like(moving)
        results.append(correct_motion(moving, out, params=params, chunk_frames=chunk))
        outputs.append(out)
    for result, out in zip(results[1:], outputs[1:]):
        np.testing.assert_array_equal(result.shifts_rig, results[0].shifts_rig)
        if params.piecewise:
            np.testing.assert_array_equal(result.shifts_els, results[0].shifts_els)
        np.testing.assert_array_equal(out, outputs[0])
        assert result.crop == results[0].crop


def test_template_refinement_passes_barely_depend_on_chunk_size(moving):
    params = motion_params(motion_correction="rigid", max_shifts=6, niter_rig=2)
    a = correct_motion(moving, None, params=params, chunk_frames=8)
    b = correct_motion(moving, None, params=params, chunk_frames=45)
    np.testing.assert_allclose(a.shifts_rig, b.shifts_rig, atol=0.11)   # at most one 1/upsample_factor step
    assert np.mean(a.shifts_rig != b.shifts_rig) < 0.05


def test_worker_processes_write_the_same_memmap_as_one_process(moving, tmp_path):
    source = np.memmap(tmp_path / "movie.u16", dtype=np.uint16, mode="w+", shape=moving.shape)
    source[:] = np.clip(moving * 10, 0, 65535).astype(np.uint16)
    source.flush()
    serial_out = np.memmap(tmp_path / "serial.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    parallel_out = np.memmap(tmp_path / "parallel.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    params = motion_params(PIECEWISE)
    serial = correct_motion(source, serial_out, params=params, chunk_frames=16)
    parallel = correct_motion(source, parallel_out, params=params, chunk_frames=16, n_processes=2)
    np.testing.assert_array_equal(parallel.shifts_els, serial.shifts_els)
    np.testing.assert_array_equal(np.asarray(parallel_out), np.asarray(serial_out))
    assert np.abs(np.asarray(serial_out)).sum() > 0


def test_none_copies_the_frames_unchanged_as_float32(moving):
    movie = np.clip(moving, 0, 255).astype(np.uint8)
    out = np.full(movie.shape, -1, dtype=np.float32)
    result = correct_motion(movie, out, params=motion_params(), chunk_frames=10)
    np.testing.assert_array_equal(out, movie.astype(np.float32))
    assert result.method == "none" and not result.shifts_rig.any() and result.crop == CropBox()
    np.testing.assert_allclose(result.mean_image, movie.mean(axis=0), rtol=1e-5)


def _one_shift_movie(shift):
    image = textured_image((64, 64), rng=41)
    frames = np.repeat(image[None], 12, axis=0)
    frames[9:] = shifted(frames[9:], np.array([shift] * 3))      # the median template stays unshifted
    return image, frames


@pytest.mark.parametrize("border_nan, fill", [("copy", "edge"), (True, "edge"), ("min", "min"), (False, "min")])
def test_border_fill_and_crop_box(border_nan, fill):
    image, frames = _one_shift_movie([0.0, 3.0])         # content moved right: correcting exposes the right edge
    out = np.empty_like(frames)
    result = correct_motion(frames, out, params=motion_params(motion_correction="rigid", max_shifts=5,
                                                              border_nan=border_nan))
    crop = result.crop
    assert crop.right == 3 and max(crop.top, crop.bottom, crop.left) <= 1   # sub-pixel noise exposes <= 1 px
    np.testing.assert_allclose(result.shifts_rig[-1], [0.0, -3.0], atol=0.15)
    assert result.exclude_border is (border_nan is True)
    frame = out[-1]
    exposed = frame[:, -crop.right:]
    if fill == "min":
        assert np.allclose(exposed[:, -1], frames[-1].min(), atol=1e-3)
    else:
        inner_edge = frame[:, -crop.right - 1]
        assert np.allclose(exposed[:, -1], inner_edge, atol=0.25 * frames.std())
    rows, cols = crop.slices(frame.shape)
    assert frame[rows, cols].shape == (64 - crop.top - crop.bottom, 64 - crop.left - crop.right)
    assert out.shape == frames.shape                     # the output is never cropped


def test_rigid_layout_matches_caimans_estimates_shifts(moving):
    result = correct_motion(moving, None, params=motion_params(motion_correction="rigid", max_shifts=6))
    assert result.caiman_shifts().shape == (45, 2)
    assert result.max_shift() == pytest.approx(float(np.abs(result.shifts_rig).max()))


def test_progress_reaches_one(moving):
    seen = []
    correct_motion(moving, None, params=motion_params(motion_correction="rigid", niter_rig=2), chunk_frames=20,
                   progress=lambda stage, fraction: seen.append((stage, fraction)))
    assert seen[-1] == ("motion_correction", pytest.approx(1.0))
    assert all(b >= a for (_, a), (_, b) in zip(seen, seen[1:]))


def test_bad_inputs_name_the_culprit(moving):
    params = motion_params(motion_correction="rigid")
    with pytest.raises(MovieError, match="frames, rows, cols"):
        correct_motion(moving[0], None, params=params)
    with pytest.raises(ParameterError, match="out must be a float32"):
        correct_motion(moving, np.empty(moving.shape, np.float64), params=params)
    with pytest.raises(ParameterError, match="chunk_frames"):
        correct_motion(moving, None, params=params, chunk_frames=0)
    with pytest.raises(ParameterError, match="params must be MotionParams"):
        correct_motion(moving, None, params={"motion_correction": "rigid"})
    with pytest.raises(ParameterError, match="max_shifts"):
        correct_motion(moving[:, :10, :10], None, params=motion_params(motion_correction="rigid", max_shifts=6))


def test_a_dask_cluster_gives_the_same_correction_as_one_process(moving, tmp_path):
    distributed = pytest.importorskip("distributed")
    source = np.memmap(tmp_path / "movie.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    source[:] = moving
    source.flush()
    local_out = np.memmap(tmp_path / "local.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    dask_out = np.memmap(tmp_path / "dask.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    params = motion_params(motion_correction="rigid", max_shifts=6, niter_rig=2)
    local = correct_motion(source, local_out, params=params, chunk_frames=16)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = correct_motion(source, dask_out, params=params, chunk_frames=16,
                                dask_scheduler=cluster.scheduler_address)
    np.testing.assert_array_equal(remote.shifts_rig, local.shifts_rig)
    np.testing.assert_array_equal(np.asarray(dask_out), np.asarray(local_out))


def test_dask_needs_file_backed_movie_and_output(moving):
    with pytest.raises(ParameterError, match="Dask"):
        correct_motion(moving, np.empty_like(moving), params=motion_params(motion_correction="rigid"),
                       dask_scheduler="tcp://127.0.0.1:1")


def test_none_writes_a_memmap_output_too(moving, tmp_path):
    out = np.memmap(tmp_path / "copy.f32", dtype=np.float32, mode="w+", shape=moving.shape)
    correct_motion(moving, out, params=motion_params(), chunk_frames=16)
    np.testing.assert_array_equal(np.asarray(out), moving)
