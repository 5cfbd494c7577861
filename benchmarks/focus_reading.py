"""Why the focus test accepts or rejects a true neuron's component: its own image taken apart (issue #16, h23focus).

A diagnostic, not part of the product. For each fit (a ``covered_twice.py --focus-inputs`` output) and each named
true neuron, the component best matching it (IoU of the 90% masks, accepted or not) is read as the focus test read
it (``focus_rerun``'s recorded inputs, the test as imported now): its focus ratio at the start and at the end of the
explain-away loop, the fit's typical contrast (the median the ratio divides by), the own image's core, annulus and
level (``in_focus.core_contrast``'s three means), the step at which it was rejected, and every component reaching its
window — the neighbour's IoU with the neuron, its trace r with the component, its weight inside the window, whether
it is accepted, and the component's ratio with that neighbour left out of the regression (which neighbour's light
the regression takes away from the cell). The own image's mean on 2-px rings about its peak closes each block.

    PYTHONPATH=. .venv/bin/python benchmarks/focus_reading.py results/s31/main_pick_s31.json \\
        results/s31/bc_pick_s31.json --movies /work/movies_fresh8 --neurons 22,113
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.engine import in_focus
from cnmflow.shape_scoring import energy_masks, iou_matrix
from focus_rerun import load
from ring_means import ring_means
from stage_probes import Hook, probes


class Capture:
    """What the explain-away loop was handed (regressions, readings before and after, the ``read`` closure) and the
    order of its rejections (the growing ``without`` sets its re-reads pass to ``own_image``)."""

    def __init__(self) -> None:
        self.saved: dict = {}
        self.without: list[frozenset[int]] = []

    def _before(self, regressions, readings, read, **kw) -> None:
        self.saved.update(regressions=regressions, initial=dict(readings), read=read, pairs=list(kw.get("pairs", [])))

    def _after(self, result, regressions, readings, read, **kw) -> None:
        self.saved.update(final=dict(readings), rejected=set(result))

    def _own_image(self, regressions, k, window, *, without=frozenset()) -> None:
        if without and (not self.without or self.without[-1] != without):
            self.without.append(frozenset(without))

    def hooks(self) -> list[Hook]:
        return [Hook(in_focus, "_explain_away", before=self._before, after=self._after),
                Hook(in_focus.WindowRegressions, "own_image", before=self._own_image)]

    def order(self) -> list[int]:
        """Rejections in the order the loop made them (as far as the re-reads show it; the rest at the end)."""
        seen: list[int] = []
        for step in self.without:
            seen += sorted(set(step) - set(seen))
        return seen + sorted(self.saved["rejected"] - set(seen))


def image_parts(image: np.ndarray, peak: tuple[int, int], gsig: float) -> tuple[float, float, float]:
    """core_contrast's three means: within gSig, at gSig–2·gSig, and the level (median at 3–4·gSig)."""
    distance = np.hypot(np.arange(image.shape[0])[:, None] - peak[0], np.arange(image.shape[1])[None, :] - peak[1])
    ring = (distance > in_focus.LEVEL_RING_GSIG[0] * gsig) & (distance <= in_focus.LEVEL_RING_GSIG[1] * gsig)
    return (float(image[distance <= gsig].mean()), float(image[(distance > gsig) & (distance <= 2 * gsig)].mean()),
            float(np.median(image[ring])))


def ring_profile(image: np.ndarray, peak: tuple[int, int], step: int = 2, stop: int = 26) -> list[float]:
    """The mean on rings of ``step`` px about ``peak``, over the peak's value."""
    top = float(image[peak]) or 1.0
    return [round(float(mean) / top, 3) for mean in ring_means(image, peak, range(0, stop, step), width=step)]


def read_fit(out: Path, movies: Path) -> dict:
    """The focus test re-run on a fit's recorded inputs with the loop captured, and what a reading needs."""
    record = json.loads(out.read_text())
    movie_path = movies / record["movie"]
    movie = np.load(movie_path, mmap_mode="r")
    inputs = load(out.with_suffix(".focus.npz"))
    capture = Capture()
    with probes(*capture.hooks()):
        test = in_focus.out_of_focus(movie, inputs["A"], inputs["C"], inputs["dims"], **inputs["kw"])
    assert np.array_equal(test.rejected, inputs["rejected"]), "the re-run does not reproduce the fit's test"
    return dict(inputs=inputs, capture=capture, test=test, typical=typical_contrast(capture, inputs),
                truth=dict(np.load(movie_path.with_suffix(".truth.npz"))),
                estimates=dict(np.load(out.with_suffix(".estimates.npz"))))


def image_radius(inputs: dict) -> int:
    """The own images' window radius as the test reads them (wider with the halo test on)."""
    scale = in_focus.HALO_WINDOW_GSIG if inputs["kw"].get("halo_thr", 0) > 0 else in_focus.WINDOW_GSIG
    return int(np.ceil(scale * inputs["kw"]["gsig"]))


def typical_contrast(capture: Capture, inputs: dict) -> float:
    """The median contrast the ratios divide by: a component's first own image's contrast over its first ratio."""
    gsig, regressions = inputs["kw"]["gsig"], capture.saved["regressions"]
    reach = image_radius(inputs)
    for k, (ratio, _) in capture.saved["initial"].items():
        if 0 < ratio < np.inf:
            wide = in_focus.footprint_window(inputs["A"][:, k].toarray().ravel(), inputs["dims"], radius=reach)
            return in_focus.core_contrast(regressions.own_image(k, wide), wide.peak, gsig=gsig) / ratio
    return float("nan")


def neighbour_rows(fit: dict, k: int, neuron: int, iou_t: np.ndarray) -> list[str]:
    """One line per component reaching k's window: what its presence in the regression does to k's ratio."""
    cap, inputs = fit["capture"], fit["inputs"]
    regressions, read, rejected = cap.saved["regressions"], cap.saved["read"], cap.saved["rejected"]
    gram = regressions.gram
    scale = np.sqrt(np.diag(gram))
    window = in_focus.footprint_window(inputs["A"][:, k].toarray().ravel(), inputs["dims"],
                                       radius=int(np.ceil(in_focus.WINDOW_GSIG * inputs["kw"]["gsig"])))
    order = cap.order()
    final = set(order[:order.index(k)] if k in rejected else rejected)
    rows = []
    for j in regressions.neighbours[k][1:]:
        column = inputs["A"][:, int(j)].toarray().ravel()
        inside = column[window.f_index].sum() / max(column.sum(), 1e-12)
        without = read(k, frozenset(final | {int(j)}))[0]
        rows.append(f"      c{j:<4d} {'REJ' if j in rejected else 'acc'} iou_t {iou_t[neuron, j]:.2f} "
                    f"r {gram[k, j] / scale[k] / scale[j]:+.2f} in-window {inside:.2f} "
                    f"ratio without it {without:.3f}")
    return rows


def report(fit: dict, neuron: int) -> list[str]:
    """The block for one neuron in one fit."""
    cap, inputs, truth = fit["capture"], fit["inputs"], fit["truth"]
    gsig = inputs["kw"]["gsig"]
    iou_t, _ = iou_matrix(energy_masks(truth["footprints"]), energy_masks(fit["estimates"]["footprints"]))
    k = int(np.argmax(iou_t[neuron]))
    rejected, order = cap.saved["rejected"], cap.order()
    regressions = cap.saved["regressions"]
    wide = in_focus.footprint_window(inputs["A"][:, k].toarray().ravel(), inputs["dims"], radius=image_radius(inputs))
    step = order.index(k) + 1 if k in rejected else None
    at_end = frozenset(order[:step - 1] if step else rejected)     # left out of k's regression when last read
    image = regressions.own_image(k, wide, without=at_end)
    contrast = in_focus.core_contrast(image, wide.peak, gsig=gsig)
    initial, ending = cap.saved["initial"].get(k, (np.nan,))[0], cap.saved["final"].get(k, (np.nan,))[0]
    typical = fit["typical"]
    alone = cap.saved["read"](k, frozenset(int(j) for j in regressions.neighbours[k][1:]))[0]
    core, annulus, level = image_parts(image, wide.peak, gsig)
    pairs = [p for p in cap.saved["pairs"] if k in p]
    lines = [f"  t{neuron} (SNR {truth['peak_snr'][neuron]:.2f}) -> c{k} IoU {iou_t[neuron, k]:.2f} "
             f"{'REJECTED at step ' + str(step) + ' of ' + str(len(order)) if step else 'accepted'}; ratio "
             f"initial {initial:.3f} final {ending:.3f}, own trace alone {alone:.3f}; typical {typical:.3f}; "
             f"core {core:.4g} annulus {annulus:.4g} level {level:.4g} (contrast {contrast:.3f}); pairs {pairs}",
             f"    rejected before it: {order[:step - 1] if step else [j for j in order]}",
             f"    own-image rings /peak (2 px): {ring_profile(image, wide.peak)}"]
    return lines + neighbour_rows(fit, k, neuron, iou_t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fits", nargs="+", type=Path, help="covered_twice.py outputs fitted with --focus-inputs")
    parser.add_argument("--movies", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--neurons", required=True, help="true neuron indices, comma-separated")
    args = parser.parse_args(argv)
    neurons = [int(x) for x in args.neurons.split(",")]
    for out in args.fits:
        fit = read_fit(out, args.movies)
        print(out.stem, "rejected", len(fit["test"].rejected))
        for neuron in neurons:
            print("\n".join(report(fit, neuron)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
