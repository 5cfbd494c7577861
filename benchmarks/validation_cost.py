"""What the content checks cost before a fit: reading a movie's metadata (an AVI decodes every frame to count them),
the blank-frame scan alone (a few rows of every frame of a movie read in place; every frame of a compressed TIFF
decoded; an AVI's noted as it was counted), the whole validation (``read_info`` again included) and the motion
check's reading alone (an AVI is decoded from its start up to each block it reads).

    python benchmarks/validation_cost.py --frames 4000 --side 512 --kind tif
    python benchmarks/validation_cost.py --frames 4000 --side 512 --kind avi

The movie is written once under --folder and kept (a second call reuses it); page-cache state is not controlled:
the first call after writing reads from memory, as a run on a just-copied file does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _movie_path(folder: Path, kind: str, frames: int, side: int) -> Path:
    import tifffile

    path = folder / f"validation_{kind}_{frames}x{side}.{'avi' if kind == 'avi' else 'tif'}"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    chunk = 200
    if kind == "avi":
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("ffv1", rate=20)
            stream.height = stream.width = side
            stream.pix_fmt = "gray"
            for start in range(0, frames, chunk):
                for frame in rng.integers(20, 200, (min(chunk, frames - start), side, side), dtype=np.uint8):
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
            container.mux(stream.encode())
        return path
    pages = (rng.integers(200, 4000, (side, side), dtype=np.uint16) for _ in range(frames))
    options = {"compression": "zlib"} if kind == "zlib" else {}
    tifffile.imwrite(path, data=pages, shape=(frames, side, side), dtype=np.uint16, bigtiff=True,
                     photometric="minisblack", **options)
    return path


def measure(path: Path) -> dict:
    from cnmflow.movies import read_info
    from cnmflow.movies.checks import memo
    from cnmflow.movies.checks.blank_frames import find_blank_frames
    from cnmflow.validate import validate_inputs

    start = time.perf_counter()
    info = read_info(path)
    info_s = time.perf_counter() - start
    memo._FOUND.clear()
    start = time.perf_counter()
    find_blank_frames(info)
    blank_s = time.perf_counter() - start
    memo._FOUND.clear()
    start = time.perf_counter()
    validate_inputs([path], table={"gSig": 3, "gSiz": 13}, cell_size=False)
    whole_s = time.perf_counter() - start
    movement_s = _movement_cost(path)
    gigabytes = path.stat().st_size / 1e9
    return {"file": path.name, "file_gb": round(gigabytes, 3), "read_info_s": round(info_s, 2),
            "blank_frames_s": round(blank_s, 2),
            "validation_s": round(whole_s, 2), "blank_frames_gb_per_s": round(gigabytes / blank_s, 2),
            "motion_check_s": round(movement_s, 2)}


def _movement_cost(path: Path) -> float:
    """Seconds of the motion check's reading alone (frames from the start, middle and end, registered)."""
    from cnmflow.motion import movement
    from cnmflow.movies import validate_series

    series = validate_series([path])
    movement._MOVEMENT = movement.SeriesMemo()  # not remembered from the validation above
    start = time.perf_counter()
    movement.movement(series, gsig_filt=3.0, max_shift=6)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--kind", choices=["tif", "zlib", "avi"], default="tif")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/cnmflow-validation-cost"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps(measure(_movie_path(args.folder, args.kind, args.frames, args.side))))


if __name__ == "__main__":
    main()
