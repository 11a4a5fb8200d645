"""Label exporters that keep track ids: COCO-video (TAO-style), MOTChallenge txt, CVAT for video 1.1 XML, YOLO txt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autolabel.exporters.coco_video import export_coco_video
from autolabel.exporters.common import ExportContext
from autolabel.exporters.cvat import export_cvat_video
from autolabel.exporters.mot import export_mot
from autolabel.exporters.yolo import export_yolo
from perception.labels import ClipLabels

__all__ = [
    "EXPORTERS",
    "ExportContext",
    "export_all",
    "export_coco_video",
    "export_cvat_video",
    "export_mot",
    "export_yolo",
]

EXPORTERS: dict[str, Callable[[ClipLabels, ExportContext, Path], list[Path]]] = {
    "coco": export_coco_video,
    "mot": export_mot,
    "cvat": export_cvat_video,
    "yolo": export_yolo,
}


def export_all(labels: ClipLabels, context: ExportContext, out_dir: Path, names: list[str]) -> list[Path]:
    """Run the named exporters into ``out_dir``; returns the files written."""
    written: list[Path] = []
    for name in names:
        if name not in EXPORTERS:
            raise ValueError(f"exporter {name!r}: expected one of {sorted(EXPORTERS)}")
        written += EXPORTERS[name](labels, context, Path(out_dir))
    return written
