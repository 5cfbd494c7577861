"""cnmflow: CNMF / CNMF-E calcium-imaging source extraction with CaImAn's parameter names.

``cnmflow.extract(movies, output_dir, params={...})`` runs the whole job; the pieces live in
``cnmflow.params``, ``cnmflow.movies``, ``cnmflow.engine`` and ``cnmflow.outputs``.
"""

from __future__ import annotations

from typing import Any

from cnmflow.version import __version__

__all__ = ["Result", "extract", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `cnmflow validate` must not pay for the writers and the engine.
    if name in ("extract", "Result"):
        from cnmflow import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnmflow' has no attribute {name!r}")
