"""What the run tests share: a small simulated 1P movie and the analysis table that finds its cells fast; a
Micro-Manager multi-file OME-TIFF."""

from __future__ import annotations

import uuid
from pathlib import Path

import tifffile

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


def micro_manager(folder: Path, parts) -> list[Path]:
    """A multi-file OME-TIFF as Micro-Manager writes one: the first file's OME-XML describes every file's frames."""
    names = ["MMStack_Pos0.ome.tif"] + [f"MMStack_Pos0_{k}.ome.tif" for k in range(1, len(parts))]
    ids = [f"urn:uuid:{uuid.uuid4()}" for _ in parts]
    first, tiffdata = 0, ""
    for name, uid, part in zip(names, ids, parts):
        tiffdata += (f'<TiffData FirstT="{first}" IFD="0" PlaneCount="{len(part)}">'
                     f'<UUID FileName="{name}">{uid}</UUID></TiffData>')
        first += len(part)
    rows, cols = parts[0].shape[1:]
    ome = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
    head = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{ome}" UUID="{ids[0]}"><Image ID="Image:0">'
            f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="{cols}" SizeY="{rows}" SizeZ="1" '
            f'SizeC="1" SizeT="{first}"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiffdata}</Pixels>'
            '</Image></OME>')
    for k, (name, uid, part) in enumerate(zip(names, ids, parts)):
        description = head if k == 0 else (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{ome}" UUID="{uid}">'
                                           f'<BinaryOnly MetadataFile="{names[0]}" UUID="{ids[0]}"/></OME>')
        with tifffile.TiffWriter(folder / name) as writer:
            for j, frame in enumerate(part):
                writer.write(frame, photometric="minisblack", description=description if j == 0 else None,
                             metadata=None, contiguous=False)
    return [folder / name for name in names]
