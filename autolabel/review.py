"""``autolabel review``: the most uncertain frames of a label folder first, each with a picture of its labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.uncertainty import rank_frames_for_review
from perception.atomic import atomic_write_json
from perception.labels import Boxes2D, ClipLabels

__all__ = ["build_review", "collect_review_items", "render_review_picture"]


def collect_review_items(
    label_dir: str | Path, *, top: int | None = 20, min_separation: int = 5
) -> list[dict[str, Any]]:
    """Frames across all finished clips, most uncertain first; within a clip, picks are ``min_separation`` frames
    apart."""
    label_dir = Path(label_dir)
    items = []
    for path in sorted(p for p in label_dir.rglob("labels.json") if (p.parent / "done").is_file()):
        labels = ClipLabels.load(path)
        scores = np.array([0.0 if f.uncertainty is None else float(f.uncertainty) for f in labels.frames])
        stills = labels.provenance.get("input_kind") == "stills"  # independent images: no neighbours to skip
        for frame in rank_frames_for_review(scores, top_k=top, min_separation=0 if stills else min_separation):
            boxes = labels.frames[int(frame)]
            items.append(
                {
                    "clip": path.parent.relative_to(label_dir).as_posix(),
                    "frame": int(frame),
                    "uncertainty": float(scores[frame]),
                    "boxes": int(sum(len(b) for b in boxes.boxes2d.values()) or len(boxes.boxes3d)),
                    "input": labels.provenance.get("input"),
                    "input_kind": labels.provenance.get("input_kind"),
                }
            )
    items.sort(key=lambda item: (-item["uncertainty"], item["clip"], item["frame"]))
    return items[:top] if top is not None else items


def render_review_picture(labels: ClipLabels, clip, frame_index: int) -> np.ndarray:
    """BGR picture of one frame: every camera with its 2D pseudo-labels (class colour, track id), mosaic if several."""
    import cv2

    from autolabel.sources import ImageSet
    from perception.viz import color_for, draw_boxes2d_on_image, render_mosaic

    if isinstance(clip, ImageSet):  # still images
        image = clip.read(frame_index)
        if image is None:
            raise OSError(clip.errors[frame_index])
        images = {ImageSet.CAMERA: image}
    else:
        images = clip.read_frame(frame_index).images
    drawn = {}
    for camera, image in images.items():
        boxes = labels.frames[frame_index].boxes2d.get(camera, Boxes2D.empty())
        image = draw_boxes2d_on_image(image, boxes.xyxy, boxes.class_id, labels.classes, style="pred", thickness=2)
        for (x1, y1, _, _), track_id, class_id, score in zip(boxes.xyxy, boxes.track_id, boxes.class_id, boxes.score):
            cv2.putText(
                image,
                f"#{int(track_id)} {float(score):.2f}",
                (int(x1) + 2, max(int(y1) - 3, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                color_for(int(class_id)),
                1,
                cv2.LINE_AA,
            )
        drawn[camera] = image
    picture = next(iter(drawn.values())) if len(drawn) == 1 else render_mosaic(drawn)
    text = f"frame {frame_index}  uncertainty {labels.frames[frame_index].uncertainty or 0.0:.3f}"
    cv2.putText(picture, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(picture, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def _input_root(label_dir: Path, override: Path | None) -> Path | None:
    if override is not None:
        return Path(override)
    record = label_dir / "job.json"
    if record.is_file():
        return Path(json.loads(record.read_text())["input_root"])
    return None


def build_review(
    label_dir: str | Path,
    *,
    top: int = 20,
    out_dir: str | Path | None = None,
    input_root: str | Path | None = None,
    pictures: bool = True,
) -> list[dict[str, Any]]:
    """Write ``review/review.json`` (ranked frames) and one JPEG per frame (when the inputs are reachable)."""
    import cv2

    from autolabel.sources import open_input
    from perception.clip import ClipError

    label_dir = Path(label_dir)
    out_dir = Path(out_dir) if out_dir is not None else label_dir / "review"
    items = collect_review_items(label_dir, top=top)  # reads every labels file first: a bad one writes nothing
    out_dir.mkdir(parents=True, exist_ok=True)
    root = _input_root(label_dir, input_root)
    cache: dict[str, tuple[ClipLabels, Any]] = {}
    for rank, item in enumerate(items, start=1):
        item["picture"] = None
        if not pictures or root is None or item["input"] is None:
            continue
        source = root / item["input"]
        try:
            if item["clip"] not in cache:
                labels = ClipLabels.load(label_dir / item["clip"] / "labels.json")
                clip = open_input(source, item["input_kind"] or "video")
                cache = {item["clip"]: (labels, clip)}  # one clip open at a time
            labels, clip = cache[item["clip"]]
            picture = render_review_picture(labels, clip, item["frame"])
        except (ClipError, OSError) as error:
            item["picture_error"] = f"{source}: {error}"
            continue
        name = f"{rank:03d}_{item['clip'].replace('/', '__')}_{item['frame']:06d}.jpg"
        ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            from perception.atomic import atomic_write_bytes

            atomic_write_bytes(out_dir / name, encoded.tobytes())
            item["picture"] = str(out_dir / name)
    atomic_write_json(out_dir / "review.json", items)
    return items
