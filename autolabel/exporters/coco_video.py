"""COCO-video export (TAO / COCO-VID style): one video per camera, images carry video_id + frame_id,
annotations carry track_id (and instance_id, TAO's name), plus a ``tracks`` list. Loads with pycocotools.
Written as a stream (one JSON element at a time), so memory does not grow with the document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from autolabel.exporters.common import ExportContext, camera_boxes
from perception.atomic import atomic_text_stream
from perception.labels import ClipLabels

__all__ = ["export_coco_video", "write_coco_video"]


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _images(labels: ClipLabels, context: ExportContext) -> Iterator[dict]:
    image_id = 0
    for video_id, (camera, (width, height)) in enumerate(context.image_sizes.items(), start=1):
        for frame, _ in camera_boxes(labels, camera):
            image_id += 1
            yield {
                "id": image_id,
                "video_id": video_id,
                "frame_id": frame,
                "frame_index": frame,
                "file_name": f"{camera}/{frame:06d}.jpg",
                "width": width,
                "height": height,
            }


def _annotations(labels: ClipLabels, context: ExportContext, tracks: dict) -> Iterator[dict]:
    image_id, annotation_id = 0, 0
    for video_id, camera in enumerate(context.image_sizes, start=1):
        for _, boxes in camera_boxes(labels, camera):
            image_id += 1
            for row in range(len(boxes)):
                x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[row])
                track_id = int(boxes.track_id[row])
                category_id = int(boxes.class_id[row]) + 1
                annotation_id += 1
                if track_id >= 0:
                    tracks.setdefault(
                        (video_id, track_id), {"id": track_id, "video_id": video_id, "category_id": category_id}
                    )
                yield {
                    "id": annotation_id,
                    "image_id": image_id,
                    "video_id": video_id,
                    "category_id": category_id,
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": 0,
                    "score": round(float(boxes.score[row]), 4),
                    "track_id": track_id,
                    "instance_id": track_id,
                }


def write_coco_video(labels: ClipLabels, context: ExportContext, stream: IO[str]) -> None:
    """Write the COCO-video JSON (bbox x,y,w,h pixels, category_id = class_id + 1) to a text stream."""
    categories = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(labels.classes)]
    videos = [
        {
            "id": video_id,
            "name": f"{context.name}/{camera}",
            "camera": camera,
            "width": width,
            "height": height,
            "fps": context.fps,
            "num_frames": context.num_frames,
        }
        for video_id, (camera, (width, height)) in enumerate(context.image_sizes.items(), start=1)
    ]
    stream.write('{"info":' + _dumps({"description": f"fleetvision autolabel: {context.name}", "version": "1.0"}))
    stream.write(',"categories":' + _dumps(categories) + ',"videos":' + _dumps(videos))
    tracks: dict = {}
    for key, items in (("images", _images(labels, context)), ("annotations", _annotations(labels, context, tracks))):
        stream.write(f',"{key}":[')
        for index, item in enumerate(items):
            stream.write(("," if index else "") + _dumps(item))
        stream.write("]")
    stream.write(',"tracks":' + _dumps([tracks[key] for key in sorted(tracks)]) + "}")


def export_coco_video(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``coco.json`` into ``out_dir`` (streamed, atomic)."""
    path = Path(out_dir) / "coco.json"
    with atomic_text_stream(path) as stream:
        write_coco_video(labels, context, stream)
    return [path]
