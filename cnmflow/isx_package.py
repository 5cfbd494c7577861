"""The Inscopix ``isx`` package, imported where it is first needed.

Importing cnmflow must stay cheap and work where isx's native library cannot load (a CLI
``--help``, the engine in a worker): every isx user calls :func:`isx_package` instead of a
module-level ``import isx``.
"""

from __future__ import annotations

from types import ModuleType

from cnmflow.errors import MovieError

__all__ = ["isx_package"]


def isx_package(*, needed_for: str | None = None) -> ModuleType:
    """The ``isx`` module. ``needed_for`` (e.g. ``"reading .isxd files"``): a missing isx is then a
    MovieError that says what needs it, instead of the ImportError."""
    try:
        import isx  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - isx is a dependency
        if needed_for is None:
            raise
        raise MovieError(f"{needed_for} needs the 'isx' package ({exc})") from exc
    return isx
