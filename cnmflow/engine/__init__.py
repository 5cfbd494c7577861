"""The extraction engine: CNMF-E (1P) and CNMF with a low-rank background (2P).

numpy/scipy/OASIS (scikit-learn for the 2P initialisation) only, no Prefect or MLflow.

``from cnmflow.engine import fit, Estimates``; ``fit`` takes the run's ``Params`` or the
:class:`~cnmflow.engine.sections.EngineSettings` built (and checked) from them. Submodules are
imported on first use so that one stage (e.g. ``cnmflow.engine.noise``) can be used without
loading the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"fit": "cnmflow.engine.fitting", "check_supported": "cnmflow.engine.sections",
            "EngineSettings": "cnmflow.engine.sections", "Estimates": "cnmflow.engine.estimates"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cnmflow.engine' has no attribute {name!r}")
