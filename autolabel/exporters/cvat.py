"""CVAT for video 1.1 XML per camera: one ``<track>`` per track id with a ``<box>`` per frame, ``outside="1"``
where the track is absent (after its end and across gaps), so CVAT shows exactly the labelled frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

from autolabel.exporters.common import ExportContext, camera_tracks
from perception.atomic import atomic_text_stream, path_inside
from perception.labels import ClipLabels

__all__ = ["cvat_video_lines", "export_cvat_video"]


def _box(frame: int, xyxy, outside: int, keyframe: int = 1) -> str:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (
        f'    <box frame="{frame}" keyframe="{keyframe}" outside="{outside}" occluded="0" '
        f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0"></box>'
    )


def cvat_video_lines(labels: ClipLabels, context: ExportContext, camera: str) -> Iterator[str]:
    """Lines of the CVAT-for-video-1.1 document for one camera (no dates, so reruns give identical bytes)."""
    width, height = context.image_sizes[camera]
    label_xml = "\n".join(
        f"      <label><name>{name}</name><type>rectangle</type><attributes></attributes></label>"
        for name in labels.classes
    )
    yield from [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations>",
        "  <version>1.1</version>",
        "  <meta>",
        "    <task>",
        f"      <name>{context.name}/{camera}</name>",
        f"      <size>{context.num_frames}</size>",
        "      <mode>interpolation</mode>",
        f"      <start_frame>0</start_frame>\n      <stop_frame>{max(context.num_frames - 1, 0)}</stop_frame>",
        f"      <original_size><width>{width}</width><height>{height}</height></original_size>",
        f"      <labels>\n{label_xml}\n      </labels>",
        "    </task>",
        "  </meta>",
    ]
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


def export_cvat_video(labels: ClipLabels, context: ExportContext, out_dir: Path) -> list[Path]:
    """Write ``cvat/<camera>.xml`` for each camera (streamed, atomic)."""
    written = []
    for camera in context.image_sizes:
        path = path_inside(out_dir, "cvat", f"{camera}.xml")  # a camera name never leaves out_dir
        with atomic_text_stream(path) as stream:
            for line in cvat_video_lines(labels, context, camera):
                stream.write(line + "\n")
        written.append(path)
    return written
