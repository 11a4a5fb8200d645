"""Offline refinement of tracklets: rescue, linking, interpolation, RTS smoothing, shape priors."""

from autolabel.refine.appearance import EMBEDDING_DIM, colour_histogram_embedding
from autolabel.refine.extend import extend_tracklets
from autolabel.refine.interpolate import interpolate_linear
from autolabel.refine.linking import link_tracklets
from autolabel.refine.shapes import hold_stationary, unify_rigid_size
from autolabel.refine.smooth import rts_smooth_series, rts_smooth_tracklet

__all__ = [
    "EMBEDDING_DIM",
    "colour_histogram_embedding",
    "extend_tracklets",
    "hold_stationary",
    "interpolate_linear",
    "link_tracklets",
    "rts_smooth_series",
    "rts_smooth_tracklet",
    "unify_rigid_size",
]  # fmt: skip
