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

Lifting of 2D tracks to 3D on multi-camera clips (``--lifting``): the 3D boxes ``autolabel.multicam`` builds from a
2D teacher rest on two assumptions that belong to the detector and the fleet, not to the code: where a box's bottom
edge sits against the object's ground contact (a box one pixel low puts a far object metres short, the error growing
with the square of the range), and each class's size (nuScenes means by default; the gate that rejects a track whose
measured height is not its class's). Label a labelled split with the job (association on), then ``autolabel
calibrate LABEL_DIR --gt GT_DIR --lifting --out lifting.yaml``: ``multicam.bottom_offset_px`` is the median, over the
labels' uncut boxes matched to a ground-truth box (IoU >= 0.5) within ``--max-range``, of the pixel rows between the
box's bottom edge and the row that, lifted, would put the object's centre where the ground truth has it, each box
weighted by the metres of range a pixel is worth where it stands (so the offset minimises the summed range error: a
near box's offset says more about its shape than about the pixel, a far box's the reverse);
``multicam.size_priors_m`` are the median sizes of the split's ground-truth objects (classes with fewer than
``--min-objects`` distinct objects keep the default).
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
    "lifting_calibration",
    "lifting_document",
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


def _clip_label_pairs(label_dir: str | Path, gt_root: str | Path):
    """(labels path, path relative to ``label_dir``, labels, ground-truth labels, ground-truth path) of every finished
    clip's labels that has clip ground truth under ``gt_root``, frame counts checked."""
    for path in finished_labels(Path(label_dir)):
        relative = path.parent.relative_to(label_dir)
        found = find_ground_truth(Path(gt_root), relative)
        if found is None or found[0] != "clip":
            continue
        labels, gt_labels = ClipLabels.load(path), ClipLabels.load(found[1])
        if len(gt_labels.frames) != len(labels.frames):
            raise ValueError(f"{found[1]}: {len(gt_labels.frames)} frames, labels {path} have {len(labels.frames)}")
        yield path, relative, labels, gt_labels, found[1]


def measure_labels(label_dir: str | Path, gt_root: str | Path, *, max_range: float | None = None):
    """(BevDetectionEvaluator, DistinctObjects) of the labels in ``label_dir`` against the clips under ``gt_root``."""
    from perception.metrics.bev_detection import BevDetectionEvaluator

    evaluator = None
    objects = DistinctObjects(max_range)
    for path, relative, labels, gt_labels, gt_path in _clip_label_pairs(label_dir, gt_root):
        if evaluator is None:
            evaluator = BevDetectionEvaluator(labels.classes, max_range=max_range)
        elif labels.classes != evaluator.classes:
            raise ValueError(f"{path}: classes {labels.classes} differ from the other clips' {evaluator.classes}")
        remap, _ = class_remap(gt_labels, labels.classes, gt_path)
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


def _greedy_iou_pairs(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """(pred, gt) index pairs, highest IoU first, each box used once, IoU >= ``min_iou``."""
    from perception.geometry import box_iou

    if not len(pred_xyxy) or not len(gt_xyxy):
        return []
    iou = box_iou(pred_xyxy, gt_xyxy)
    pairs, used_p, used_g = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i not in used_p and j not in used_g:
            pairs.append((int(i), int(j)))
            used_p.add(i)
            used_g.add(j)
    return pairs


def _contact_row_offsets(clip, labels: ClipLabels, gt_labels: ClipLabels, config, min_iou: float):
    """Per matched uncut label box: (class name, row offset px, metres of range per px there). The offset is the
    box's bottom edge minus the image row of the ground point ``autolabel.multicam`` would have to lift to place
    the ground-truth centre (that centre moved towards the camera by the reach of its footprint along the ray)."""
    from perception.geometry import invert_se3, transform_points

    out = []
    for frame, (pred_frame, gt_frame) in enumerate(zip(labels.frames, gt_labels.frames)):
        gt3d = gt_frame.boxes3d
        if not len(gt3d):
            continue
        index = {int(t): k for k, t in enumerate(gt3d.track_id)}
        for camera, gt2d in gt_frame.boxes2d.items():
            pred2d = pred_frame.boxes2d.get(camera)
            if pred2d is None or not len(pred2d) or not len(gt2d) or camera not in clip.rig.names:
                continue
            rig_camera = clip.rig[camera]
            camera_from_ego = clip.camera_from_ego(frame, camera)
            camera_xy = invert_se3(camera_from_ego)[:2, 3]
            border = config.border_px
            for i, j in _greedy_iou_pairs(pred2d.xyxy, gt2d.xyxy, min_iou):
                x1, y1, x2, y2 = pred2d.xyxy[i]
                if x1 <= border or y1 <= border or x2 >= rig_camera.width - border or y2 >= rig_camera.height - border:
                    continue  # cut by the image border: the lifting does not use its bottom edge
                k = index.get(int(gt2d.track_id[j]))
                if k is None:
                    continue
                centre = gt3d.center[k, :2]
                ray = centre - camera_xy
                distance = float(np.linalg.norm(ray))
                if not 1.0 <= distance <= config.max_range_m:
                    continue
                ray /= distance
                angle = gt3d.yaw[k] - np.arctan2(ray[1], ray[0])
                length, width = gt3d.size[k, 0], gt3d.size[k, 1]
                reach = 0.5 * (length * abs(np.cos(angle)) + width * abs(np.sin(angle)))
                near = np.append(centre - ray * reach, 0.0)
                uv, depth = rig_camera.project(transform_points(camera_from_ego, near[None]))
                if not (depth[0] > 0 and np.isfinite(uv[0, 1])):
                    continue
                # metres of range one row moves the lifted point there: the weight of this box's offset
                row = np.array([[uv[0, 0], uv[0, 1]], [uv[0, 0], uv[0, 1] + 1.0]])
                ground, hit = rig_camera.ground_points(row, camera_from_ego)
                if not hit.all():
                    continue
                metres_per_px = float(np.linalg.norm(ground[0, :2] - ground[1, :2]))
                class_name = gt_labels.classes[int(gt3d.class_id[k])]
                out.append((class_name, float(y2 - uv[0, 1]), metres_per_px))
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value minimising sum(weights * |values - m|)."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def lifting_calibration(
    label_dir: str | Path,
    gt_root: str | Path,
    *,
    max_range: float | None = None,
    min_objects: int = FEW_OBJECTS,
    min_iou: float = 0.5,
) -> dict[str, Any]:
    """``multicam.bottom_offset_px`` and ``multicam.size_priors_m`` measured on a labelled split (module doc).

    Returns ``bottom_offset_px`` (median weighted by metres per pixel), ``offset_quartiles`` (unweighted 25 %,
    75 %), ``offset_boxes``, ``per_class`` {name: {offset, boxes}}, ``size_priors_m`` {name: (l, w, h)}, ``sizes``
    {name: {size, objects, measured}} (``measured`` False: fewer than ``min_objects`` distinct objects, the default
    prior kept) and ``min_objects``."""
    from autolabel.multicam import DEFAULT_SIZE_PRIORS_M, CrossCameraConfig
    from perception.clip import DriveClip

    config = CrossCameraConfig() if max_range is None else CrossCameraConfig(max_range_m=max_range)
    offsets: list[tuple[str, float, float]] = []
    sizes: dict[str, dict[int | tuple, list]] = {}
    found_any = False
    for _, relative, labels, gt_labels, gt_path in _clip_label_pairs(label_dir, gt_root):
        clip = DriveClip.open(gt_path.parent)
        found_any = True
        offsets += _contact_row_offsets(clip, labels, gt_labels, config, min_iou)
        for frame in gt_labels.frames:
            boxes = frame.boxes3d
            near = np.linalg.norm(boxes.center[:, :2], axis=1) <= config.max_range_m
            for k in np.flatnonzero(near):
                name = gt_labels.classes[int(boxes.class_id[k])]
                sizes.setdefault(name, {}).setdefault((str(relative), int(boxes.track_id[k])), []).append(boxes.size[k])
    if not found_any:
        raise FileNotFoundError(f"{label_dir}: no labelled clip has a clip's ground truth under {gt_root}")
    if not offsets:
        raise ValueError(
            f"{label_dir}: no label box matched a ground-truth box (IoU >= {min_iou}, uncut, within "
            f"{config.max_range_m} m); expected labels made with the association on (multicam.enabled: true)"
        )
    values, weights = np.array([o[1] for o in offsets]), np.array([o[2] for o in offsets])
    per_class = {}
    for name in sorted({o[0] for o in offsets}):
        mine = np.array([o[0] == name for o in offsets])
        per_class[name] = {"offset": _weighted_median(values[mine], weights[mine]), "boxes": int(mine.sum())}
    priors = {name: tuple(float(x) for x in prior) for name, prior in DEFAULT_SIZE_PRIORS_M.items()}
    size_entries = {}
    for name, objects in sorted(sizes.items()):
        per_object = np.array([np.median(np.asarray(v), axis=0) for v in objects.values()])
        measured = len(objects) >= min_objects
        size = tuple(float(round(x, 2)) for x in np.median(per_object, axis=0))
        size_entries[name] = {"size": size, "objects": len(objects), "measured": measured}
        if measured:
            priors[name] = size
    return {
        "bottom_offset_px": _weighted_median(values, weights),
        "offset_quartiles": (float(np.percentile(values, 25)), float(np.percentile(values, 75))),
        "offset_boxes": int(len(values)),
        "per_class": per_class,
        "size_priors_m": priors,
        "sizes": size_entries,
        "min_objects": min_objects,
    }


def lifting_document(result: dict[str, Any], *, source: str) -> str:
    """The job-config fragment (``multicam.bottom_offset_px``, ``multicam.size_priors_m``) with what it rests on."""
    q1, q3 = result["offset_quartiles"]
    lines = [
        f"# lifting of 2D tracks to 3D, measured by `autolabel calibrate --lifting` on {source}:",
        f"# bottom-edge offset: median of {result['offset_boxes']} matched uncut boxes weighted by metres per pixel "
        f"(unweighted quartiles {q1:.2f} / {q3:.2f} px)",
    ]
    for name, entry in result["per_class"].items():
        lines.append(f"#   {name:14s} {entry['offset']:+.2f} px over {entry['boxes']} boxes")
    lines.append("# sizes: median (length, width, height) of the ground-truth objects (per object, then over objects)")
    for name, entry in result["sizes"].items():
        kept = "" if entry["measured"] else f"  (< {result['min_objects']} objects: the default kept)"
        lines.append(f"#   {name:14s} {entry['objects']:4d} objects  {list(entry['size'])}{kept}")
    lines += ["multicam:", f"  bottom_offset_px: {result['bottom_offset_px']:.2f}", "  size_priors_m:"]
    for name, prior in result["size_priors_m"].items():
        lines.append(f"    {name}: [{prior[0]:.2f}, {prior[1]:.2f}, {prior[2]:.2f}]")
    return _yaml_text(lines)


def _yaml_text(lines: list[str]) -> str:
    """The lines as one YAML text, checked to parse (comments carry the figures; a typo must not ship)."""
    text = "\n".join(lines) + "\n"
    yaml.safe_load(text)
    return text
