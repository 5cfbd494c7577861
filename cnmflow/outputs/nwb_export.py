"""The export's NWB step: ``ophys.{k}.nwb`` for a fresh fit, written into the export's staging folder.

Why a step of its own: NWB files are data outputs (a DANDI upload is made of them), so unlike a
preview a failure fails the export, and the files are swapped in with the rest of the result
set and listed in the manifest (kind ``nwb``). The seconds it took go to the run's timings as
``export.nwb`` (a sub-stage of the export: the total runtime does not count it twice).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnmflow.errors import InputError
from cnmflow.outputs.nwb_metadata import NwbMetadata

if TYPE_CHECKING:
    from cnmflow.pipeline import ExtractionResult

log = logging.getLogger(__name__)

TIMING_KEY = "export.nwb"


class NwbWriteError(RuntimeError):
    """Writing an NWB file failed: the export fails, with the files as they were."""


@dataclass(frozen=True)
class NwbStep:
    """What the NWB step wrote (file name → manifest record), how long it took and what to tell the user."""

    files: dict[str, dict[str, Any]]
    seconds: float
    notes: list[str] = field(default_factory=list)


def write_run_nwb(result: ExtractionResult, folder: Path, *, fingerprint: str | None, evaluate: bool,
                  metadata: NwbMetadata | None) -> NwbStep:
    """Write one NWB file per movie of ``result`` into ``folder`` (the staging folder).

    InputError for metadata that does not fit the run (checked before compute in the flows, so
    only direct callers meet it); NwbWriteError, naming the cause and the off switch, for
    anything else the writer raises.
    """
    from cnmflow.outputs.nwb import write_nwb  # noqa: PLC0415  (pynwb is slow to import)
    from cnmflow.outputs.nwb_source import nwb_run_from_result  # noqa: PLC0415

    facts = metadata or NwbMetadata()
    started = time.perf_counter()
    try:
        run = nwb_run_from_result(result, fingerprint=fingerprint, evaluate=evaluate)
        paths = write_nwb(folder, run, metadata=facts)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - pynwb/hdmf/h5py raise many types; one clear message
        detail = " ".join(str(err).split())
        raise NwbWriteError(f"writing the NWB files (ophys.*.nwb) failed: {type(err).__name__}: {detail}; "
                            "no outputs were changed. Run again without NWB (--no-nwb, flow parameter "
                            "nwb=false) and write them later with `cnmflow nwb OUTPUT_DIR`") from err
    seconds = time.perf_counter() - started
    log.info("NWB: %d file(s) in %.2f s", len(paths), seconds)
    indices = sorted(movie.index for movie in run.movies)   # write_nwb's order
    files = {path.name: {"kind": "nwb", "movie_index": index} for path, index in zip(paths, indices)}
    placeholders = facts.placeholders()
    notes = [f"NWB files hold placeholders for {', '.join(placeholders)}; give them in a metadata file "
             "(--nwb-metadata FILE) before uploading to DANDI"] if placeholders else []
    return NwbStep(files=files, seconds=seconds, notes=notes)
