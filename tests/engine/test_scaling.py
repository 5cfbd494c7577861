"""Memory that does not follow the movie's length, and chunked passes that change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnmflow.engine import check_supported, fit
from cnmflow.errors import ParameterError
from cnmflow.params import build_params
from cnmflow.synthetic import simulate_1p

REPO = Path(__file__).resolve().parents[2]
PARAMS = dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=8, fr=10, rf=16, stride=8, n_processes=1)

_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np

    def run(path, params):
        from cnmflow.engine import fit
        from cnmflow.params import build_params
        movie = np.load(path, mmap_mode="r")
        estimates = fit(movie, build_params(json.loads(params)), chunk_mb=4)
        # VmHWM: this process's own peak (ru_maxrss would count the parent's RSS at the fork: pytest's)
        peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
        print(json.dumps(dict(K=estimates.K, peak_kb=peak, movie_kb=movie.nbytes // 1024)))

    run(sys.argv[2], sys.argv[3])
''')


def _python(*args: str, tmp_path: Path, source: str = _SCRIPT) -> str:
    script = tmp_path / "scaling.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_a_four_times_longer_movie_does_not_take_four_times_the_memory(tmp_path):
    """Each fit runs in a fresh process on a memory-mapped movie; the processes' peak RSS (VmHWM) are compared.

    Measured on 2 cores (96x96, 15 neurons, rf 16): peaks of ~170 MB (500 frames) and ~205 MB
    (2000 frames, movie 70 MB); a fit that held a copy of the movie would add the movie's size.
    """
    measured = {}
    for frames in (500, 2000):
        path = tmp_path / f"movie_{frames}.npy"  # made here: only the fits need a fresh process each
        np.save(path, simulate_1p(shape=(96, 96), n_frames=frames, n_neurons=15, gsig=3, fr=10, rng=5,
                                  peak_snr=(5, 10)).movie)
        measured[frames] = json.loads(_python("run", str(path), json.dumps(PARAMS), tmp_path=tmp_path))
    short, long = measured[500], measured[2000]
    print("fit memory (KiB):", measured)
    assert short["K"] > 5 and long["K"] > 5
    assert long["peak_kb"] < 1.5 * short["peak_kb"], measured
    assert long["peak_kb"] - short["peak_kb"] < long["movie_kb"] - short["movie_kb"], measured


_PATCH_JOB = textwrap.dedent('''
    import json, sys
    import numpy as np

    from cnmflow.engine.movie_source import MovieSource
    from cnmflow.engine.patch_frames import PatchStorage
    from cnmflow.engine.patch_job.dispatch import fit_patch
    from cnmflow.engine.patches import PatchBox
    from cnmflow.engine.sections import EngineSettings
    from cnmflow.engine.threads import use_single_thread
    from cnmflow.params import build_params

    use_single_thread()
    source = MovieSource.of(np.load(sys.argv[2], mmap_mode="r")).without_array()
    params = build_params(dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, fr=10, rf=None))
    job = EngineSettings.from_params(params).patch_job
    result = fit_patch(source, PatchBox(0, 81, 0, 81), job, fov_dims=(81, 81),
                       storage=PatchStorage(memory_bytes=float(sys.argv[3])))
    peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
    print(json.dumps(dict(K=int(result.A.shape[1]), peak_kb=peak)))
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_a_four_times_longer_patch_does_not_grow_the_worker(tmp_path):
    """One 81×81 patch job per fresh process, frames in scratch files: the peak RSS of the
    4× longer patch stays well under what holding its frames (patch + filtered copy) would add.

    Measured on 2 cores: peaks of 126 MB (1000 frames) and 145 MB (4000 frames) with scratch
    files; kept in memory the same jobs peak at 136 and 226 MB (the two copies add 150 MB).
    """
    measured = {}
    for frames in (1000, 4000):
        path = tmp_path / f"patch_{frames}.npy"  # made here: only the jobs need a fresh process each
        np.save(path, simulate_1p(shape=(81, 81), n_frames=frames, n_neurons=8, gsig=3, fr=10, rng=4,
                                  peak_snr=(6, 12)).movie)
        measured[frames] = json.loads(_python("fit", str(path), "0", tmp_path=tmp_path, source=_PATCH_JOB))
    held_growth_kb = 2 * 4 * 81 * 81 * (4000 - 1000) // 1024
    growth = measured[4000]["peak_kb"] - measured[1000]["peak_kb"]
    assert measured[1000]["K"] >= 4 and measured[4000]["K"] >= 4, measured
    assert growth < 0.35 * held_growth_kb, (growth, held_growth_kb, measured)


def test_chunked_passes_give_the_unchunked_result(tmp_path, monkeypatch):
    simulated = simulate_1p(shape=(48, 56), n_frames=300, n_neurons=6, gsig=3, fr=10, rng=3, peak_snr=(6, 12))
    path = tmp_path / "movie.npy"
    np.save(path, simulated.movie)
    movie = np.load(path, mmap_mode="r")
    params = build_params(PARAMS)
    whole = fit(movie, params, chunk_mb=1024)
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", "0.05")   # the documented knob: a few frames per chunk
    chunked = fit(movie, params)
    assert whole.K == chunked.K > 0
    np.testing.assert_allclose(chunked.A.toarray(), whole.A.toarray(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(chunked.C, whole.C, rtol=1e-3, atol=1e-4 * float(np.abs(whole.C).max()))


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_a_bad_chunk_setting_is_refused_before_compute(monkeypatch, value):
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", value)
    with pytest.raises(ParameterError, match="CNMFLOW_CHUNK_MB"):
        check_supported(build_params(PARAMS))
