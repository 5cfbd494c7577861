"""Placeholder previews for the fault-injection runs: same file names, none of matplotlib's seconds.

The faults under test are about which files exist when; drawing real figures would only make
each of the many short runs several seconds slower.
"""

from __future__ import annotations

from pathlib import Path


def quick_preview(function, *args, **kwargs) -> tuple[list[Path], None]:
    """Stand-in for ``cnmflow.outputs.previews.safe_preview``: writes ``<stem>.svg`` and ``<stem>.png``."""
    stem = Path(kwargs.get("stem", args[0]))
    paths = [stem.with_name(f"{stem.name}.svg"), stem.with_name(f"{stem.name}.png")]
    for path in paths:
        path.write_bytes(b"preview placeholder")
    return paths, None


def install() -> None:
    import cnmflow.outputs.export as export

    export.safe_preview = quick_preview
