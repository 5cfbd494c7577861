"""``ophys.{k}.nwb``: one Neurodata Without Borders file per input movie, written with pynwb.

Why: DANDI and journals ask for NWB, and CaImAn's ``save_NWB`` assumes a 2P background
(broken for CNMF-E). Each file holds, for movie k only:

- ``ImagingPlane`` (frame rate, pixel size in µm as ``grid_spacing``; indicator, location and
  device from the user's `NwbMetadata`, else placeholders) and a ``Subject``;
- ``processing/ophys``: ``ImageSegmentation/PlaneSegmentation`` whose ``image_mask`` rows are
  the footprints, ``Fluorescence`` with ``RoiResponseSeries`` (raw, C + YrA), ``Denoised`` (C)
  and ``Deconvolved`` (S), and ``SegmentationImages`` (``correlation``, ``mean``). These are the
  names neuroconv writes and roiextractors reads. The module's description names the run
  fingerprint and every effective parameter.

Layout, as neuroconv/roiextractors: NWB images are (x, y) = (width, height), so
``image_mask[i]`` is footprint i transposed, ``image_mask[i].T == A[:, i].reshape((rows, cols),
order="F")``; the same holds for the images. Traces are (n_frames, K) at ``rate`` = 1/period
from ``starting_time`` 0, i.e. on movie k's own timeline from ``session_start_time`` = movie
k's start. Samples isx marks dropped or cropped are NaN, as in the cell sets.

Masks are written one footprint at a time (never the dense (K, pixels) matrix) and gzipped.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from cnmflow.atomic_write import atomic_path
from cnmflow.engine.estimates import Estimates
from cnmflow.outputs.names import nwb_name
from cnmflow.outputs.nwb_metadata import NwbMetadata
from cnmflow.pixel_order import column_to_image

log = logging.getLogger(__name__)

SEGMENTATION = "PlaneSegmentation"
UNIT = "a.u."


@dataclass(frozen=True)
class NwbMovie:
    """One input movie as an NWB session: where its frames are and when they were taken."""

    index: int                           # the user's order (k of the file names)
    name: str                            # the input movie's file name
    frame_range: tuple[int, int]         # [first, stop) in the concatenated series
    period: Fraction                     # seconds per frame, exact
    pixel_size_um: tuple[float, float]   # (height, width) of one pixel
    start_time: datetime | None          # the movie's own start (isxd); None for tif/avi
    invalid_samples: tuple[int, ...] = ()  # dropped or cropped samples (isx), or blank frames: NaN in the traces

    @property
    def n_frames(self) -> int:
        return self.frame_range[1] - self.frame_range[0]


@dataclass(frozen=True)
class NwbRun:
    """Everything the NWB files of one run need, whether from a fresh fit or a finished folder."""

    estimates: Estimates
    movies: Sequence[NwbMovie]
    parameters: dict[str, Any]           # effective parameter values by name
    fingerprint: str | None
    statuses: Sequence[str]              # per component: accepted / undecided / rejected
    evaluated: bool = False
    created: datetime | None = None      # when the run was made: the last-resort session start
    notes: tuple[str, ...] = field(default_factory=tuple)


def write_nwb(folder: str | os.PathLike, run: NwbRun, *, metadata: NwbMetadata | None = None) -> list[Path]:
    """Write ``ophys.{k}.nwb`` for every movie of ``run`` into ``folder``; the paths, in movie order.

    ``folder`` is the export's staging folder (or any folder); a file that exists there is
    refused (FileExistsError). Each file goes to a temporary name first, then is renamed.
    The session start is the movie's own start (isxd), else the metadata's
    ``session.session_start_time``, else ``run.created`` (the time of the analysis, flagged in
    the file's ``notes``). Bad metadata (e.g. a start-time list of the wrong length) is refused
    with InputError before any file is written.
    """
    folder = Path(folder)
    metadata = metadata or NwbMetadata()
    _check_run(run)
    metadata.check_movie_count(len(run.movies))
    paths = []
    for movie in sorted(run.movies, key=lambda m: m.index):
        path = folder / nwb_name(movie.index)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists; remove it or write into another folder")
        with atomic_path(path, suffix=".nwb") as tmp:
            _write_one(tmp, run, movie, metadata)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------- checks

def _check_run(run: NwbRun) -> None:
    est = run.estimates
    if len(run.statuses) != est.K:
        raise ValueError(f"{len(run.statuses)} statuses for {est.K} components; give one per component")
    ranges = sorted(m.frame_range for m in run.movies)
    position = 0
    for first, stop in ranges:
        if first != position or stop < first:
            raise ValueError(f"movie frame ranges {ranges} do not tile the {est.n_frames} frames of the traces")
        position = stop
    if position != est.n_frames:
        raise ValueError(f"movie frame ranges end at frame {position} but the traces have {est.n_frames} frames")


# ---------------------------------------------------------------------------------------- writing

def _write_one(path: Path, run: NwbRun, movie: NwbMovie, metadata: NwbMetadata) -> None:
    from pynwb import NWBHDF5IO  # noqa: PLC0415  (pynwb is slow to import; only writers need it)

    nwbfile = _nwbfile(run, movie, metadata)
    plane = _imaging_plane(nwbfile, run, movie, metadata)
    ophys = nwbfile.create_processing_module(name="ophys", description=_processing_description(run, movie))
    images = _images(run.estimates, movie)
    ophys.add(images)
    segmentation = _plane_segmentation(ophys, plane, run)
    if run.estimates.K:
        _fluorescence(ophys, segmentation, run, movie)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)


def _nwbfile(run: NwbRun, movie: NwbMovie, metadata: NwbMetadata):
    from pynwb import NWBFile  # noqa: PLC0415
    from pynwb.file import Subject  # noqa: PLC0415

    from cnmflow.version import __version__  # noqa: PLC0415

    notes = list(run.notes)
    start, source = _session_start(run, movie, metadata)
    if source != "movie":
        notes.append(f"session_start_time is {source}, not read from the movie; "
                     "set session.session_start_time in the nwb_metadata file")
    placeholders = metadata.placeholders()
    if placeholders:
        notes.append("placeholders (fill them in a nwb_metadata file and run `cnmflow nwb OUTPUT_DIR --metadata "
                     f"FILE --overwrite`): {', '.join(placeholders)}")
    session = metadata.session
    subject = metadata.section("subject")
    if "date_of_birth" in subject:
        subject["date_of_birth"] = _aware(subject["date_of_birth"])
        if "age" not in metadata.subject:
            subject.pop("age")
    keywords = session.get("keywords", ["calcium imaging", "source extraction", "cnmflow"])
    return NWBFile(
        session_description=session.get("session_description",
                                         f"calcium imaging movie {movie.name}: sources extracted with cnmflow"),
        identifier=str(uuid.uuid4()),
        session_start_time=start,
        session_id=session.get("session_id"),
        experimenter=_as_list(session.get("experimenter")),
        lab=session.get("lab"),
        institution=session.get("institution"),
        experiment_description=session.get("experiment_description"),
        keywords=_as_list(keywords),
        source_script=f"cnmflow {__version__}",
        source_script_file_name="cnmflow",
        notes="\n".join(notes) or None,
        subject=Subject(**subject),
    )


def _session_start(run: NwbRun, movie: NwbMovie, metadata: NwbMetadata) -> tuple[datetime, str]:
    if movie.start_time is not None:
        return _aware(movie.start_time), "movie"
    given = metadata.start_time(movie.index, len(run.movies))
    if given is not None:
        return given, "from the nwb_metadata file"
    when = run.created or datetime.now().astimezone()
    return _aware(when), "the time of the analysis run (a placeholder)"


def _imaging_plane(nwbfile, run: NwbRun, movie: NwbMovie, metadata: NwbMetadata):
    from pynwb.ophys import OpticalChannel  # noqa: PLC0415

    device_values = metadata.section("device")
    manufacturer = device_values.pop("manufacturer", None)
    if manufacturer is not None and hasattr(nwbfile, "create_device_model"):  # NWB 2.9: the maker is the model's
        device_values["model"] = nwbfile.create_device_model(name=f"{device_values['name']} model",
                                                             manufacturer=manufacturer)
    elif manufacturer is not None:
        device_values["manufacturer"] = manufacturer
    device = nwbfile.create_device(name=device_values.pop("name"), **device_values)
    plane = metadata.section("imaging_plane")
    height, width = movie.pixel_size_um
    channel = OpticalChannel(name="OpticalChannel", description="the movie's single channel",
                             emission_lambda=plane.pop("emission_lambda"))
    rate = float(1 / movie.period)
    return nwbfile.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, device=device,
        description=plane.pop("description", f"the field of view of {movie.name}"),
        excitation_lambda=plane.pop("excitation_lambda"), indicator=plane.pop("indicator"),
        location=plane.pop("location"), imaging_rate=rate,
        grid_spacing=[float(width), float(height)], grid_spacing_unit="micrometers")


def _processing_description(run: NwbRun, movie: NwbMovie) -> str:
    from cnmflow.version import __version__  # noqa: PLC0415

    method = str(run.parameters.get("method_init", ""))
    engine = "CNMF-E (Zhou et al. 2018)" if method == "corr_pnr" else "CNMF (Pnevmatikakis et al. 2016)"
    first, stop = movie.frame_range
    return (f"Sources extracted by cnmflow {__version__}, {engine}, on a series of {len(run.movies)} movie(s) "
            f"concatenated in time; this file holds movie {movie.index:03d} ({movie.name}), frames [{first}, {stop}) "
            f"of the series. Run fingerprint: {run.fingerprint or 'not recorded'}. "
            f"Effective parameters (CaImAn's names): {json.dumps(run.parameters, sort_keys=True, default=str)}")


def _images(est: Estimates, movie: NwbMovie):
    from pynwb.base import Images  # noqa: PLC0415
    from pynwb.image import GrayscaleImage  # noqa: PLC0415

    images = Images(name="SegmentationImages",
                    description="summary images of the movie, (x, y) = (width, height) like the image masks")
    if est.Cn is not None and np.asarray(est.Cn).shape == tuple(est.dims):
        images.add_image(GrayscaleImage(
            name="correlation", data=np.ascontiguousarray(np.asarray(est.Cn, dtype=np.float32).T),
            description="local correlation image of the whole series used for seeding (local_corr_img.tif)"))
    images.add_image(GrayscaleImage(
        name="mean", data=np.ascontiguousarray(model_mean_image(est, movie.frame_range).T),
        description="mean image of this movie as the model explains it: footprints times mean denoised traces "
                    "plus the mean background (b0 for 1P, b times mean f for 2P)"))
    return images


def model_mean_image(est: Estimates, frame_range: tuple[int, int]) -> np.ndarray:
    """(rows, cols) float32: A·mean(C) + mean background over the frames of one movie.

    The movie itself is not read again (that would double the export for long movies); for
    CNMF-E b0 is the background's temporal mean, so this is the movie's mean up to the residual.
    """
    first, stop = (int(v) for v in frame_range)
    pixels = int(est.dims[0]) * int(est.dims[1])
    mean = np.zeros(pixels, dtype=np.float64)
    if est.K and stop > first:
        mean += sp.csc_matrix(est.A) @ np.asarray(est.C[:, first:stop], dtype=np.float64).mean(axis=1)
    if np.asarray(est.b0).size == pixels:
        mean += np.asarray(est.b0, dtype=np.float64)
    b, f = np.asarray(est.b), np.asarray(est.f)
    if b.ndim == 2 and b.shape[0] == pixels and b.shape[1] and f.shape[1:] == (est.n_frames,) and stop > first:
        mean += b @ f[:, first:stop].astype(np.float64).mean(axis=1)
    return column_to_image(mean, tuple(int(d) for d in est.dims)).astype(np.float32)


def _plane_segmentation(ophys, plane, run: NwbRun):
    from hdmf.backends.hdf5.h5_utils import H5DataIO  # noqa: PLC0415
    from hdmf.common import VectorData  # noqa: PLC0415
    from hdmf.data_utils import DataChunkIterator  # noqa: PLC0415
    from pynwb.ophys import ImageSegmentation, PlaneSegmentation  # noqa: PLC0415

    from cnmflow.outputs.isxd_sets import cell_names  # noqa: PLC0415

    est = run.estimates
    rows, cols = (int(d) for d in est.dims)
    K = est.K
    columns = []
    if K:
        masks = DataChunkIterator(data=_footprints_xy(est.A, rows, cols), maxshape=(K, cols, rows),
                                  dtype=np.dtype(np.float32), buffer_size=1)
        columns.append(VectorData(
            name="image_mask", description="footprints (CaImAn's A), one (width, height) image per ROI",
            data=H5DataIO(masks, compression="gzip", compression_opts=1, chunks=(1, cols, rows))))
    segmentation = PlaneSegmentation(
        name=SEGMENTATION, imaging_plane=plane, id=list(range(K)), columns=columns,
        description="spatial footprints found by cnmflow (CaImAn's estimates.A, unit L2 norm each)")
    if not K:  # image_mask is a predefined column; declare it even for an empty table
        segmentation.add_column(name="image_mask", description="footprints (none found)",
                                data=np.zeros((0, cols, rows), np.float32))
    if K:  # hdmf cannot type an empty text column
        segmentation.add_column(name="cell_name", description="the name of the cell in the isxd cell sets",
                                data=cell_names(K))
        segmentation.add_column(name="status", description="accepted / undecided / rejected, as in the isxd "
                                                            "cell sets", data=[str(s) for s in run.statuses])
    if K and run.evaluated:  # roiextractors' property columns; only meaningful once quality evaluation ran
        segmentation.add_column(name="Accepted", description="passed the quality evaluation",
                                data=[s == "accepted" for s in run.statuses])
        segmentation.add_column(name="Rejected", description="failed the quality evaluation",
                                data=[s == "rejected" for s in run.statuses])
    image_segmentation = ImageSegmentation(name="ImageSegmentation")
    image_segmentation.add_plane_segmentation(segmentation)
    ophys.add(image_segmentation)
    return segmentation


def _footprints_xy(A: sp.spmatrix, rows: int, cols: int) -> Iterator[np.ndarray]:
    """Footprint i as a (cols, rows) image: the Fortran-order column read in C order is its transpose."""
    A = sp.csc_matrix(A, dtype=np.float32)
    A.sum_duplicates()
    for k in range(A.shape[1]):
        image = np.zeros(rows * cols, dtype=np.float32)
        lo, hi = A.indptr[k], A.indptr[k + 1]
        image[A.indices[lo:hi]] = A.data[lo:hi]
        yield column_to_image(image, (rows, cols)).T  # C-contiguous, like the column read in C order


def _fluorescence(ophys, segmentation, run: NwbRun, movie: NwbMovie) -> None:
    from pynwb.ophys import Fluorescence  # noqa: PLC0415

    est = run.estimates
    first, stop = movie.frame_range
    fluorescence = Fluorescence(name="Fluorescence")
    ophys.add(fluorescence)  # before its series, so their ROI region shares an ancestor with the table
    rois = segmentation.create_roi_table_region(region=list(range(est.K)), description="every ROI")
    dropped = (f" Samples {list(movie.invalid_samples)} were dropped or cropped in the recording, or held no image "
               "in the file, and are NaN."
               if movie.invalid_samples else "")
    for name, values, what in (
            ("RoiResponseSeries", est.C[:, first:stop] + est.YrA[:, first:stop], "raw traces (C + YrA)"),
            ("Denoised", est.C[:, first:stop], "denoised traces (C, baseline included)"),
            ("Deconvolved", est.S[:, first:stop], "deconvolved activity (S, OASIS)")):
        data = np.asarray(values, dtype=np.float32).T.copy()  # (n_frames, K), NWB's time-first layout
        if movie.invalid_samples:
            data[list(movie.invalid_samples), :] = np.nan
        fluorescence.create_roi_response_series(
            name=name, data=data, rois=rois, unit=UNIT, rate=float(1 / movie.period), starting_time=0.0,
            description=f"{what} of movie {movie.index:03d} on its own timeline, in the movie's intensity "
                        f"units.{dropped}")


# ---------------------------------------------------------------------------------------- helpers

def _aware(value: datetime) -> datetime:
    """NWB wants time zones; a naive time means UTC, as everywhere in cnmflow."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _as_list(value) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]
