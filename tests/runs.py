"""What the run tests share: a small simulated 1P movie and the analysis table that finds its cells fast."""

from __future__ import annotations

from pathlib import Path

from cnmflow.synthetic import simulate_1p, simulate_realistic_1p, write_tiff

#: Values that find the small movie's cells in seconds (one patch, gSiz for gSig 3).
TABLE = {"rf": None, "gSiz": 13, "min_corr": 0.8, "min_pnr": 8}


def small_movie(folder: Path, *, rng: int, n_neurons: int = 4, peak_snr: tuple[float, float] = (8, 12),
                compression: str | None = None) -> Path:
    """A 200-frame 40x48 TIFF at 10 Hz with ``n_neurons`` cells of radius 3 (the same bytes for the same rng).

    ``compression="zlib"``: a file the run cannot read in place, so it makes a work copy."""
    simulated = simulate_1p(shape=(40, 48), n_frames=200, n_neurons=n_neurons, gsig=3.0, fr=10.0, peak_snr=peak_snr,
                            rng=rng)
    return write_tiff(folder / "movie.tif", simulated.movie, fr=10.0, compression=compression)


#: A table that runs the wide-cells movie fast at the IDEAS sample file's gSig (one patch).
WIDE_TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "min_pnr": 5, "rf": None, "n_processes": 1}


def wide_cells_movie(folder: Path, *, name: str = "ca1") -> Path:
    """A 300-frame 128x128 TIFF at 10 Hz of the realistic simulator's ``name`` cells: CA1's (half-max radius
    ~6.5 px, read as 6.4: 2.1·gSig at gSig 3, the IDEAS file's row) or cortex L2/3's (~4.3 px, 1.4·gSig)."""
    simulated = simulate_realistic_1p(name, shape=(128, 128), n_frames=300, rng=3)
    return write_tiff(folder / f"{name}.tif", simulated.movie, fr=10.0)


def flow_run_artifacts(flow_run_id) -> dict:
    """The Prefect artifacts one flow run created, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {artifact.key: artifact for artifact in artifacts}
