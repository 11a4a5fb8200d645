"""Labelling still images: the teacher on each image, boxes at or above ``images.min_score``; no tracking, no track
ids (-1), no temporal refinement. Each image keeps its own size; an undecodable image is logged and left empty."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autolabel.sources import ImageSet
from perception.labels import Boxes2D, ClipLabels, FrameLabels

__all__ = ["label_stills"]


def label_stills(
    images: ImageSet,
    *,
    teacher,
    class_lookup: np.ndarray,
    classes: Sequence[str],
    min_score: float,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> ClipLabels:
    """One frame per image: the teacher's boxes with score >= ``min_score`` (class ids through ``class_lookup``:
    teacher class id -> output class id), clipped to the image; frame uncertainty = the largest of 1 - score of a
    kept box and half the best score of a dropped one (a possible miss), so ``autolabel review`` finds borderline
    images first."""
    frames = [FrameLabels(boxes2d={ImageSet.CAMERA: Boxes2D.empty()}, uncertainty=0.0) for _ in images.files]
    pending: list[tuple[int, np.ndarray]] = []

    def run(batch: list[tuple[int, np.ndarray]]) -> None:
        outputs = teacher.predict_batch([image for _, image in batch])
        for (index, image), boxes in zip(batch, outputs):
            size = (image.shape[1], image.shape[0])
            kept = boxes[boxes.score >= min_score]
            dropped = boxes[boxes.score < min_score]
            class_id = class_lookup[kept.class_id] if len(kept) else kept.class_id
            kept = Boxes2D(xyxy=kept.xyxy, class_id=class_id, score=kept.score, image_size=size).clipped(min_size=1.0)
            frames[index].boxes2d[ImageSet.CAMERA] = Boxes2D(
                xyxy=kept.xyxy, class_id=kept.class_id, score=kept.score, image_size=size
            )
            doubt = [1.0 - float(kept.score.min())] if len(kept) else []
            doubt += [0.5 * float(dropped.score.max())] if len(dropped) else []
            frames[index].uncertainty = max(doubt, default=0.0)
        if progress is not None:
            progress(len(batch))

    for index, image in images.images():
        pending.append((index, image))
        if len(pending) == batch_size:
            run(pending)
            pending = []
    if pending:
        run(pending)
    return ClipLabels(list(classes), frames, {})
