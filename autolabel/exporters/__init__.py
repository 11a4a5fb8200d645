"""Label exports. Per clip (written with its labels): MOTChallenge txt per class (``mot``), CVAT XML (``cvat``; read
back by ``autolabel import-cvat``), Label Studio tasks (``labelstudio``). Per job (``autolabel.exporters.dataset``):
YOLO and COCO training datasets (``yolo``, ``coco``) with the frames written and a train/val split by clip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autolabel.exporters.common import ExportContext
from autolabel.exporters.cvat import export_cvat_video, labels_from_cvat, read_cvat_xml
from autolabel.exporters.dataset import DATASET_FORMATS, write_dataset
from autolabel.exporters.labelstudio import export_labelstudio
from autolabel.exporters.mot import export_mot
from perception.labels import ClipLabels

__all__ = [
    "DATASET_FORMATS",
    "EXPORTERS",
    "EXPORT_FORMATS",
    "ExportContext",
    "export_all",
    "export_cvat_video",
    "export_labelstudio",
    "export_mot",
    "labels_from_cvat",
    "read_cvat_xml",
    "write_dataset",
]

EXPORTERS: dict[str, Callable[[ClipLabels, ExportContext, Path], list[Path]]] = {
    "mot": export_mot,
    "cvat": export_cvat_video,
    "labelstudio": export_labelstudio,
}
EXPORT_FORMATS = (*EXPORTERS, *DATASET_FORMATS)  # what a job's ``export`` list may name


def export_all(labels: ClipLabels, context: ExportContext, out_dir: Path, names: list[str]) -> list[Path]:
    """Run the named per-clip exporters into ``out_dir`` (dataset formats are skipped: the job writes them once
    over all clips); returns the files written."""
    written: list[Path] = []
    for name in names:
        if name not in EXPORT_FORMATS:
            raise ValueError(f"exporter {name!r}: expected one of {list(EXPORT_FORMATS)}")
        if name in EXPORTERS:
            written += EXPORTERS[name](labels, context, Path(out_dir))
    return written
