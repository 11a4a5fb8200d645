"""Detection quality of a replay against the clip's ground truth, over time and on the remaining field of view.

``QualitySink`` is a runtime sink (like ``deploy.runtime.sinks``): for every processed frame it keeps the model's
3D detections (the in-graph decoded outputs at ``score_threshold``, lower than the display threshold so AP sees the
whole precision-recall curve), which cameras delivered, the camera poses and the frame's latency and deadline miss.
``score_frames`` turns such records into nuScenes-style figures (``perception.metrics.BevDetectionEvaluator``): the
whole run, per time window (``window_s`` of clip time: NDS, mAP, deadline misses, cameras delivering, p99 latency),
and on the remaining field of view: ground truth and detections restricted, frame by frame, to what the cameras that
delivered can see (``perception.corruptions.in_field_of_view``). Passing another run's records as ``field_of_view``
scores a clean run on the faulted run's field of view, which is how a dead camera's cost to the model is separated
from the coverage it takes away. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.clip import DriveClip
from perception.corruptions import in_field_of_view
from perception.geometry import BevGrid, invert_se3
from perception.labels import Boxes3D, ClipLabels
from perception.metrics import BevDetectionEvaluator
from perception.rig import Rig


def prediction_table(outputs: Mapping[str, np.ndarray], score_threshold: float) -> dict[str, np.ndarray]:
    """The exported model's in-graph decoded 3D detections [1, K, ...] at or above ``score_threshold``, as the
    evaluator's table (centre, size, yaw, velocity, class_id, score)."""
    if "det3d_boxes" not in outputs:
        return {k: np.zeros((0, w)) if w else np.zeros(0) for k, w in _WIDTHS.items()}
    boxes = np.asarray(outputs["det3d_boxes"])[0].astype(np.float64)
    scores = np.asarray(outputs["det3d_scores"])[0]
    keep = scores >= score_threshold
    return {
        "center": boxes[keep, 0:3],
        "size": boxes[keep, 3:6],
        "yaw": boxes[keep, 6],
        "velocity": boxes[keep, 7:9],
        "class_id": np.asarray(outputs["det3d_class_id"])[0][keep],
        "score": scores[keep],
    }


_WIDTHS = {"center": 3, "size": 3, "yaw": 0, "velocity": 2, "class_id": 0, "score": 0}


def ground_truth_table(
    boxes: Boxes3D, label_classes: Sequence[str], model_classes: Sequence[str], grid: BevGrid | None
) -> dict[str, np.ndarray]:
    """Label boxes as the evaluator's table in the model's class indices, inside ``grid`` (other classes dropped)."""
    mapped = np.array(
        [model_classes.index(label_classes[c]) if label_classes[c] in model_classes else -1 for c in boxes.class_id],
        np.int64,
    )
    keep = mapped >= 0
    if grid is not None:
        keep &= grid.contains(boxes.center[:, :2])
    return {
        "center": boxes.center[keep],
        "size": boxes.size[keep],
        "yaw": boxes.yaw[keep],
        "velocity": boxes.velocity[keep],
        "class_id": mapped[keep],
    }


def _subset(table: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[keep] for key, value in table.items()}


@dataclass
class FrameRecord:
    """What quality scoring needs of one processed frame."""

    index: int
    time_s: float  # clip time since the replay start
    prediction: dict[str, np.ndarray]
    delivered: list[str]  # cameras whose image the model got
    camera_from_ego: np.ndarray | None  # (N, 4, 4) in the model's camera order; None = the rig's static extrinsics
    late: bool
    latency_ms: float


class QualitySink:
    """Collects ``FrameRecord``s from the runtime's results (``write``); ``report`` scores them."""

    def __init__(
        self,
        clip: DriveClip,
        *,
        rig: Rig,
        cameras: Sequence[str],
        classes: Sequence[str],
        grid: BevGrid | None,
        score_threshold: float = 0.05,
        window_s: float = 1.0,
    ) -> None:
        self.clip, self.rig, self.cameras, self.classes, self.grid = clip, rig, list(cameras), list(classes), grid
        self.score_threshold, self.window_s = score_threshold, window_s
        self.records: list[FrameRecord] = []
        self.t0: float | None = None

    def write(self, result: Any) -> None:
        if self.t0 is None:
            self.t0 = result.reference
        self.records.append(
            FrameRecord(
                index=int(result.index),
                time_s=float(result.reference - self.t0),
                prediction=prediction_table(result.outputs, self.score_threshold),
                delivered=[c for c, v in zip(self.cameras, result.camera_valid) if v > 0],
                camera_from_ego=result.camera_from_ego,
                late=bool(result.late),
                latency_ms=float(result.latency_ms["sensor_to_output"]),
            )
        )

    def close(self) -> None:
        pass

    def report(self, field_of_view: Sequence[FrameRecord] | None = None) -> dict[str, Any]:
        return score_frames(
            self.records,
            self.clip.labels,
            rig=self.rig,
            cameras=self.cameras,
            classes=self.classes,
            grid=self.grid,
            window_s=self.window_s,
            field_of_view=field_of_view,
        )


def score_frames(
    records: Sequence[FrameRecord],
    labels: ClipLabels,
    *,
    rig: Rig,
    cameras: Sequence[str],
    classes: Sequence[str],
    grid: BevGrid | None,
    window_s: float = 1.0,
    field_of_view: Sequence[FrameRecord] | None = None,
) -> dict[str, Any]:
    """Whole-run, per-window and remaining-field-of-view scores of ``records`` against ``labels`` (see module doc).

    ``field_of_view``: records whose delivered cameras define the field of view per frame index (default: these)."""
    overall = BevDetectionEvaluator(classes)
    visible = BevDetectionEvaluator(classes)
    windows: dict[int, dict[str, Any]] = {}
    fov_by_index = {r.index: r for r in (field_of_view if field_of_view is not None else records)}
    for record in records:
        gt = ground_truth_table(labels.frames[record.index].boxes3d, labels.classes, classes, grid)
        overall.add_frame(record.prediction, gt)
        slot = int(record.time_s // window_s) if window_s > 0 else 0
        window = windows.setdefault(
            slot, {"evaluator": BevDetectionEvaluator(classes), "frames": 0, "late": 0, "latency": [], "cameras": []}
        )
        window["evaluator"].add_frame(record.prediction, gt)
        window["frames"] += 1
        window["late"] += int(record.late)
        window["latency"].append(record.latency_ms)
        window["cameras"].append(len(record.delivered))
        reference = fov_by_index.get(record.index)
        if reference is not None:
            live = _live_cameras(rig, cameras, reference)
            gt_seen = in_field_of_view(gt["center"], live)
            pred_seen = in_field_of_view(record.prediction["center"], live)
            visible.add_frame(_subset(record.prediction, pred_seen), _subset(gt, gt_seen))
    whole = overall.compute()
    seen = visible.compute()
    timeline = []
    for slot in sorted(windows):
        window = windows[slot]
        result = window["evaluator"].compute()
        timeline.append(
            {
                "start_s": slot * window_s,
                "end_s": (slot + 1) * window_s,
                "frames": window["frames"],
                "NDS": result["NDS"],
                "mAP": result["mAP"],
                "deadline_misses": window["late"],
                "latency_p99_ms": float(np.percentile(window["latency"], 99)),
                "cameras_delivering": float(np.mean(window["cameras"])),
            }
        )
    return {
        "frames": len(records),
        "NDS": whole["NDS"],
        "mAP": whole["mAP"],
        "field_of_view": {"NDS": seen["NDS"], "mAP": seen["mAP"]},
        "windows": timeline,
    }


def _live_cameras(rig: Rig, cameras: Sequence[str], record: FrameRecord) -> list:
    """The rig cameras that delivered in ``record``, posed at their capture times when the record has the poses."""
    live = []
    for n, name in enumerate(cameras):
        if name not in record.delivered:
            continue
        camera = rig[name]
        if record.camera_from_ego is not None:
            from dataclasses import replace

            camera = replace(camera, ego_from_camera=invert_se3(np.asarray(record.camera_from_ego[n], np.float64)))
        live.append(camera)
    return live
