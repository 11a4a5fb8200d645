"""Auto-labelling job configuration: YAML sections -> teacher + stage kwargs, teacher specs, content hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception.labels import DRIVING_CLASSES

__all__ = [
    "COCO_TO_DRIVING",
    "JobConfig",
    "TeacherInfo",
    "build_teacher",
    "file_sha256",
    "load_job_config",
    "parse_teacher_spec",
]

# COCO class name -> driving class name (perception.labels.DRIVING_CLASSES); other COCO classes are dropped.
COCO_TO_DRIVING: dict[str, str] = {
    "car": "car",
    "truck": "truck",
    "bus": "bus",
    "person": "pedestrian",
    "bicycle": "cyclist",
    "motorcycle": "cyclist",
}

TEACHER_KINDS = ("yolox_onnx", "torchvision", "fleetvision", "class_path")
KNOWN_SECTIONS = (
    "teacher",
    "classes",
    "refine",
    "tracking3d",
    "export",
    "batch_size",
    "queue_frames",
    "window_frames",
    "window_overlap",
    "preview",
)


@dataclass
class TeacherInfo:
    """What produced the labels: teacher name, its weights' sha256, and whether it predicts 3D boxes."""

    name: str
    weights_sha256: str | None
    predicts_3d: bool = False


@dataclass
class JobConfig:
    """Resolved job settings; ``sha256`` identifies the settings that change outputs (done markers use it)."""

    teacher: dict[str, Any]
    classes: list[str] = field(default_factory=lambda: list(DRIVING_CLASSES))
    refine: dict[str, Any] = field(default_factory=dict)
    tracking3d: dict[str, Any] = field(default_factory=dict)
    export: list[str] = field(default_factory=lambda: ["coco", "mot", "cvat", "yolo"])
    batch_size: int = 8
    queue_frames: int = 16
    window_frames: int = 600
    window_overlap: int = 60
    preview: bool = False
    source_file: str | None = None

    def output_settings(self, weights_sha256: str | None) -> dict[str, Any]:
        """The settings that determine output bytes (not batch size or queue length)."""
        from perception import __version__

        return {
            "fleetvision": __version__,
            "teacher": {k: v for k, v in self.teacher.items() if k != "path"} | {"weights_sha256": weights_sha256},
            "classes": self.classes,
            "refine": self.refine,
            "tracking3d": self.tracking3d,
            "export": sorted(self.export),
            "window": [self.window_frames, self.window_overlap],
            "preview": self.preview,
        }

    def sha256(self, weights_sha256: str | None) -> str:
        text = json.dumps(self.output_settings(weights_sha256), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def parse_teacher_spec(spec: str) -> dict[str, Any]:
    """``--teacher`` text -> teacher section: ``model.onnx`` | ``yolox:PATH`` | ``torchvision:ARCH:PATH`` |
    ``fleetvision:PATH`` | ``checkpoint.ckpt/.pt/.pth`` (fleetvision) | ``class_path:pkg.module.Class``."""
    kind, _, rest = spec.partition(":")
    if kind == "yolox" and rest:
        return {"kind": "yolox_onnx", "path": rest}
    if kind == "torchvision" and rest:
        arch, _, path = rest.partition(":")
        if not path:
            raise ValueError(f"--teacher {spec!r}: expected torchvision:ARCH:WEIGHTS_PATH")
        return {"kind": "torchvision", "arch": arch, "path": path}
    if kind == "fleetvision" and rest:
        return {"kind": "fleetvision", "path": rest}
    if kind == "class_path" and rest:
        return {"kind": "class_path", "class_path": rest}
    suffix = Path(spec).suffix.lower()
    if suffix == ".onnx":
        return {"kind": "yolox_onnx", "path": spec}
    if suffix in (".ckpt", ".pt", ".pth"):
        return {"kind": "fleetvision", "path": spec}
    raise ValueError(
        f"--teacher {spec!r}: expected a .onnx (YOLOX), a .ckpt/.pt (fleetvision checkpoint), "
        "torchvision:ARCH:WEIGHTS, yolox:PATH, fleetvision:PATH or class_path:pkg.module.Class"
    )


def load_job_config(
    path: str | os.PathLike | None,
    *,
    teacher_spec: str | None = None,
    batch_size: int | None = None,
    preview: bool | None = None,
) -> JobConfig:
    """Read a job YAML (sections: teacher, classes, refine, tracking3d, export, ...) and apply CLI overrides."""
    document: dict[str, Any] = {}
    if path is not None:
        import yaml

        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{path}: config file not found") from error
        if not isinstance(document, dict):
            raise ValueError(
                f"{path}: expected a mapping of sections {KNOWN_SECTIONS}, found {type(document).__name__}"
            )
        if document and set(document) <= _offline_fields():  # a flat OfflineLabelConfig preset
            document = {"refine": document}
        unknown = sorted(set(document) - set(KNOWN_SECTIONS))
        if unknown:
            raise ValueError(
                f"{path}: unknown sections {unknown}, expected some of {list(KNOWN_SECTIONS)} "
                "(or a flat OfflineLabelConfig preset)"
            )
        if isinstance(document.get("refine"), str):  # refine: path of an OfflineLabelConfig preset
            preset = Path(document["refine"])
            preset = preset if preset.is_file() else path.parent / preset
            document["refine"] = yaml.safe_load(preset.read_text()) or {}
        teacher = document.get("teacher") or {}
        if "path" in teacher and not Path(teacher["path"]).is_absolute():  # relative to the repo / cwd, else the YAML
            candidate = Path(teacher["path"])
            if not candidate.exists() and (path.parent / candidate).exists():
                teacher["path"] = str(path.parent / candidate)
    teacher = dict(document.get("teacher") or {})
    if teacher_spec:
        overrides = {k: v for k, v in teacher.items() if k not in ("kind", "path", "arch", "class_path")}
        teacher = {**overrides, **parse_teacher_spec(teacher_spec)}
    if not teacher:
        raise ValueError("no teacher: pass --teacher PATH_OR_SPEC or a config with a 'teacher:' section")
    if teacher.get("kind") not in TEACHER_KINDS:
        raise ValueError(
            f"{path or '--teacher'}: field 'teacher.kind': expected one of {TEACHER_KINDS}, found {teacher.get('kind')!r}"
        )
    config = JobConfig(teacher=teacher, source_file=None if path is None else str(path))
    for name in (
        "classes",
        "refine",
        "tracking3d",
        "export",
        "batch_size",
        "queue_frames",
        "window_frames",
        "window_overlap",
        "preview",
    ):
        if name in document:
            setattr(config, name, document[name])
    if batch_size is not None:
        config.batch_size = int(batch_size)
    if preview is not None and preview:
        config.preview = True
    from autolabel.exporters import EXPORTERS

    unknown = [e for e in config.export if e not in EXPORTERS]
    if unknown:
        raise ValueError(f"{path}: field 'export': unknown exporters {unknown}, expected some of {sorted(EXPORTERS)}")
    return config


def _offline_fields() -> set[str]:
    from autolabel.offline import OfflineLabelConfig

    return {f.name for f in dataclasses.fields(OfflineLabelConfig)}


def _coco_class_map(mapping: dict[str, str] | str | None, source_names: tuple[str, ...]) -> dict[int, str]:
    if mapping is None or mapping == "coco_to_driving":
        mapping = COCO_TO_DRIVING
    if isinstance(mapping, str):
        from autolabel.teachers.base import load_class_map

        return load_class_map(mapping, source_names)
    index_of = {name: i for i, name in enumerate(source_names)}
    unknown = [name for name in mapping if name not in index_of]
    if unknown:
        raise ValueError(f"teacher.class_map: source classes {unknown} are not COCO class names")
    return {index_of[name]: target for name, target in mapping.items()}


def build_teacher(section: dict[str, Any]) -> tuple[Any, TeacherInfo]:
    """Construct the teacher a config section describes (weights from a LOCAL path); returns (teacher, info)."""
    kind = section["kind"]
    options = dict(section.get("init_args") or {})
    if kind == "class_path":
        module_name, _, class_name = section["class_path"].rpartition(".")
        teacher_class = getattr(importlib.import_module(module_name), class_name)
        from autolabel.teachers.base import Teacher

        if not (isinstance(teacher_class, type) and issubclass(teacher_class, Teacher)):
            raise TypeError(f"teacher.class_path {section['class_path']!r}: expected a Teacher subclass")
        teacher = teacher_class(**options)
        return teacher, TeacherInfo(
            section["class_path"],
            getattr(teacher, "weights_sha256", None),
            bool(getattr(teacher, "predicts_3d", False)),
        )
    path = Path(section.get("path", ""))
    if not path.is_file():
        raise FileNotFoundError(f"teacher.path: {kind} weights file {path} not found")
    digest = file_sha256(path)
    if kind == "yolox_onnx":
        from autolabel.teachers.coco import COCO80_NAMES
        from autolabel.teachers.onnx_yolox import OnnxYoloxTeacher

        class_map = _coco_class_map(section.get("class_map"), COCO80_NAMES)
        for key in ("score_floor", "nms_iou", "input_size"):
            if key in section:
                options[key] = tuple(section[key]) if key == "input_size" else section[key]
        teacher = OnnxYoloxTeacher(path, class_map=class_map, **options)
        return teacher, TeacherInfo(f"yolox_onnx:{path.name}", digest)
    if kind == "torchvision":
        from autolabel.teachers.coco import COCO91_NAMES
        from autolabel.teachers.torchvision_teacher import TorchvisionTeacher

        class_map = _coco_class_map(section.get("class_map"), COCO91_NAMES)
        for key in ("score_floor", "nms_iou", "num_classes"):
            if key in section:
                options[key] = section[key]
        teacher = TorchvisionTeacher(section["arch"], path, class_map=class_map, **options)
        return teacher, TeacherInfo(f"torchvision:{section['arch']}", digest)
    if kind == "fleetvision":
        from autolabel.teachers.fleetvision import FleetvisionTeacher

        for key in ("score_threshold", "max_boxes", "device"):
            if key in section:
                options[key] = section[key]
        teacher = FleetvisionTeacher(path, **options)
        return teacher, TeacherInfo(f"fleetvision:{teacher.model_name}", digest, teacher.predicts_3d)
    raise ValueError(f"teacher.kind: expected one of {TEACHER_KINDS}, found {kind!r}")
