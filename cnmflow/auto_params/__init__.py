"""gSig, min_corr and min_pnr read from the movie ("auto"), before any extraction.

One module per step, in the order the estimate takes them:

- :mod:`~cnmflow.auto_params.sample`: the contiguous, downsampled sample the estimate is read on;
- :mod:`~cnmflow.auto_params.radius`: the cell radius (scale-space LoG blobs of the max − mean projection,
  their half-max radii on their peak frames);
- :mod:`~cnmflow.auto_params.seed_images`: what the seed search sees (correlation and PNR images, the
  sign-flipped movie's PNR, the white-noise correlation null);
- :mod:`~cnmflow.auto_params.gsig_choice`: gSig = k × the radius, k the largest PNR margin (blobs / cut^0.3), 1 when
  fewer than MIN_BLOBS blobs are visible or no factor wins half the bootstrap resamples (the evidence split);
- :mod:`~cnmflow.auto_params.cuts`: min_corr and min_pnr, each the level its null exceeds once per image, min_pnr
  held at or below MIN_PNR_CEILING (where the null reads stricter on CA1, it loses cells);
- :mod:`~cnmflow.auto_params.seed_shapes`: the seeds above both cuts classed by shape (reported, not used);
- :mod:`~cnmflow.auto_params.estimate`: the estimate with its evidence, the fallback, "auto" resolved in a run, and
  the cells' radius alone for a run whose gSig is set (:func:`series_cells_radius`: validation's size check).
"""

from cnmflow.auto_params.cuts import (MIN_PNR_CEILING, ThresholdEstimate, ceiled_min_pnr, noise_floor_cut, noise_k,
                                      null_maxima, pnr_reduction, scale_to_length, threshold_estimates)
from cnmflow.auto_params.estimate import (AUTO_NAMES, AutoEstimate, estimate_from_movie, estimate_parameters,
                                          relaxed_cuts, resolve_auto, sample_radius, series_cells_radius,
                                          visible_cells_radius)
from cnmflow.auto_params.gsig_choice import GSIG_FACTORS, GsigChoice, bootstrap_wins, choose_gsig, pnr_margin
from cnmflow.auto_params.radius import RadiusEstimate, SmoothedMovie, estimate_radius, smoothed_in_time
from cnmflow.auto_params.sample import MAX_SAMPLE_FRAMES, sample_movie
from cnmflow.auto_params.seed_images import (GSIZ_RADIUS_FACTOR, FrameSpectra, SeedImages, gsiz_for,
                                             gsiz_of_radius, seed_images, temporal_mean, white_noise_correlation)
from cnmflow.auto_params.seed_shapes import CELL_SCALE_BAND, distinct_seeds, round_seeds, seed_radii

__all__ = [
    "AUTO_NAMES", "AutoEstimate", "CELL_SCALE_BAND", "FrameSpectra", "GSIG_FACTORS", "GSIZ_RADIUS_FACTOR",
    "GsigChoice", "MAX_SAMPLE_FRAMES", "MIN_PNR_CEILING", "RadiusEstimate", "SeedImages", "SmoothedMovie",
    "ThresholdEstimate", "bootstrap_wins", "ceiled_min_pnr", "choose_gsig", "distinct_seeds", "estimate_from_movie",
    "estimate_parameters", "estimate_radius", "gsiz_for", "gsiz_of_radius", "noise_floor_cut", "noise_k",
    "null_maxima", "pnr_margin", "pnr_reduction", "relaxed_cuts", "resolve_auto", "round_seeds", "sample_movie",
    "sample_radius", "scale_to_length", "seed_images", "seed_radii", "series_cells_radius", "smoothed_in_time",
    "temporal_mean", "threshold_estimates", "visible_cells_radius", "white_noise_correlation",
]
