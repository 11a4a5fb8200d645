"""``autolabel calibrate``: per-class score floors for 3D pseudo-labels, or the 2D chain's track-score threshold,
chosen on a LABELLED split.

Label a split that has ground truth (e.g. the validation part of the labelled data) with the same job and no
floors, then ``autolabel calibrate LABEL_DIR --gt GT_DIR --out floors.yaml``: for each class, the floor on the
refined box scores that maximises F1 of the kept boxes (matched within 2 m, nuScenes centre distance) against the
ground truth. The output is a job-config fragment; label the unlabelled data with it as a second config:
``autolabel U --out PSEUDO -c job.yaml -c floors.yaml``. Never calibrate on the data being labelled.

2D teachers (``--track-score``): which tracks the offline chain keeps depends on the detector and the domain (a
detector's persistent clutter scores differently from one camera and scene type to the next), so its threshold,
``refine.min_track_score``, is chosen on labelled videos of the domain: label them with ``--refine.min_track_score=0
--refine.output_score=track`` (every box then carries its track's score), then ``autolabel calibrate LABEL_DIR --gt
GT_DIR --track-score --out track.yaml``. Keeping the boxes that score at least t is exactly what
``min_track_score: t`` keeps (dropping a track changes no other track), so each candidate is scored on the same
labels: HOTA, IDF1 and MOTA over every sequence with ground truth, and the threshold with the best mean of the three
is written (ties: the lowest, which keeps the most).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autolabel.evaluate import bev_frame_pairs, class_remap, find_ground_truth, finished_labels
from perception.labels import ClipLabels

__all__ = [
    "FEW_OBJECTS",
    "TRACK_SCORE_CANDIDATES",
    "DistinctObjects",
    "calibrate_score_floors",
    "calibration_document",
    "choose_track_score",
    "floors_document",
    "measure_labels",
    "score_calibration",
    "set_floors_by_objects",
    "track_score_curve",
    "track_score_document",
]

TRACK_SCORE_CANDIDATES = tuple(round(0.05 * i, 2) for i in range(20))  # 0.0, 0.05, ..., 0.95
FEW_OBJECTS = 3  # a floor chosen on fewer distinct objects describes those objects, not the class: none is set


class DistinctObjects:
    """Distinct ground-truth objects per class, (clip, track id), within ``max_range`` metres of the ego: how far a
    floor can be trusted. A class with boxes that carry no track id cannot be counted (None)."""

    def __init__(self, max_range: float | None = None) -> None:
        self.max_range = max_range
        self._seen: set[tuple[str, int, int]] = set()  # (clip, class, track id)
        self._untracked: set[int] = set()

    def add(self, clip: str, gt_boxes) -> None:
        near = gt_boxes
        if self.max_range is not None:
            near = gt_boxes[np.hypot(*gt_boxes.center[:, :2].T) <= self.max_range]
        self._seen.update((clip, int(c), int(t)) for c, t in zip(near.class_id, near.track_id) if t >= 0)
        self._untracked.update(int(c) for c in near.class_id[near.track_id < 0])

    def count(self, class_index: int) -> int | None:
        return None if class_index in self._untracked else sum(1 for _, c, _ in self._seen if c == class_index)


def set_floors_by_objects(
    floors: dict[str, dict[str, Any]], objects: DistinctObjects, min_objects: int = FEW_OBJECTS
) -> dict[str, dict[str, Any]]:
    """``score_floors`` entries (in class order) with ``num_objects`` added, and no floor (0.0, ``few_objects`` set,
    the floor it would have had in ``floor_found``) for a class of fewer than ``min_objects`` counted objects."""
    for index, entry in enumerate(floors.values()):
        entry["num_objects"] = objects.count(index)
        entry["few_objects"] = entry["floor"] > 0 and (entry["num_objects"] or min_objects) < min_objects
        if entry["few_objects"]:
            entry.update(floor_found=entry["floor"], floor=0.0, min_objects=min_objects)
    return floors


def measure_labels(label_dir: str | Path, gt_root: str | Path, *, max_range: float | None = None):
    """(BevDetectionEvaluator, DistinctObjects) of the labels in ``label_dir`` against the clips under ``gt_root``."""
    from perception.metrics.bev_detection import BevDetectionEvaluator

    evaluator = None
    objects = DistinctObjects(max_range)
    for path in finished_labels(Path(label_dir)):
        relative = path.parent.relative_to(label_dir)
        found = find_ground_truth(Path(gt_root), relative)
        if found is None or found[0] != "clip":
            continue
        labels, gt_labels = ClipLabels.load(path), ClipLabels.load(found[1])
        if len(gt_labels.frames) != len(labels.frames):
            raise ValueError(f"{found[1]}: {len(gt_labels.frames)} frames, labels {path} have {len(labels.frames)}")
        if evaluator is None:
            evaluator = BevDetectionEvaluator(labels.classes, max_range=max_range)
        elif labels.classes != evaluator.classes:
            raise ValueError(f"{path}: classes {labels.classes} differ from the other clips' {evaluator.classes}")
        remap, _ = class_remap(gt_labels, labels.classes, found[1])
        for pred_boxes, gt_boxes in bev_frame_pairs(labels, gt_labels, remap):
            evaluator.add_frame(pred_boxes, gt_boxes)
            objects.add(str(relative), gt_boxes)
    if evaluator is None:
        raise FileNotFoundError(f"{label_dir}: no labelled clip has 3D ground truth under {gt_root}")
    return evaluator, objects


def calibrate_score_floors(
    label_dir: str | Path,
    gt_root: str | Path,
    *,
    max_range: float | None = None,
    min_gt: int = 20,
    min_objects: int = FEW_OBJECTS,
    beta: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Per class: the F-beta-best score floor with its precision, recall and ground-truth count (see module doc).

    A class whose ground-truth boxes belong to fewer than ``min_objects`` distinct objects gets no floor (0.0, with
    ``few_objects`` set and the floor it would have had in ``floor_found``): the F1-best floor on one bus is just
    below that bus's own lowest score and removes every other bus that scores lower. The boxes count (``min_gt``)
    does not catch this, because one object seen for 30 frames is 30 boxes. ``min_objects=0`` keeps such floors."""
    evaluator, objects = measure_labels(label_dir, gt_root, max_range=max_range)
    return set_floors_by_objects(evaluator.score_floors(min_gt=min_gt, beta=beta), objects, min_objects)


def score_calibration(
    evaluator, objects: DistinctObjects, *, min_gt: int = 20, min_objects: int = FEW_OBJECTS
) -> dict[str, dict[str, Any]]:
    """``measure_labels``'s result -> per class, the precision of the labels as a non-decreasing function of their
    score (``score`` and
    ``precision`` knots), for soft pseudo-labels (``perception fit --data.train_labels_quality=FILE``). A class with
    fewer than ``min_gt`` ground-truth boxes or ``min_objects`` distinct objects has no curve of its own: it uses "*",
    the curve of all classes pooled (its entry keeps the counts and says ``uses: "*"``)."""
    curves = evaluator.score_calibration()
    for index, name in enumerate(evaluator.classes):
        entry = curves[name]
        entry["num_objects"] = objects.count(index)
        if entry["num_gt"] < min_gt or (entry["num_objects"] or min_objects) < min_objects or not entry["score"]:
            entry.update(score=[], precision=[], uses="*")
    return curves


def calibration_document(curves: dict[str, dict[str, Any]], *, source: str) -> str:
    """The ``score_calibration`` YAML (``perception.data.quality``) with the counts behind each curve as comments."""
    lines = [
        f"# precision of the labels by score, per class, measured by `autolabel calibrate` on {source};",
        "# for soft pseudo-labels: perception fit ... --data.train_labels_quality=THIS_FILE",
        "score_calibration:",
    ]
    for name, entry in curves.items():
        objects = f", {entry['num_objects']} objects" if entry.get("num_objects") is not None else ""
        counts = f"{entry['num_pred']} boxes against {entry['num_gt']} ground-truth boxes{objects}"
        if entry.get("uses"):
            lines.append(f"  # {name}: too few to measure ({counts}); uses the pooled curve '*'")
            continue
        key = '"*"' if name == "*" else name
        lines.append(f"  {key}:  # {counts}")
        lines.append(f"    score: {[float(x) for x in entry['score']]}")
        lines.append(f"    precision: {[float(x) for x in entry['precision']]}")
    return _yaml_text(lines)


def floors_document(floors: dict[str, dict[str, Any]], *, source: str) -> str:
    """The job-config fragment (``tracking3d.class_min_score``) with the figures behind each floor as comments."""
    lines = [
        f"# per-class score floors chosen by `autolabel calibrate` on {source}",
        "tracking3d:",
        "  class_min_score:",
    ]
    for name, entry in floors.items():
        objects = f" of {entry['num_objects']} objects" if entry.get("num_objects") is not None else ""
        note = (
            f"precision {entry['precision']:.3f}, recall {entry['recall']:.3f} on {entry['num_gt']} boxes{objects}"
            if entry["num_gt"] and entry["precision"] == entry["precision"]
            else f"not calibrated: {entry['num_gt']} ground-truth boxes{objects}"
        )
        if entry.get("few_objects"):
            note = (
                f"no floor: {entry['floor_found']:.4f} was best ({note}), but on fewer than "
                f"{entry['min_objects']} objects it describes those objects, not the class"
            )
        lines.append(f"    {name}: {entry['floor']:.4f}  # {note}")
    return _yaml_text(lines)


def _labelled_with(label_dir: Path) -> dict[str, Any]:
    """The ``refine`` section of the job config the labels in ``label_dir`` were made with (its ``config.yaml``),
    checked to be what a track-score calibration needs."""
    from autolabel.outputs import CONFIG_FILE

    path = label_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected the job config autolabel writes beside its labels")
    refine = (yaml.safe_load(path.read_text()) or {}).get("refine")
    if not isinstance(refine, dict):
        raise ValueError(f"{path}: expected a 'refine' section (the 2D offline chain's settings), found {refine!r}")
    if refine.get("output_score") != "track":
        raise ValueError(
            f"{path}: refine.output_score: expected 'track' (every box carries its track's score), found "
            f"{refine.get('output_score')!r}; label the split with --refine.min_track_score=0 "
            "--refine.output_score=track"
        )
    return refine


def track_score_curve(
    label_dir: str | Path,
    gt_root: str | Path,
    *,
    gt_class: str = "pedestrian",
    thresholds: Sequence[float] = TRACK_SCORE_CANDIDATES,
) -> list[dict[str, float]]:
    """Per candidate threshold t (those at or above the ``min_track_score`` the labels were made with): HOTA, IDF1
    and MOTA (percent) of the boxes scoring >= t over every camera sequence with ground truth, combined as
    ``autolabel eval`` does (classes detection-weighted), and how many boxes and tracks are kept. The labels must be
    made with ``refine.output_score: track`` (read from ``LABEL_DIR/config.yaml``)."""
    from autolabel.evaluate import class_tracking_scores, tracking_pairs
    from perception.metrics.tracking import combine_tracking_scores

    label_dir = Path(label_dir)
    made_with = float(_labelled_with(label_dir).get("min_track_score") or 0.0)
    pairs = list(tracking_pairs(label_dir, gt_root, gt_class=gt_class))
    if not pairs:
        raise FileNotFoundError(f"{label_dir}: no labelled video or clip has 2D ground truth under {gt_root}")
    curve = []
    for threshold in sorted(t for t in thresholds if t >= made_with):
        per_class: dict[str, list] = {}
        boxes = tracks = 0
        for _, _, classes, pred, gt, scored in pairs:
            kept = [p[p.score >= threshold] for p in pred]
            boxes += sum(len(p) for p in kept)
            tracks += len({int(t) for p in kept for t in p.track_id})
            for class_id, scores in class_tracking_scores(kept, gt, scored).items():
                per_class.setdefault(classes[class_id], []).append(scores)
        combined = combine_tracking_scores([combine_tracking_scores(s) for s in per_class.values()]).summary()
        curve.append(
            {
                "threshold": float(threshold),
                **{key: 100.0 * combined[key] for key in ("HOTA", "IDF1", "MOTA")},
                "boxes": boxes,
                "tracks": tracks,
            }
        )
    if not curve:
        raise ValueError(f"{label_dir}: no candidate threshold at or above the labels' min_track_score {made_with}")
    return curve


def choose_track_score(curve: Sequence[dict[str, float]]) -> dict[str, float]:
    """The entry of ``curve`` (``track_score_curve``) with the best mean of HOTA, IDF1 and MOTA; ties go to the
    lowest threshold (it keeps the most tracks)."""
    best = None
    for entry in sorted(curve, key=lambda e: e["threshold"]):
        mean = (entry["HOTA"] + entry["IDF1"] + entry["MOTA"]) / 3.0
        if mean == mean and (best is None or mean > best[0] + 1e-9):
            best = (mean, entry)
    if best is None:
        raise ValueError("choose_track_score: no threshold with defined HOTA, IDF1 and MOTA")
    return best[1]


def track_score_document(chosen: dict[str, float], curve: Sequence[dict[str, float]], *, source: str) -> str:
    """The job-config fragment (``refine.min_track_score``) with the scores of every candidate as comments."""
    lines = [
        f"# the 2D chain's track-score threshold chosen by `autolabel calibrate --track-score` on {source}:",
        "# the best mean of HOTA, IDF1 and MOTA (ties: the lowest threshold)",
        "#   threshold   HOTA   IDF1   MOTA   tracks",
    ]
    for entry in curve:
        mark = "  <- chosen" if entry is chosen else ""
        lines.append(
            f"#   {entry['threshold']:9.2f} {entry['HOTA']:6.1f} {entry['IDF1']:6.1f} {entry['MOTA']:6.1f} "
            f"{entry['tracks']:8d}{mark}"
        )
    lines += ["refine:", f"  min_track_score: {chosen['threshold']:.2f}"]
    return _yaml_text(lines)


def _yaml_text(lines: list[str]) -> str:
    """The lines as one YAML text, checked to parse (comments carry the figures; a typo must not ship)."""
    text = "\n".join(lines) + "\n"
    yaml.safe_load(text)
    return text
