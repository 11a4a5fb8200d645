"""Label Studio pre-annotations: per camera, ``labelstudio/<camera>.json`` (a list of tasks to import) and
``labelstudio/config.xml`` (the labelling interface to paste into the project).

Videos: one task per camera video, ``data.video`` = ``/data/local-files/?d=<video path relative to the job's input
root>`` (Label Studio's local-files storage with that root as its document root; change the prefix for another
storage), ``predictions[0].result`` = one ``videorectangle`` per track: ``sequence`` of keyframes ``frame``
(1-based), ``x``/``y``/``width``/``height`` in percent of the frame, ``time`` (s), ``enabled`` False on the last
box before a gap and at the track's end (Label Studio does not interpolate across those).
Still images: one task per image, ``rectanglelabels`` results with the image's own ``original_width/height``.
Image-sequence folders have no video for Label Studio to play: nothing is written for them.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

from autolabel.exporters.common import ExportContext, camera_boxes, camera_tracks
from perception.atomic import atomic_write_text, path_inside
from perception.labels import ClipLabels
from perception.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = ["LOCAL_FILES_PREFIX", "export_labelstudio", "labelstudio_config", "labelstudio_tasks"]

LOCAL_FILES_PREFIX = "/data/local-files/?d="


def labelstudio_config(classes: list[str], *, video: bool, fps: float = 0.0) -> str:
    """The labelling interface (XML) matching the exported results (``box`` -> ``video`` / ``image``)."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in classes)
    if video:
        return (
            f'<View>\n  <Labels name="videoLabels" toName="video" allowEmpty="true">\n{labels}\n  </Labels>\n'
            f'  <Video name="video" value="$video" framerate="{fps:g}"/>\n'
            '  <VideoRectangle name="box" toName="video"/>\n</View>\n'
        )
    return (
        f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="box" toName="image">\n{labels}\n'
        "  </RectangleLabels>\n</View>\n"
    )


def _percent(value: float, total: int) -> float:
    return round(100.0 * value / total, 4)


def _stills_folder(recorded: str | None) -> str:
    """Prefix of still images' paths: the recorded image folder, or the folder of a single recorded image."""
    if not recorded or recorded == ".":
        return ""
    if recorded.lower().endswith(IMAGE_EXTENSIONS):
        return recorded.rsplit("/", 1)[0] + "/" if "/" in recorded else ""
    return recorded.rstrip("/") + "/"


def labelstudio_tasks(labels: ClipLabels, context: ExportContext, camera: str) -> list[dict]:
    """The tasks of one camera (see the module docstring); empty for an image sequence."""
    video = (context.videos or {}).get(camera)
    model = f"fleetvision autolabel {labels.provenance.get('teacher', '')}".strip()
    if context.stills:
        tasks = []
        for frame, boxes in camera_boxes(labels, camera):
            size = context.size(camera, frame)
            if size is None:
                continue
            width, height = size
            name = context.frame_files[frame] if context.frame_files else f"{frame:06d}.jpg"
            folder = _stills_folder(video)
            results = []
            for row in range(len(boxes)):
                x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[row])
                results.append({
                    "id": f"f{frame}b{row}", "from_name": "box", "to_name": "image", "type": "rectanglelabels",
                    "original_width": width, "original_height": height, "image_rotation": 0,
                    "value": {"x": _percent(x1, width), "y": _percent(y1, height), "width": _percent(x2 - x1, width),
                              "height": _percent(y2 - y1, height), "rotation": 0,
                              "rectanglelabels": [labels.classes[int(boxes.class_id[row])]]},
                    "score": round(float(boxes.score[row]), 4),
                })  # fmt: skip
            tasks.append(
                {"data": {"image": LOCAL_FILES_PREFIX + folder + name},
                 "predictions": [{"model_version": model, "result": results}]}
            )  # fmt: skip
        return tasks
    if video is None or not video.lower().endswith(VIDEO_EXTENSIONS):
        return []
    width, height = context.image_sizes[camera]
    fps = context.fps or 10.0
    results = []
    for track_id, boxes in camera_tracks(labels, camera).items():
        votes: dict[int, int] = {}
        for _, _, class_id, _ in boxes:
            votes[class_id] = votes.get(class_id, 0) + 1
        sequence = []
        for k, (frame, xyxy, _, _) in enumerate(boxes):
            x1, y1, x2, y2 = (float(v) for v in xyxy)
            following = boxes[k + 1][0] if k + 1 < len(boxes) else None
            sequence.append({
                "frame": frame + 1, "enabled": following is not None and following == frame + 1, "rotation": 0,
                "x": _percent(x1, width), "y": _percent(y1, height), "width": _percent(x2 - x1, width),
                "height": _percent(y2 - y1, height), "time": round(frame / fps, 6),
            })  # fmt: skip
        results.append({
            "id": f"track{track_id}", "from_name": "box", "to_name": "video", "type": "videorectangle",
            "value": {"framesCount": context.num_frames, "duration": round(context.num_frames / fps, 6),
                      "sequence": sequence, "labels": [labels.classes[max(votes, key=lambda c: (votes[c], -c))]]},
            "score": round(max(float(s) for _, _, _, s in boxes), 4), "meta": {"track_id": track_id},
        })  # fmt: skip
    prediction = {"model_version": model, "result": results}
    return [{"data": {"video": LOCAL_FILES_PREFIX + video}, "predictions": [prediction]}]


def export_labelstudio(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``labelstudio/<camera>.json`` (tasks) and ``labelstudio/config.xml``."""
    written = []
    for camera in context.image_sizes:
        path = path_inside(out_dir, "labelstudio", f"{camera}.json")  # a camera name never leaves out_dir
        tasks = labelstudio_tasks(labels, context, camera)
        if not tasks:
            continue
        atomic_write_text(path, json.dumps(tasks, indent=1) + "\n")
        written.append(path)
    if written:
        config = Path(out_dir) / "labelstudio" / "config.xml"
        atomic_write_text(config, labelstudio_config(labels.classes, video=not context.stills, fps=context.fps))
        written.append(config)
    return written
