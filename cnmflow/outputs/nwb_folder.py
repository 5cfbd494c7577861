"""NWB files for a folder a finished run left (what ``cnmflow nwb OUTPUT_DIR`` runs).

Like ``cnmflow track``, it needs only the folder: the files are rebuilt from
``caiman_output.hdf5``, the cell sets and ``manifest.json`` (`nwb_run_from_folder`), written
with the folder's lock held into a hidden staging folder together with the manifest that
lists them (kind ``nwb``, one per movie), and swapped in as the export swaps a result set, so
``cnmflow lineage ophys.000.nwb`` works. Importing this module does not import pynwb.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnmflow.errors import InputError


def write_nwb_for_folder(output_dir: str | os.PathLike, *, metadata: str | os.PathLike | None = None,
                         overwrite: bool = False) -> tuple[list[Path], list[str]]:
    """Write and list ``ophys.{k}.nwb`` in a finished output folder.

    Holds the folder's lock (one writer per folder), stages the files and the updated manifest
    in a hidden folder and swaps them in like the export does, so a kill leaves either the
    folder as it was or the files listed in its manifest. Returns the paths written (movie
    order) and the metadata fields left as placeholders. InputError: no finished run there,
    the folder is busy, a bad metadata file, or NWB files already present without ``overwrite``.
    """
    from cnmflow.lineage import read_manifest, with_outputs, write_manifest  # noqa: PLC0415
    from cnmflow.outputs.folder import open_output_dir  # noqa: PLC0415
    from cnmflow.outputs.names import MANIFEST_NAME, nwb_name  # noqa: PLC0415
    from cnmflow.outputs.nwb import write_nwb  # noqa: PLC0415
    from cnmflow.outputs.nwb_metadata import NwbMetadata, nwb_settings, read_nwb_metadata  # noqa: PLC0415
    from cnmflow.outputs.nwb_source import nwb_run_from_folder  # noqa: PLC0415
    from cnmflow.outputs.result_swap import staging_folder, swap_in  # noqa: PLC0415

    folder = Path(output_dir)
    facts = read_nwb_metadata(metadata) if metadata is not None else NwbMetadata()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give the output folder of a finished cnmflow run")
    with open_output_dir(folder):
        run = nwb_run_from_folder(folder)
        movies = sorted(run.movies, key=lambda movie: movie.index)
        names = [nwb_name(movie.index) for movie in movies]
        existing = [name for name in names if os.path.lexists(folder / name)]
        if existing and not overwrite:
            raise InputError(f"{folder / existing[0]} already exists; pass --overwrite to replace the NWB files")
        with staging_folder(folder, label="nwb-") as staging:
            write_nwb(staging, run, metadata=facts)
            outputs = {name: {"kind": "nwb", "movie_index": movie.index} for name, movie in zip(names, movies)}
            manifest = with_outputs(read_manifest(folder), outputs, folder=staging)
            # the run's NWB settings now say what the folder holds (see nwb_settings: up-to-date checks)
            manifest["run"] = {**manifest.get("run", {}), "nwb": nwb_settings(True, facts)}
            write_manifest(staging / MANIFEST_NAME, manifest)
            swap_in(staging, folder, new=[*names, MANIFEST_NAME], old=[*existing, MANIFEST_NAME],
                    manifest_name=MANIFEST_NAME)
    return [folder / name for name in names], facts.placeholders()
