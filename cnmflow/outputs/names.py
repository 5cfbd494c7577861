"""The names of the files a run writes into its output folder, in one place.

Writers, readers (tracking, the NWB step, lineage checks) and the overwrite logic all build
names here, so a rename cannot leave one of them looking for the old file. Per-movie names
carry the movie index as three digits (``cellset_raw.000.isxd``); preview *stems* get
``.svg`` / ``.png`` from :func:`cnmflow.outputs.figures.preview_paths`.
"""

from __future__ import annotations

import re

__all__ = [
    "HDF5_NAME", "CORRELATION_NAME", "METADATA_NAME", "MANIFEST_NAME", "SHIFTS_NAME",
    "LINEAGE_STEM", "INITIALIZATION_STEM", "NO_CELLS_STEM", "SHIFTS_STEM", "IMAGES_STEM", "FOOTPRINTS_PREVIEW",
    "PRODUCT_NAME", "cellset_name", "eventset_name", "nwb_name", "corrected_name", "traces_stem",
    "footprints_stem", "events_stem",
]

HDF5_NAME = "caiman_output.hdf5"
CORRELATION_NAME = "local_corr_img.tif"
METADATA_NAME = "output_metadata.json"
MANIFEST_NAME = "manifest.json"
#: The motion correction's shifts, template and mean images (motion-correct runs).
SHIFTS_NAME = "motion_shifts.hdf5"

LINEAGE_STEM = "lineage"
INITIALIZATION_STEM = "initialization_images"
NO_CELLS_STEM = "no_cells"
SHIFTS_STEM = "motion_shifts"
IMAGES_STEM = "motion_images"

#: Every name an export can write (data files of any movie index, previews): what an overwrite replaces
#: besides the files the old manifest lists. Anything else in the folder is the user's and is kept.
PRODUCT_NAME = re.compile(
    r"(caiman_output\.hdf5|local_corr_img\.tif|output_metadata\.json|manifest\.json"
    r"|(cellset_raw|cellset_denoised|neural_events)\.\d{3}\.isxd|ophys\.\d{3}\.nwb"
    r"|motion_corrected\.\d{3}\.(tif|isxd)"
    r"|(initialization_images|no_cells|lineage|motion_shifts|motion_images|traces_cellset_(raw|denoised)\.(\d{3}|series)"
    r"|footprints_cellset_(raw|denoised)\.\d{3}|preview_neural_events\.\d{3})\.(svg|png))")


def cellset_name(label: str, movie_index: int) -> str:
    """``cellset_raw.000.isxd`` / ``cellset_denoised.000.isxd`` (``label``: raw or denoised)."""
    return f"cellset_{label}.{movie_index:03d}.isxd"


def eventset_name(movie_index: int) -> str:
    """``neural_events.000.isxd`` for movie 0."""
    return f"neural_events.{movie_index:03d}.isxd"


def nwb_name(movie_index: int) -> str:
    """``ophys.000.nwb`` for movie 0 (k as for the cell sets)."""
    return f"ophys.{int(movie_index):03d}.nwb"


def corrected_name(movie_index: int, movie_kind: str) -> str:
    """``motion_corrected.{k}.isxd`` for isxd inputs, ``.tif`` for the others."""
    return f"motion_corrected.{movie_index:03d}.{'isxd' if movie_kind == 'isxd' else 'tif'}"


def traces_stem(label: str, movie_index: int | None) -> str:
    """``traces_cellset_raw.000``; ``movie_index`` None: the whole series (``traces_cellset_raw.series``)."""
    return f"traces_cellset_{label}.{'series' if movie_index is None else f'{movie_index:03d}'}"


def footprints_stem(label: str, movie_index: int) -> str:
    """``footprints_cellset_raw.000`` / ``footprints_cellset_denoised.000``."""
    return f"footprints_cellset_{label}.{movie_index:03d}"


def events_stem(movie_index: int) -> str:
    """``preview_neural_events.000``."""
    return f"preview_neural_events.{movie_index:03d}"


#: The footprint preview of the first movie, used in sweep contact sheets.
FOOTPRINTS_PREVIEW = f"{footprints_stem('denoised', 0)}.png"
