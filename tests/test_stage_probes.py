"""benchmarks/stage_probes.py: the diagnostics' hooks see a stage's arguments and result, never change
them, and put the engine back as it was; the patch tracker follows the 1P patch job's box and searches."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from cnmflow.engine.init import corr_pnr
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_job import one_photon
from cnmflow.engine.patch_job.dispatch import fit_patch
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import EngineSettings
from cnmflow.params import build_params
from cnmflow.synthetic import simulate_1p

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from stage_probes import Hook, PatchTracker, probe, probes  # noqa: E402


def _stage_module() -> types.ModuleType:
    module = types.ModuleType("stage")
    module.scale = lambda x, *, by=2: x * by
    return module


def test_a_probe_sees_arguments_and_result_and_changes_neither():
    stage, seen = _stage_module(), []
    original = stage.scale
    hook = Hook(stage, "scale", before=lambda x, **kw: seen.append(("before", x, kw)),
                after=lambda result, x, **kw: seen.append(("after", result)) or "ignored")
    with probe(hook):
        assert stage.scale(3, by=5) == 15
    assert seen == [("before", 3, {"by": 5}), ("after", 15)]
    assert stage.scale is original


def test_the_original_is_restored_when_the_block_raises():
    stage = _stage_module()
    original = stage.scale
    with pytest.raises(RuntimeError), probes(Hook(stage, "scale", before=lambda x, **kw: None)):
        assert stage.scale is not original
        raise RuntimeError("the fit failed")
    assert stage.scale is original


def test_hooks_on_one_stage_run_in_the_order_given():
    stage, order = _stage_module(), []
    with probes(Hook(stage, "scale", before=lambda x: order.append("tracker"), after=lambda r, x: order.append("t")),
                Hook(stage, "scale", before=lambda x: order.append("script"), after=lambda r, x: order.append("s"))):
        stage.scale(1)
    assert order == ["tracker", "script", "s", "t"]


def test_a_method_is_wrapped_on_its_class_and_put_back():
    class State:
        def remove(self, a):
            return (self, a)

    original, seen = vars(State)["remove"], []
    with probe(Hook(State, "remove", before=lambda st, a: seen.append(a))):
        st = State()
        assert st.remove(4) == (st, 4)
    assert seen == [4] and vars(State)["remove"] is original


def test_the_tracker_follows_the_patch_box_and_its_two_seed_searches():
    """Each patch runs the first search, then the residual one; ``_neurons_only`` is handed each search's
    components in that order (what the diagnostics' records rely on)."""
    sim = simulate_1p(shape=(40, 40), n_frames=300, n_neurons=4, gsig=3.0, fr=10.0, min_distance=10, rng=0)
    job = EngineSettings.from_params(build_params(dict(n_processes=1, fr=10.0, gSig=3, gSiz=13, min_corr=0.8,
                                                       min_pnr=6, rf=None))).patch_job
    tracker, handed = PatchTracker(), []
    box = PatchBox(0, 40, 0, 40)
    with probes(*tracker.hooks(), Hook(one_photon, "_neurons_only",
                                       before=lambda A, *args: handed.append((tracker.box, tracker.kind)))):
        fit_patch(MovieSource.of(sim.movie), box, job, fov_dims=(40, 40))
    assert handed == [(box, "first"), (box, "residual")]
    assert "probed" not in (one_photon._fit_downsampled.__name__, corr_pnr._greedy.__name__,
                            one_photon._neurons_only.__name__)
