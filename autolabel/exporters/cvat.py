"""CVAT XML both ways.

Out (``cvat/<camera>.xml``): CVAT for video 1.1 per camera, one ``<track>`` per track id with a ``<box>`` per frame,
``outside="1"`` where the track is absent (after its end and across gaps), so CVAT shows exactly the labelled
frames; still images become CVAT for images 1.1 (one ``<image>`` per file with its own size).

Back (``read_cvat_xml``, ``autolabel import-cvat``): corrected CVAT for video 1.1 (or for images 1.1) XML -> per-frame
``Boxes2D`` with CVAT's semantics: a track's shape holds from its frame to the next shape of the track, positions
interpolated linearly between two visible keyframes, ``outside="1"`` ends it, and the last visible shape lasts to the
task's last frame. Task frame ``i`` is source frame ``start_frame + i * step`` (``frame_filter`` ``step=K``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from autolabel.exporters.common import ExportContext, camera_boxes, camera_tracks
from perception.atomic import atomic_text_stream, path_inside
from perception.labels import Boxes2D, ClipLabels

__all__ = ["CvatAnnotations", "cvat_image_lines", "cvat_video_lines", "export_cvat_video", "read_cvat_xml"]


def _box(frame: int, xyxy, outside: int, keyframe: int = 1) -> str:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (
        f'    <box frame="{frame}" keyframe="{keyframe}" outside="{outside}" occluded="0" '
        f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>'
    )


def _meta(labels: ClipLabels, context: ExportContext, camera: str, mode: str) -> list[str]:
    label_xml = "\n".join(
        f"      <label><name>{name}</name><type>rectangle</type><attributes></attributes></label>"
        for name in labels.classes
    )
    width, height = context.image_sizes[camera]
    source = (context.videos or {}).get(camera)
    size_xml = f"      <original_size><width>{width}</width><height>{height}</height></original_size>"
    return [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations>",
        "  <version>1.1</version>",
        "  <meta>",
        "    <task>",
        f"      <name>{context.name}/{camera}</name>",
        f"      <size>{context.num_frames}</size>",
        f"      <mode>{mode}</mode>",
        f"      <start_frame>0</start_frame>\n      <stop_frame>{max(context.num_frames - 1, 0)}</stop_frame>",
        *([size_xml] * (mode != "annotation")),
        f"      <labels>\n{label_xml}\n      </labels>",
        "    </task>",
        *([f"    <source>{source}</source>"] if source else []),
        "  </meta>",
    ]  # fmt: skip


def cvat_video_lines(labels: ClipLabels, context: ExportContext, camera: str) -> Iterator[str]:
    """Lines of the CVAT-for-video-1.1 document for one camera (no dates, so reruns give identical bytes)."""
    yield from _meta(labels, context, camera, "interpolation")
    for track_id, boxes in camera_tracks(labels, camera).items():
        class_votes: dict[int, int] = {}
        for _, _, class_id, _ in boxes:
            class_votes[class_id] = class_votes.get(class_id, 0) + 1
        label = labels.classes[max(class_votes, key=lambda c: (class_votes[c], -c))]
        yield f'  <track id="{track_id}" label={quoteattr(label)} source="auto">'
        for k, (frame, xyxy, _, _) in enumerate(boxes):
            yield _box(frame, xyxy, 0)
            following = boxes[k + 1][0] if k + 1 < len(boxes) else None
            if (following is None or following > frame + 1) and frame + 1 < context.num_frames:
                yield _box(frame + 1, xyxy, 1)
        yield "  </track>"
    yield "</annotations>"


def cvat_image_lines(labels: ClipLabels, context: ExportContext, camera: str) -> Iterator[str]:
    """Lines of the CVAT-for-images-1.1 document of still images (each ``<image>`` with its own size)."""
    yield from _meta(labels, context, camera, "annotation")
    for frame, boxes in camera_boxes(labels, camera):
        size = context.size(camera, frame)
        if size is None:
            continue
        name = context.frame_files[frame] if context.frame_files else f"{frame:06d}.jpg"
        yield f'  <image id="{frame}" name={quoteattr(name)} width="{size[0]}" height="{size[1]}">'
        for row in range(len(boxes)):
            x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[row])
            yield (
                f'    <box label={quoteattr(labels.classes[int(boxes.class_id[row])])} source="auto" '
                f'occluded="0" xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>'
            )
        yield "  </image>"
    yield "</annotations>"


def export_cvat_video(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``cvat/<camera>.xml`` for each camera (streamed, atomic): video XML, or images XML for stills."""
    written = []
    lines = cvat_image_lines if context.stills else cvat_video_lines
    for camera in context.image_sizes:
        path = path_inside(out_dir, "cvat", f"{camera}.xml")  # a camera name never leaves out_dir
        with atomic_text_stream(path) as stream:
            for line in lines(labels, context, camera):
                stream.write(line + "\n")
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------- reading
@dataclass
class CvatAnnotations:
    """One CVAT XML read back: class names (meta order), per-frame boxes (source frames), frame size and count,
    task name, image file names (images format), and the source video CVAT recorded."""

    path: Path
    classes: list[str]
    frames: list[Boxes2D]
    size: tuple[int, int] | None
    task_name: str
    image_names: list[str] | None = None
    source: str | None = None
    image_sizes: list[tuple[int, int]] = field(default_factory=list)


def _float(element, key: str, path: Path) -> float:
    value = element.get(key)
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: <{element.tag}> attribute {key!r}: expected a number, found {value!r}"
            f" (frame {element.get('frame')})"
        ) from error


def _int_text(meta, tag: str, default: int | None, path: Path) -> int | None:
    node = meta.find(f".//{tag}")
    if node is None or node.text is None or not node.text.strip():
        return default
    try:
        return int(node.text.strip())
    except ValueError as error:
        raise ValueError(f"{path}: <{tag}>: expected an integer, found {node.text!r}") from error


def read_cvat_xml(path: str | Path, *, num_frames: int | None = None) -> CvatAnnotations:
    """Read a CVAT for video 1.1 or for images 1.1 XML (module docstring for the semantics). ``num_frames``: the
    source's frame count (default: the task's ``stop_frame + 1``)."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, FileNotFoundError) as error:
        raise ValueError(f"{path}: not a readable CVAT XML file: {error}") from error
    if root.tag != "annotations":
        raise ValueError(f"{path}: expected a CVAT <annotations> document, found <{root.tag}>")
    meta = root.find("meta")
    meta = meta if meta is not None else ET.Element("meta")
    classes = [n.text.strip() for n in meta.findall(".//labels/label/name") if n.text]
    start = _int_text(meta, "start_frame", 0, path) or 0
    size_tag = _int_text(meta, "size", None, path)
    stop = _int_text(meta, "stop_frame", None, path)
    step = 1
    frame_filter = meta.find(".//frame_filter")
    if frame_filter is not None and frame_filter.text and frame_filter.text.strip():
        text = frame_filter.text.strip()
        if not text.startswith("step="):
            raise ValueError(f"{path}: <frame_filter>: expected 'step=K', found {text!r}")
        step = int(text.split("=", 1)[1])
    width = _int_text(meta, "original_size/width", None, path)
    height = _int_text(meta, "original_size/height", None, path)
    name = meta.find(".//task/name")
    source = meta.find("source")
    tracks = root.findall("track")
    images = root.findall("image")
    task_frames = size_tag if size_tag is not None else (None if stop is None else (stop - start) // step + 1)
    if images and not tracks:  # CVAT for images: one frame per <image>
        task_frames = max(task_frames or 0, max(int(i.get("id", -1)) for i in images) + 1)
    if task_frames is None:
        frames_seen = [int(b.get("frame")) for t in tracks for b in t.findall("box")]
        task_frames = max(frames_seen, default=-1) + 1
    total = num_frames if num_frames is not None else start + (task_frames - 1) * step + 1
    rows: list[list[tuple[np.ndarray, int, int]]] = [[] for _ in range(total)]

    def class_of(label: str | None) -> int:
        if label is None:
            raise ValueError(f"{path}: a shape without a 'label' attribute")
        if label not in classes:
            classes.append(label)
        return classes.index(label)

    def put(task_frame: int, xyxy, class_id: int, track_id: int) -> None:
        frame = start + task_frame * step
        if not 0 <= frame < total:
            raise ValueError(
                f"{path}: task frame {task_frame} is source frame {frame}, outside the source's 0..{total - 1}"
            )
        rows[frame].append((np.asarray(xyxy, np.float64), class_id, track_id))

    for track in tracks:
        track_id = int(track.get("id", -1))
        class_id = class_of(track.get("label"))
        shapes = sorted(track.findall("box"), key=lambda b: int(b.get("frame")))
        if len(track.findall("polygon")) + len(track.findall("points")) and not shapes:
            raise ValueError(f"{path}: track {track_id}: only <box> shapes are read, found other shapes")
        for k, shape in enumerate(shapes):
            frame = int(shape.get("frame"))
            if shape.get("outside", "0") == "1":
                continue
            box = np.array([_float(shape, key, path) for key in ("xtl", "ytl", "xbr", "ybr")])
            following = shapes[k + 1] if k + 1 < len(shapes) else None
            end = int(following.get("frame")) if following is not None else task_frames
            target = box
            if following is not None and following.get("outside", "0") != "1":
                target = np.array([_float(following, key, path) for key in ("xtl", "ytl", "xbr", "ybr")])
            for f in range(frame, min(end, task_frames)):
                alpha = 0.0 if end == frame else (f - frame) / (end - frame)
                put(f, box + alpha * (target - box), class_id, track_id)
    names, sizes = [], []
    for image in images:
        index = int(image.get("id"))
        names.append(image.get("name"))
        sizes.append((int(image.get("width", 0)), int(image.get("height", 0))))
        for shape in image.findall("box"):
            box = [_float(shape, key, path) for key in ("xtl", "ytl", "xbr", "ybr")]
            put(index, box, class_of(shape.get("label")), -1)
    frames = []
    for frame_rows in rows:
        if frame_rows:
            xyxy = np.stack([r[0] for r in frame_rows])
            frames.append(Boxes2D(xyxy=xyxy, class_id=[r[1] for r in frame_rows], track_id=[r[2] for r in frame_rows]))
        else:
            frames.append(Boxes2D.empty())
    return CvatAnnotations(
        path,
        classes,
        frames,
        (width, height) if width and height else None,
        name.text.strip() if name is not None and name.text else path.stem,
        names or None,
        source.text.strip() if source is not None and source.text else None,
        sizes,
    )


def labels_from_cvat(
    files: dict[str, str | Path], *, num_frames: int | None = None, classes: list[str] | None = None
) -> tuple[ClipLabels, dict[str, CvatAnnotations]]:
    """{camera: CVAT XML} -> ``ClipLabels`` (2D boxes per camera, track ids as in CVAT, score 1) over ``num_frames``
    (default: the longest task). ``classes``: the class order to use (CVAT's labels are appended when missing)."""
    from perception.labels import FrameLabels

    read = {camera: read_cvat_xml(path, num_frames=num_frames) for camera, path in files.items()}
    names = list(classes or [])
    for document in read.values():
        names += [c for c in document.classes if c not in names]
    count = num_frames if num_frames is not None else max(len(a.frames) for a in read.values())
    frames = [FrameLabels() for _ in range(count)]
    for camera, document in read.items():
        if len(document.frames) != count:
            raise ValueError(f"{document.path}: {len(document.frames)} frames, expected {count} (the clip's frames)")
        remap = np.array([names.index(c) for c in document.classes] + [-1], dtype=np.int64)
        for index, boxes in enumerate(document.frames):
            frames[index].boxes2d[camera] = boxes.with_fields(class_id=remap[boxes.class_id]) if len(boxes) else boxes
    return ClipLabels(names, frames, {}), read
