"""Per-clip outputs on disk: atomic folder commit with a ``done`` marker, stale temp cleanup, job records, preview.

A clip's files are written into a hidden temp folder ``.<name>.partial-<pid>-*`` beside the target and renamed into
place, so a killed run leaves either nothing or a finished folder; ``done`` (JSON with the config hash) is written
last inside it. A rerun skips folders whose ``done`` holds the same config hash.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolabel.exporters import ExportContext, export_all
from autolabel.sources import ImageSet, Source
from perception.atomic import atomic_directory, atomic_write_json, atomic_write_text
from perception.clip import DriveClip
from perception.labels import Boxes2D, ClipLabels

__all__ = [
    "CONFIG_FILE",
    "DATASET_FOLDER",
    "DONE_FILE",
    "FAILURES_FILE",
    "IMAGES_FILE",
    "JOB_FILE",
    "clean_stale_partials",
    "is_done",
    "write_clip_outputs",
    "write_failures",
    "write_job_config",
    "write_job_record",
]

DONE_FILE = "done"
IMAGES_FILE = "images.json"  # still images: frame index -> file, width, height
DATASET_FOLDER = "dataset"  # the job's YOLO / COCO training dataset (export: [yolo, coco])
FAILURES_FILE = "failures.json"
JOB_FILE = "job.json"
CONFIG_FILE = "config.yaml"


def is_done(folder: Path, config_sha256: str) -> bool:
    """True when ``folder/done`` exists and records the same config hash."""
    marker = Path(folder) / DONE_FILE
    try:
        return json.loads(marker.read_text()).get("config_sha256") == config_sha256
    except (OSError, ValueError, AttributeError):
        return False


def _render_preview(clip: DriveClip, labels: ClipLabels, path: Path) -> None:
    """Preview video: camera mosaic with the labelled 2D boxes and track ids (second decode pass)."""
    import cv2

    from perception.video import VideoWriter
    from perception.viz import color_for, draw_boxes2d_on_image, render_mosaic

    fps = ExportContext.from_clip(clip).fps
    with VideoWriter(path, fps) as writer:
        for frame in clip.frames():
            drawn = {}
            for camera, image in frame.images.items():
                boxes = labels.frames[frame.index].boxes2d.get(camera, Boxes2D.empty())
                image = draw_boxes2d_on_image(
                    image, boxes.xyxy, boxes.class_id, labels.classes, style="pred", thickness=2
                )
                for (x1, y1, _, _), track_id, class_id in zip(boxes.xyxy, boxes.track_id, boxes.class_id):
                    cv2.putText(
                        image,
                        f"{int(track_id)}",
                        (int(x1) + 2, int(y1) + 14),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.5,
                        color_for(int(class_id)),
                        1,
                        cv2.LINE_AA,
                    )
                drawn[camera] = image
            picture = next(iter(drawn.values())) if len(drawn) == 1 else render_mosaic(drawn)
            writer.write(picture)


def _render_stills_preview(images: ImageSet, labels: ClipLabels, folder: Path) -> None:
    """Still images: one JPEG per image with its labelled boxes (``preview/<name>.jpg``)."""
    import cv2

    from perception.atomic import atomic_write_bytes
    from perception.viz import draw_boxes2d_on_image

    for index, image in images.images():
        boxes = labels.frames[index].boxes2d.get(ImageSet.CAMERA, Boxes2D.empty())
        drawn = draw_boxes2d_on_image(image, boxes.xyxy, boxes.class_id, labels.classes, style="pred", thickness=2)
        ok, encoded = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            atomic_write_bytes(folder / f"{images.files[index].stem}.jpg", encoded.tobytes())


def source_videos(clip: DriveClip | ImageSet, source: Source) -> dict[str, str]:
    """camera -> its video (or image folder / image) path relative to the job's input root, for the exports that
    point at the media (CVAT ``<source>``, Label Studio tasks)."""
    base = source.input if source.input is not None else source.relative
    if isinstance(clip, ImageSet):
        return {ImageSet.CAMERA: base.as_posix()}
    if source.kind == "clip":
        return {name: (base / path.relative_to(clip.path)).as_posix() for name, path in clip.sources.items()}
    return {name: base.as_posix() for name in clip.sources}


def write_clip_outputs(
    labels: ClipLabels,
    clip: DriveClip | ImageSet,
    target: Path,
    *,
    export: Sequence[str],
    preview: bool,
    config_sha256: str,
    source: Source,
) -> None:
    """Write every output of one clip into a hidden temp folder beside ``target``, then rename it into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target, tag="partial") as temporary:
        labels.save(temporary / "labels.json")
        context = ExportContext.from_clip(clip, videos=source_videos(clip, source))
        export_all(labels, context, temporary, list(export))
        stills = isinstance(clip, ImageSet)
        if stills:  # frame i of labels.json is images.json[i]
            atomic_write_json(temporary / IMAGES_FILE, clip.records(clip.path if clip.path.is_dir() else None))
        if preview and stills:
            _render_stills_preview(clip, labels, temporary / "preview")
        elif preview:
            _render_preview(clip, labels, temporary / "preview.mp4")
        atomic_write_json(
            temporary / DONE_FILE,
            {
                "config_sha256": config_sha256,
                "input": source.relative.as_posix(),
                "kind": source.kind,
                "frames": clip.num_frames,
                "cameras": list(context.image_sizes),
            },
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_partials(out_root: Path) -> int:
    """Remove temp folders left by killed runs (``.<name>.partial-<pid>-*``, ``.<name>.old-<pid>``) whose process
    is gone (folders of live processes, e.g. other DDP ranks, are left alone); returns how many were removed."""
    removed = 0
    if not Path(out_root).is_dir():
        return 0
    for folder, subfolders, _ in os.walk(out_root):
        for name in list(subfolders):
            if not name.startswith(".") or not (".partial-" in name or ".old-" in name):
                continue
            tail = name.rsplit(".partial-", 1)[-1] if ".partial-" in name else name.rsplit(".old-", 1)[-1]
            pid_text = tail.split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
                continue
            shutil.rmtree(Path(folder) / name, ignore_errors=True)
            subfolders.remove(name)
            removed += 1
    return removed


def write_job_record(input_root: str | os.PathLike, out_root: Path) -> Path:
    """``job.json``: the input root (absolute), so ``autolabel review`` can find the frames of each input."""
    path = Path(out_root) / JOB_FILE
    root = Path(input_root).resolve()
    root = root.parent if root.is_file() else root  # one video given: inputs are named relative to its folder
    atomic_write_json(path, {"input_root": str(root), "layout": "LABEL_DIR mirrors input_root"})
    return path


def write_job_config(out_root: Path, config_yaml: str, config_sha256: str) -> Path:
    """``config.yaml``: the resolved job config of the latest run (``autolabel -c`` reads it back)."""
    path = Path(out_root) / CONFIG_FILE
    header = f"# autolabel job config, resolved; config_sha256 {config_sha256} (provenance and done markers)\n"
    atomic_write_text(path, header + config_yaml)
    return path


def write_failures(out_root: Path, failures: Sequence[Any]) -> Path:
    """``failures.json``: [{path, relative, reason}] of this run (empty list when all succeeded)."""
    path = Path(out_root) / FAILURES_FILE
    atomic_write_json(
        path,
        [
            {
                "path": str(r.source.path),
                "relative": r.source.relative.as_posix(),
                "kind": r.source.kind,
                "reason": r.reason,
            }
            for r in failures
        ],
    )
    return path
