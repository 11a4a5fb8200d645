"""``autolabel calibrate``: per-class score floors for 3D pseudo-labels, chosen on a LABELLED split.

Label a split that has ground truth (e.g. the validation part of the labelled data) with the same job and no
floors, then ``autolabel calibrate LABEL_DIR --gt GT_DIR --out floors.yaml``: for each class, the floor on the
refined box scores that maximises F1 of the kept boxes (matched within 2 m, nuScenes centre distance) against the
ground truth. The output is a job-config fragment; label the unlabelled data with it as a second config:
``autolabel U --out PSEUDO -c job.yaml -c floors.yaml``. Never calibrate on the data being labelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autolabel.evaluate import bev_frame_pairs, class_remap, find_ground_truth, finished_labels
from perception.labels import ClipLabels

__all__ = [
    "FEW_OBJECTS",
    "DistinctObjects",
    "calibrate_score_floors",
    "calibration_document",
    "floors_document",
    "measure_labels",
    "score_calibration",
    "set_floors_by_objects",
]

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


def _yaml_text(lines: list[str]) -> str:
    """The lines as one YAML text, checked to parse (comments carry the figures; a typo must not ship)."""
    text = "\n".join(lines) + "\n"
    yaml.safe_load(text)
    return text
