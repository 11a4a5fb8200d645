"""Soft pseudo-labels: how likely a pseudo-label box is a real object, from its score.

A teacher's box scores rank well but are not probabilities (on the synthetic world a refined car box scoring 0.6 is
right 86 % of the time). Thresholding them throws away the ranking: every kept box counts as a certain object and
every dropped one as certain background. ``ScoreQuality`` maps each box's score to a quality q in [0, 1] that the
training targets carry (``encode_bev_targets(quality=)``) and the heatmap loss takes as the probability that the box
is real (``focal_heatmap_loss(quality=)``).

Two sources, chosen with ``data.train_labels_quality``:

- ``score``: q = the box's score as it is;
- a YAML file written by ``autolabel calibrate --score-calibration FILE``: per class, the precision of the teacher's
  refined boxes against ground truth as a non-decreasing function of the score, measured on a LABELLED split
  (``BevDetectionEvaluator.score_calibration``)
  (``score_calibration: {class: {score: [...], precision: [...]}}``, "*" for the classes without their own curve).
  q is that curve at the box's score (linear between knots, constant beyond the ends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perception.errors import InputError, load_yaml

__all__ = ["ScoreQuality"]

SOURCE = "data.train_labels_quality"


class ScoreQuality:
    """score -> probability that a box is real, per class name: the score itself (``curves=None``) or a curve."""

    def __init__(self, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None, source: str = SOURCE):
        self.source = source
        self.curves = None if curves is None else {str(k): _check_curve(k, *v, source) for k, v in curves.items()}

    @classmethod
    def load(cls, value: str | Path | None) -> ScoreQuality | None:
        """``data.train_labels_quality``: None (hard labels), "score", or the path of a score-calibration YAML."""
        if value is None:
            return None
        if str(value) == "score":
            return cls(None)
        path = Path(value).expanduser()
        document = load_yaml(path, "a score calibration (autolabel calibrate --score-calibration FILE), or 'score'")
        table = document.get("score_calibration") if isinstance(document, dict) else None
        if not isinstance(table, dict) or not table:
            raise InputError(
                f"{path}: expected a score_calibration mapping {{class: {{score: [...], precision: [...]}}}} "
                f"(autolabel calibrate --score-calibration FILE), found {_describe(document)}"
            )
        curves = {}
        for name, entry in table.items():
            if not isinstance(entry, dict) or "score" not in entry or "precision" not in entry:
                raise InputError(
                    f"{path}: score_calibration.{name}: expected {{score: [...], precision: [...]}}, "
                    f"found {_describe(entry)}"
                )
            curves[str(name)] = (entry["score"], entry["precision"])
        return cls(curves, source=str(path))

    def check_classes(self, classes: Sequence[str], where: str) -> None:
        """Raise InputError (naming the file and ``where`` the classes come from) if a class has no curve."""
        if self.curves is None or "*" in self.curves:
            return
        missing = [name for name in classes if name not in self.curves]
        if missing:
            raise InputError(
                f"{self.source}: no score calibration for classes {missing} of {where} (and no '*' curve); "
                f"found curves for {sorted(self.curves)}"
            )

    def __call__(self, classes: Sequence[str], class_id: np.ndarray, score: np.ndarray) -> np.ndarray:
        """q (M,) in [0, 1] for boxes of label classes ``classes[class_id]`` with ``score`` (M,)."""
        score = np.clip(np.asarray(score, np.float64).reshape(-1), 0.0, 1.0)
        if self.curves is None:
            return score
        class_id = np.asarray(class_id).reshape(-1)
        quality = np.empty_like(score)
        for index in np.unique(class_id):
            name = classes[int(index)]
            xs, ys = self.curves[name] if name in self.curves else self.curves["*"]
            rows = class_id == index
            quality[rows] = np.interp(score[rows], xs, ys)
        return quality


def _check_curve(name: Any, xs: Any, ys: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = np.asarray(xs, np.float64).reshape(-1), np.asarray(ys, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{source}: class {name!r}: expected lists of numbers, found {xs!r} and {ys!r}") from None
    if len(x) == 0 or len(x) != len(y):
        raise InputError(
            f"{source}: class {name!r}: expected as many precisions as scores (at least one), found {len(x)} "
            f"scores and {len(y)} precisions"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))):
        raise InputError(f"{source}: class {name!r}: expected finite scores and precisions in [0, 1], found {ys!r}")
    if np.any(np.diff(x) < 0):
        raise InputError(f"{source}: class {name!r}: expected scores in increasing order, found {xs!r}")
    return x, y


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:200]
