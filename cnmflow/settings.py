"""The machine's knobs, read from the environment in one place.

A lab sets these once per machine or cluster (memory per chunk, scratch disk, caches, the Dask
scheduler, the MLflow store), not per run, so they live in environment variables with the prefix
``CNMFLOW_`` rather than in the analysis parameters (and never change a run's fingerprint). Each
entry point (the CLI, a flow, ``cnmflow.extract``, ``cnmflow.engine.fit``) builds one
:class:`Settings` with :func:`load_settings` and passes it, or the values it needs, down; nothing
below reads ``os.environ`` itself. A bad value is refused before any compute, naming the variable.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cnmflow.errors import ParameterError

__all__ = ["DEFAULT_CACHE_MAX_GB", "DEFAULT_CHUNK_MB", "DEFAULT_IN_PROCESS_BELOW", "DEFAULT_PATCH_MB", "Settings",
           "load_settings"]

#: Default memory (MB) of one chunk of frames in the passes over the whole movie.
DEFAULT_CHUNK_MB = 128.0
#: Default megabytes of frame-sized arrays one patch job keeps in memory (more goes to scratch files).
DEFAULT_PATCH_MB = 256.0
#: Extraction results the cache keeps (GB): a watched folder caches every recording's components (hundreds of MB
#: for a long one), so without a bound the cache would fill the disk over months.
DEFAULT_CACHE_MAX_GB = 20.0
#: Default pixel-frames (rows x cols x frames) below which a movie's patches are fitted in the run's own
#: process: spawning workers (each imports the engine, ~1.5 s of CPU) costs more than such a movie's patches.
DEFAULT_IN_PROCESS_BELOW = 4_000_000
PREFIX = "CNMFLOW_"


def _check_writable(folder: Path, *, name: str) -> None:
    """Refuse a folder setting that cannot be created or written (the results cache, the patches' scratch): a
    read-only one failed the run after it had started, with an OSError naming no variable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    why = "is not a folder" if not existing.is_dir() else "is not writable"
    where = "" if existing == folder else f" (its nearest existing parent {existing} {why})"
    raise ValueError(f"{PREFIX}{name}={str(folder)!r} {why if existing == folder else 'cannot be created'}{where}; "
                     f"set {PREFIX}{name} to a writable folder")


def _blank_is_unset(value: object) -> object:
    """An empty (or all-blank) variable means "not set", as a shell user expects."""
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


def _number_setting(name: str, value: object, *, default: float, valid: Callable[[float], bool], meaning: str,
                    example: int, zero_means: str = "") -> float:
    """A number from ``CNMFLOW_<name>``; unset means ``default``; one ``valid`` refuses names the fix."""
    value = _blank_is_unset(value)
    if value is None:
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and valid(number)):
        default_text = f"default {default:g}" + (f"; {zero_means}" if zero_means else "")
        raise ValueError(f"{PREFIX}{name}={value!r} must be {meaning} ({default_text}); unset it or set e.g. "
                         f"{PREFIX}{name}={example}")
    return number


def _megabytes_setting(name: str, value: object, *, default: float, zero_allowed: bool, meaning: str,
                       example: int, zero_means: str = "") -> float:
    """A memory size in MB from ``CNMFLOW_<name>``; unset means ``default``."""
    return _number_setting(name, value, default=default, valid=(lambda mb: mb >= 0) if zero_allowed else
                           (lambda mb: mb > 0), meaning=meaning, example=example, zero_means=zero_means)


class Settings(BaseSettings):
    """What this machine offers a run; defaults suit a laptop."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore", populate_by_name=True)

    #: ``CNMFLOW_CHUNK_MB``: memory of one chunk of frames in the passes over the whole movie.
    chunk_mb: float = DEFAULT_CHUNK_MB
    #: ``CNMFLOW_PATCH_MB``: frame-sized arrays one patch job may hold in memory (0: all in scratch files).
    patch_mb: float = DEFAULT_PATCH_MB
    #: ``CNMFLOW_PATCHES_IN_PROCESS_BELOW``: movies with fewer pixel-frames fit their patches in the run's
    #: own process, one thread, as a worker would (0: always the ``n_processes`` workers).
    patches_in_process_below: int = DEFAULT_IN_PROCESS_BELOW
    #: ``CNMFLOW_SCRATCH_DIR``: folder for the patch jobs' scratch files (None: the system's temp folder).
    scratch_dir: str | None = None
    #: ``CNMFLOW_CACHE_DIR``: cached extraction results, keyed by run fingerprint (safe to delete).
    cache_dir: Path = Path("~/.cache/cnmflow")
    #: ``CNMFLOW_CACHE_MAX_GB``: most extraction results the cache keeps, least recently used deleted first.
    cache_max_gb: float = DEFAULT_CACHE_MAX_GB
    #: ``CNMFLOW_DASK_ADDRESS``: Dask scheduler for the patch jobs when a run names none.
    dask_address: str | None = None
    #: ``MLFLOW_TRACKING_URI`` (MLflow's own variable): the tracking store when a run names none.
    tracking_uri: str | None = Field(default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI",
                                                                                  "tracking_uri"))

    @field_validator("chunk_mb", mode="before")
    @classmethod
    def _positive_chunk(cls, value: object) -> float:
        return _megabytes_setting("CHUNK_MB", value, default=DEFAULT_CHUNK_MB, zero_allowed=False,
                                  meaning="a positive number of megabytes", example=64)

    @field_validator("patch_mb", mode="before")
    @classmethod
    def _non_negative_patch(cls, value: object) -> float:
        return _megabytes_setting("PATCH_MB", value, default=DEFAULT_PATCH_MB, zero_allowed=True,
                                  meaning="a number of megabytes >= 0", example=256,
                                  zero_means="0 puts every patch in a scratch file")

    @field_validator("patches_in_process_below", mode="before")
    @classmethod
    def _pixel_frames(cls, value: object) -> int:
        return int(_number_setting("PATCHES_IN_PROCESS_BELOW", value, default=DEFAULT_IN_PROCESS_BELOW,
                                   valid=lambda count: count >= 0 and count == int(count),
                                   meaning="a whole number of pixel-frames >= 0", example=0,
                                   zero_means="0 always uses worker processes"))

    @field_validator("scratch_dir", mode="before")
    @classmethod
    def _existing_folder(cls, value: object) -> str | None:
        value = _blank_is_unset(value)
        if value is not None and not Path(str(value)).is_dir():
            raise ValueError(f"{PREFIX}SCRATCH_DIR={value!r} is not a folder; create it or unset it "
                             "(the system's temp folder is used then)")
        if value is not None:  # a read-only one failed the run in its patches, after the compute had started
            _check_writable(Path(str(value)), name="SCRATCH_DIR")
        return value  # type: ignore[return-value]

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _default_cache(cls, value: object) -> object:
        folder = _blank_is_unset(value) or Path("~/.cache/cnmflow")
        _check_writable(Path(str(folder)).expanduser(), name="CACHE_DIR")
        return folder

    @field_validator("cache_max_gb", mode="before")
    @classmethod
    def _cache_bound(cls, value: object) -> float:
        return _number_setting("CACHE_MAX_GB", value, default=DEFAULT_CACHE_MAX_GB, valid=lambda gb: gb >= 0,
                               meaning="a number of gigabytes >= 0", example=50,
                               zero_means="0 keeps only the last run's result")

    @field_validator("dask_address", "tracking_uri", mode="before")
    @classmethod
    def _optional_text(cls, value: object) -> object:
        return _blank_is_unset(value)

    @property
    def patch_memory_bytes(self) -> float:
        return self.patch_mb * 2 ** 20

    def dask_scheduler(self, address: str | None = None) -> str | None:
        """The Dask scheduler a run's jobs go to: the run's own, else this machine's, else none (local processes)."""
        return address or self.dask_address

    def hash_cache(self) -> Path:
        """Folder of the input files' remembered sha256 (one small record per file, made on first use)."""
        return Path(self.cache_dir).expanduser() / "input-hashes"

    def results_cache(self) -> Path:
        """Folder for Prefect's stored extraction results (created on first use)."""
        folder = Path(self.cache_dir).expanduser() / "results"
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()


def load_settings() -> Settings:
    """The settings from the environment; a bad value raises ParameterError naming the variable."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        raise ParameterError(str(cause) if cause is not None else first["msg"]) from None
