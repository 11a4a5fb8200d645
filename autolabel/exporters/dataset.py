"""Training datasets from a label folder: YOLO (ultralytics layout) and COCO, with the frames written as JPEG and a
train/val split by clip (an object never lands in both splits through neighbouring frames).

    OUT/
      images/train/<clip>__<camera>__000000.jpg ...     images/val/...
      labels/train/<clip>__<camera>__000000.txt ...     labels/val/...  YOLO: class cx cy w h, normalised by THAT image
      data.yaml                                         path (absolute), train: images/train, val: images/val, names
      annotations/instances_train.json, instances_val.json
                                                        COCO (file_name relative to images/: "train/<...>.jpg"), with
                                                        TAO-style video_id / frame_id / track_id
      dataset.json                                      what went where: items, split, classes, source labels

``yolo train data=OUT/data.yaml`` and ``pycocotools.coco.COCO(OUT/annotations/instances_train.json)`` read it as is.
Frames come from the inputs the labels were made from (``provenance.input`` relative to the job's input root,
``job.json``, or ``--inputs``); still images keep their own size (JPEG files are copied byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.exporters.yolo import yolo_lines
from perception.atomic import atomic_directory
from perception.hashing import file_sha256
from perception.labels import Boxes2D, ClipLabels

__all__ = ["DATASET_FORMATS", "DatasetItem", "DatasetSummary", "find_dataset_items", "split_by_clip", "write_dataset"]

log = logging.getLogger("autolabel")

DATASET_FORMATS = ("yolo", "coco")
MANIFEST = "dataset.json"


@dataclass
class DatasetItem:
    """One labelled input: its label folder relative to LABEL_DIR, its labels.json, where its frames are."""

    relative: str
    labels_path: Path
    input_path: Path | None
    input_kind: str
    labels_sha256: str = ""

    @property
    def stem(self) -> str:
        return self.relative.replace("/", "__") if self.relative not in ("", ".") else "input"


@dataclass
class DatasetSummary:
    """What ``write_dataset`` wrote: images per split, items per split, items skipped (with the reason)."""

    out: Path
    images: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    items: dict[str, list[str]] = field(default_factory=lambda: {"train": [], "val": []})
    skipped: dict[str, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    reused: bool = False


def _input_root(label_dir: Path) -> Path | None:
    record = label_dir / "job.json"
    return Path(json.loads(record.read_text())["input_root"]) if record.is_file() else None


def find_dataset_items(label_dir: str | Path, *, input_root: str | Path | None = None) -> list[DatasetItem]:
    """Every finished ``labels.json`` (with ``done``) under ``label_dir``, with the input its frames come from
    (``provenance.input`` relative to ``input_root``, default the job's recorded root; absolute inputs as they are)."""
    label_dir = Path(label_dir)
    root = Path(input_root) if input_root is not None else _input_root(label_dir)
    items = []
    for path in sorted(label_dir.rglob("labels.json")):
        if not (path.parent / "done").is_file() or any(part.startswith(".") for part in path.parent.parts[-1:]):
            continue
        provenance = json.loads(path.read_text()).get("provenance") or {}
        recorded = provenance.get("input")
        source = None
        if recorded is not None:
            source = Path(recorded) if Path(recorded).is_absolute() else (root / recorded if root else None)
        items.append(
            DatasetItem(
                path.parent.relative_to(label_dir).as_posix(),
                path,
                source,
                provenance.get("input_kind") or "video",
                file_sha256(path),
            )
        )
    return items


def split_by_clip(names: Sequence[str], val_fraction: float) -> set[str]:
    """Names of the validation items: the ``round(n * val_fraction)`` names (at least one when n >= 2 and the
    fraction is positive, never all) with the smallest sha1 of their name: deterministic, stable when clips are
    added (a clip's split depends only on its name and the fraction's cut)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected 0 <= fraction < 1, found {val_fraction}")
    names = sorted(set(names))
    if len(names) < 2 or val_fraction == 0.0:
        return set()
    count = min(max(1, round(len(names) * val_fraction)), len(names) - 1)
    ranked = sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())
    return set(ranked[:count])


def _frames_of(item: DatasetItem, every: int) -> Iterator[tuple[int, str, np.ndarray | None, bytes | None]]:
    """(frame index, camera, BGR image or None, original JPEG bytes or None) of an item's input."""
    from autolabel.sources import ImageSet, open_input

    if item.input_path is None:
        raise FileNotFoundError(f"{item.labels_path}: provenance names no input: frames cannot be found")
    opened = open_input(item.input_path, item.input_kind)
    if isinstance(opened, ImageSet):
        for index in range(0, opened.num_frames, every):
            file = opened.files[index]
            if file.suffix.lower() in (".jpg", ".jpeg"):
                image = opened.read(index)  # decoded for its size and to skip broken files
                yield index, ImageSet.CAMERA, image, file.read_bytes() if image is not None else None
            else:
                yield index, ImageSet.CAMERA, opened.read(index), None
        return
    for frame in opened.frames():
        if frame.index % every == 0:
            for camera, image in frame.images.items():
                yield frame.index, camera, image, None


class _CocoWriter:
    """Streams one split's COCO JSON (images and annotations into temporary parts, joined at the end)."""

    def __init__(self, folder: Path, split: str, categories: list[dict]) -> None:
        self.path = folder / f"instances_{split}.json"
        self.folder = folder
        self.categories = categories
        self.images = open(folder / f".{split}.images.part", "w", encoding="utf-8")
        self.annotations = open(folder / f".{split}.annotations.part", "w", encoding="utf-8")
        self.videos: dict[str, dict] = {}
        self.tracks: dict[tuple[int, int], dict] = {}
        self.image_id = 0
        self.annotation_id = 0

    def add(self, file_name: str, video: str, frame: int, size: tuple[int, int], boxes: Boxes2D) -> None:
        width, height = size
        video_entry = self.videos.setdefault(video, {"id": len(self.videos) + 1, "name": video})
        self.image_id += 1
        image = {"id": self.image_id, "file_name": file_name, "width": width, "height": height}
        image.update(video_id=video_entry["id"], frame_id=frame, frame_index=frame)
        self.images.write(("," if self.image_id > 1 else "") + json.dumps(image, separators=(",", ":")))
        for row in range(len(boxes)):
            x1, y1, x2, y2 = (float(v) for v in boxes.xyxy[row])
            track = int(boxes.track_id[row])
            category = int(boxes.class_id[row]) + 1
            instance = -1
            if track >= 0:  # instance ids unique over the split: one per (video, track)
                entry = self.tracks.setdefault(
                    (video_entry["id"], track),
                    {"id": len(self.tracks) + 1, "video_id": video_entry["id"], "category_id": category,
                     "source_track_id": track},
                )  # fmt: skip
                instance = entry["id"]
            self.annotation_id += 1
            annotation = {
                "id": self.annotation_id, "image_id": self.image_id, "video_id": video_entry["id"],
                "category_id": category, "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0, "score": round(float(boxes.score[row]), 4),
                "track_id": instance, "instance_id": instance,
            }  # fmt: skip
            self.annotations.write(
                ("," if self.annotation_id > 1 else "") + json.dumps(annotation, separators=(",", ":"))
            )

    def close(self, description: str) -> Path:
        self.images.close()
        self.annotations.close()
        head = {"info": {"description": description, "version": "1.0"}, "categories": self.categories}
        with open(self.path, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(head, separators=(",", ":"))[:-1])
            stream.write(',"videos":' + json.dumps(list(self.videos.values()), separators=(",", ":")))
            for key, part in (("images", self.images.name), ("annotations", self.annotations.name)):
                stream.write(f',"{key}":[')
                with open(part, encoding="utf-8") as source:
                    shutil.copyfileobj(source, stream)
                stream.write("]")
                os.unlink(part)
            stream.write(',"tracks":' + json.dumps(list(self.tracks.values()), separators=(",", ":")) + "}")
        return self.path


def _manifest_key(items: Sequence[DatasetItem], settings: dict[str, Any]) -> str:
    text = json.dumps({"settings": settings, "items": [(i.relative, i.labels_sha256) for i in items]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_dataset(
    label_dir: str | Path,
    out: str | Path,
    *,
    formats: Sequence[str] = DATASET_FORMATS,
    val_fraction: float = 0.2,
    input_root: str | Path | None = None,
    every: int = 1,
    jpeg_quality: int = 90,
    progress: bool = False,
    reuse: bool = True,
) -> DatasetSummary:
    """Write the YOLO and/or COCO dataset of every finished label folder under ``label_dir`` into ``out`` (module
    docstring), built in a temporary folder beside ``out`` and renamed into place. ``every``: keep every n-th frame
    of videos and clips. ``reuse``: leave ``out`` alone when its manifest records the same labels and settings. An
    item whose frames cannot be read is skipped and reported (``DatasetSummary.skipped``), the rest is written."""
    import cv2
    from tqdm import tqdm

    unknown = sorted(set(formats) - set(DATASET_FORMATS))
    if unknown or not formats:
        raise ValueError(f"dataset formats {list(formats)}: expected some of {list(DATASET_FORMATS)}")
    if every < 1:
        raise ValueError(f"every: expected >= 1, found {every}")
    label_dir, out = Path(label_dir), Path(out)
    items = find_dataset_items(label_dir, input_root=input_root)
    if not items:
        raise FileNotFoundError(f"{label_dir}: no finished labels (labels.json + done) to export")
    settings = {"formats": sorted(formats), "val_fraction": val_fraction, "every": every, "quality": jpeg_quality}
    key = _manifest_key(items, settings)
    summary = DatasetSummary(out)
    if reuse and (out / MANIFEST).is_file():
        manifest = json.loads((out / MANIFEST).read_text())
        if manifest.get("key") == key:
            summary.reused = True
            summary.images, summary.items = manifest["images"], manifest["items"]
            summary.classes, summary.skipped = manifest["classes"], manifest.get("skipped", {})
            return summary
    val_names = split_by_clip([i.relative for i in items], val_fraction)
    classes: list[str] = []
    loaded = []
    for item in items:
        labels = ClipLabels.load(item.labels_path)
        classes += [c for c in labels.classes if c not in classes]
        loaded.append((item, labels))
    summary.classes = classes
    with atomic_directory(out) as staging:
        for split in ("train", "val"):
            (staging / "images" / split).mkdir(parents=True)
            if "yolo" in formats:
                (staging / "labels" / split).mkdir(parents=True)
        coco = {}
        if "coco" in formats:
            (staging / "annotations").mkdir()
            categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(classes)]
            coco = {split: _CocoWriter(staging / "annotations", split, categories) for split in ("train", "val")}
        bar = tqdm(total=len(loaded), desc=f"dataset {out.name}", unit="clip", disable=not progress)
        for item, labels in loaded:
            split = "val" if item.relative in val_names else "train"
            remap = np.array([classes.index(c) for c in labels.classes] + [-1], dtype=np.int64)
            written = 0
            try:
                for index, camera, image, original in _frames_of(item, every):
                    if index >= len(labels.frames):
                        raise ValueError(f"{item.labels_path}: labels hold {len(labels.frames)} frames, the input more")
                    if image is None:
                        continue
                    height, width = image.shape[:2]
                    name = f"{item.stem}__{camera}__{index:06d}"
                    if original is not None:
                        (staging / "images" / split / f"{name}.jpg").write_bytes(original)
                    else:
                        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                        if not ok:
                            raise OSError(f"{item.input_path}: JPEG encoding of frame {index} failed")
                        (staging / "images" / split / f"{name}.jpg").write_bytes(encoded.tobytes())
                    boxes = labels.frames[index].boxes2d.get(camera, Boxes2D.empty())
                    boxes = boxes.with_fields(class_id=remap[boxes.class_id]) if len(boxes) else boxes
                    if "yolo" in formats:
                        lines = yolo_lines(boxes.xyxy, boxes.class_id, width, height)
                        text = "\n".join(lines) + ("\n" if lines else "")
                        (staging / "labels" / split / f"{name}.txt").write_text(text)
                    if coco:
                        coco[split].add(
                            f"{split}/{name}.jpg", f"{item.relative}/{camera}", index, (width, height), boxes
                        )
                    written += 1
            except (OSError, ValueError) as error:  # ClipError is a ValueError: skip the item, keep the rest
                log.warning("dataset: skipped %s: %s", item.relative, error)
                summary.skipped[item.relative] = f"{type(error).__name__}: {error}"
                for folder in ("images", "labels"):
                    for path in (staging / folder / split).glob(f"{item.stem}__*"):
                        path.unlink()
                bar.update(1)
                continue
            summary.images[split] += written
            summary.items[split].append(item.relative)
            bar.update(1)
        bar.close()
        if not summary.items["val"] and summary.items["train"]:
            log.warning(
                "dataset %s: one clip only (%s): no clip left for validation; data.yaml's val is the train split",
                out,
                summary.items["train"][0],
            )
        for split, writer in coco.items():
            writer.close(f"fleetvision autolabel dataset ({split})")
        if "yolo" in formats:
            val = "images/val" if summary.items["val"] else "images/train"
            names = "\n".join(f"  {i}: {json.dumps(n)}" for i, n in enumerate(classes))
            (staging / "data.yaml").write_text(
                f"# fleetvision autolabel dataset: {summary.images['train']} train images "
                f"({len(summary.items['train'])} clips), {summary.images['val']} val images "
                f"({len(summary.items['val'])} clips), split by clip.\n"
                "# Moved this folder? Fix 'path' (or delete the line: ultralytics then uses this file's folder).\n"
                f"path: {json.dumps(str(out.resolve()))}\ntrain: images/train\nval: {val}\nnames:\n{names}\n"
            )
        manifest = {
            "key": key, "settings": settings, "classes": classes,
            "images": summary.images, "items": summary.items, "skipped": summary.skipped,
            "labels": {i.relative: i.labels_sha256 for i in items},
        }  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return summary
