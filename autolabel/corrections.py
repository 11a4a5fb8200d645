"""Human corrections back in: ``autolabel import-cvat`` turns corrected CVAT XML (one file per camera, as
``autolabel`` exported it, or any CVAT for video / for images 1.1 export) into a ``labels.json`` with ground-truth
provenance, in a folder that ``autolabel eval --gt``, ``autolabel export`` and training read like any other labels.

    autolabel import-cvat LABELS/drive_a/cvat/camera.xml --input videos/drive_a.mp4 --out GT/drive_a
    autolabel eval LABELS --gt GT            # how far the pseudo-labels were from the corrected ones
    autolabel export GT --out datasets/gt    # a YOLO / COCO dataset of the corrected labels
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolabel.exporters.cvat import labels_from_cvat, read_cvat_xml
from perception.atomic import atomic_write_json
from perception.hashing import file_sha256
from perception.labels import Boxes2D, ClipLabels, FrameLabels, make_provenance

__all__ = ["import_cvat"]


def _input_kind(path: Path) -> str:
    from autolabel.sources import discover_sources

    sources = discover_sources(path)
    if len(sources) != 1 or sources[0].path != path.resolve():
        raise ValueError(
            f"--input {path}: expected ONE video, image folder, image or drive clip (the media the CVAT task "
            f"annotates), found {len(sources)} inputs under it"
        )
    return sources[0].kind


def _camera_names(files: Sequence[Path], cameras: Sequence[str] | None, rig_names: list[str] | None) -> list[str]:
    if cameras:
        if len(cameras) != len(files):
            raise ValueError(f"--camera: expected one name per XML file ({len(files)}), found {len(cameras)}")
        names = list(cameras)
    elif rig_names is not None and len(rig_names) == 1 and len(files) == 1:
        names = list(rig_names)  # a video or image input has one camera
    else:
        names = [Path(f).stem for f in files]  # autolabel writes cvat/<camera>.xml
    if rig_names is not None:
        unknown = [n for n in names if n not in rig_names]
        if unknown:
            raise ValueError(f"cameras {unknown} (from the XML file names or --camera) are not cameras of the input "
                             f"{rig_names}")  # fmt: skip
    if len(set(names)) != len(names):
        raise ValueError(f"camera names repeat: {names} (pass --camera NAME for each XML file)")
    return names


def _stills_labels(xml: Path, images) -> ClipLabels:
    """CVAT for images XML onto an ImageSet: images matched by file name (CVAT orders them its own way)."""
    document = read_cvat_xml(xml)
    if not document.image_names:
        raise ValueError(f"{xml}: expected CVAT for images (<image> elements) for the still images {images.path}")
    index_of = {f.name: i for i, f in enumerate(images.files)}
    frames = [FrameLabels(boxes2d={images.CAMERA: Boxes2D.empty()}) for _ in images.files]
    for position, name in enumerate(document.image_names):
        key = Path(name).name
        if key not in index_of:
            raise ValueError(f"{xml}: image {name!r} is not one of the images of {images.path}")
        frames[index_of[key]].boxes2d[images.CAMERA] = document.frames[position]
    return ClipLabels(document.classes, frames, {})


def import_cvat(
    files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    input_path: str | os.PathLike | None = None,
    cameras: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write ``out/labels.json`` (ground truth from the CVAT files) and ``out/done``; returns the labels path.

    ``input_path``: the video / clip / image folder the tasks annotate: frame count, camera names and sizes are
    checked against it and it is recorded (absolute) in the provenance, so ``autolabel export`` finds the frames.
    ``classes``: class order of the output (e.g. the pseudo-labels' classes); CVAT's are appended when missing."""
    from autolabel.sources import ImageSet, open_input

    files = [Path(f) for f in files]
    if not files:
        raise ValueError("import-cvat: expected at least one CVAT XML file")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: CVAT XML file not found")
    opened, kind = None, None
    if input_path is not None:
        input_path = Path(input_path).resolve()
        kind = _input_kind(input_path)
        opened = open_input(input_path, kind)
    if isinstance(opened, ImageSet):
        if len(files) != 1:
            raise ValueError(f"import-cvat: still images take one CVAT for images file, found {len(files)}")
        labels = _stills_labels(files[0], opened)
        names = [ImageSet.CAMERA]
    else:
        rig_names = None if opened is None else list(opened.rig.names)
        names = _camera_names(files, cameras, rig_names)
        labels, documents = labels_from_cvat(
            dict(zip(names, files)),
            num_frames=None if opened is None else opened.num_frames,
            classes=list(classes or []),
        )
        for camera, document in documents.items():
            if opened is not None and document.size is not None:
                expected = (opened.rig[camera].width, opened.rig[camera].height)
                if tuple(document.size) != expected:
                    raise ValueError(
                        f"{document.path}: <original_size> {document.size[0]}x{document.size[1]}, the input's camera "
                        f"{camera!r} is {expected[0]}x{expected[1]}"
                    )
    if classes and isinstance(opened, ImageSet):
        order = list(classes) + [c for c in labels.classes if c not in classes]
        remap = np.array([order.index(c) for c in labels.classes] + [-1], np.int64)
        for frame in labels.frames:
            for camera, boxes in frame.boxes2d.items():
                frame.boxes2d[camera] = boxes.with_fields(class_id=remap[boxes.class_id]) if len(boxes) else boxes
        labels = ClipLabels(order, labels.frames, {})
    digests = {str(p): file_sha256(p) for p in files}
    labels.provenance = make_provenance(
        "ground_truth",
        "CVAT (human-reviewed), autolabel import-cvat",
        cvat_files=digests,
        cameras=names,
        input=None if input_path is None else str(input_path),
        input_kind=kind,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels.save(out / "labels.json")
    atomic_write_json(out / "done", {"source": "cvat", "cvat_files": digests, "frames": len(labels.frames),
                                     "cameras": names})  # fmt: skip
    return out / "labels.json"
