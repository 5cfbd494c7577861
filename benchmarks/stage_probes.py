"""Probes on the engine's private stages for the diagnostic scripts (issue #16): one home for wrapping a
stage and for knowing which patch and which seed search is being fitted.

The diagnostics (``seed_losses.py``, ``removal_bias.py``, ``initial_cores.py``, ``covered_twice.py``) record
what a stage is handed and what it returns, without changing the engine: a :class:`Hook` wraps one module
(or class) attribute with a ``before`` and an ``after`` function for the duration of a ``with probes(...)``
block, and the original is put back on exit, also when the fit raises. The patches must run in the
script's own process (``n_processes`` 1) for the hooks to see them.

:class:`PatchTracker` follows the 1P patch job: the box being fitted (``one_photon._fit_downsampled``) and
whether the seed search running is the first or the residual one (``corr_pnr._greedy`` is handed the
first search's components, ``found_before``, only in the residual search).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from cnmflow.engine.init import corr_pnr
from cnmflow.engine.patch_job import one_photon

#: the seed searches of a patch, in the order the patch job runs them
SEARCHES = ("first", "residual")


@dataclass(frozen=True)
class Hook:
    """``owner.name`` wrapped: ``before(*args, **kw)`` runs before the original with the stage's arguments,
    ``after(result, *args, **kw)`` after it with its result too. Neither changes what the stage receives or
    returns (their own return values are ignored)."""

    owner: Any
    name: str
    before: Callable[..., Any] | None = None
    after: Callable[..., Any] | None = None

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        before, after = self.before, self.after

        def probed(*args, **kw):
            if before is not None:
                before(*args, **kw)
            result = original(*args, **kw)
            if after is not None:
                after(result, *args, **kw)
            return result

        return probed


@contextmanager
def probe(hook: Hook) -> Iterator[None]:
    """Install one hook for the block; the original attribute is restored on exit."""
    own = vars(hook.owner)
    had, saved = hook.name in own, own.get(hook.name)   # an inherited attribute is removed again, not copied
    setattr(hook.owner, hook.name, hook.wrap(getattr(hook.owner, hook.name)))
    try:
        yield
    finally:
        if had:
            setattr(hook.owner, hook.name, saved)
        else:
            delattr(hook.owner, hook.name)


@contextmanager
def overridden(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` set to ``value`` for the block (a constant a trial varies), the original restored on exit."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@contextmanager
def probes(*hooks: Hook) -> Iterator[None]:
    """Install several hooks for the block. Hooks on the same attribute nest in the order given: the first
    is outermost, so its ``before`` runs first and its ``after`` last."""
    with ExitStack() as stack:
        for hook in reversed(hooks):
            stack.enter_context(probe(hook))
        yield


class PatchTracker:
    """Which patch box the 1P patch job is fitting and which seed search runs in it (:data:`SEARCHES`).

    ``search`` is the index (0 first, 1 residual; None before the first search), ``kind`` its name.
    Put :meth:`hooks` first in :func:`probes` so a script's own hooks on the same stages see them updated.
    """

    def __init__(self) -> None:
        self.box = None
        self.search: int | None = None

    @property
    def kind(self) -> str | None:
        return None if self.search is None else SEARCHES[self.search]

    def _enter_patch(self, Y, patch, box, job, **kw) -> None:
        self.box = box

    def _enter_search(self, st, **kw) -> None:
        self.search = int(kw.get("found_before") is not None)

    def hooks(self) -> tuple[Hook, Hook]:
        return (Hook(one_photon, "_fit_downsampled", before=self._enter_patch),
                Hook(corr_pnr, "_greedy", before=self._enter_search))


def crop(box, image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The part of a field-sized ``image`` under ``box`` (``shape`` rows × columns from its corner; default
    the box's own)."""
    rows, cols = box.shape if shape is None else shape
    return image[box.row0:box.row0 + rows, box.col0:box.col0 + cols]


def to_field(box, image: np.ndarray, fov_dims: tuple[int, int]) -> np.ndarray:
    """A patch-sized ``image`` placed at ``box`` in a field of zeros (float32), as the field's footprint."""
    field = np.zeros(fov_dims, dtype=np.float32)
    field[box.row0:box.row1, box.col0:box.col1] = image
    return field
