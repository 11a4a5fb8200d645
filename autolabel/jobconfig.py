"""The auto-labelling job's configuration on jsonargparse (as ``perception fit`` on LightningCLI): constructor
arguments only, ``--print_config``, dotted overrides.

    autolabel VIDEO_DIR --out LABEL_DIR -c configs/autolabel/jobs/yolox_nano_driving.yaml \\
        [--teacher.score_floor=0.1] [--refine.min_length=5] [--tracking3d.min_length=5] [--print_config]

Sections, each the constructor arguments of one class:

- ``teacher``: ``class_path`` + ``init_args`` of an ``autolabel.teachers.base.Teacher``: ``OnnxYoloxTeacher``,
  ``OnnxDetectorTeacher``, ``TorchvisionTeacher``, ``FleetvisionTeacher`` or your own class. ``--teacher SPEC`` is a
  shorthand: ``model.onnx`` (any supported ONNX layout) | ``yolox:PATH`` | ``ultralytics:PATH`` | ``end2end:PATH`` |
  ``torchvision:ARCH:PATH`` | ``fleetvision:PATH[,PATH...]`` (several = an ensemble) | ``CKPT.ckpt/.pt/.pth`` |
  ``class_path:pkg.module.Class``;
  when the config's teacher has the same class, its other arguments are kept.
- ``classes``: the output classes in class-id order; teacher classes outside it are appended (with a warning).
- ``refine``: ``autolabel.offline.OfflineLabelConfig`` (the 2D offline chain), inline or the path of a preset file.
- ``tracking3d``: ``autolabel.tracking3d.Tracker3DConfig`` (3D teachers).
- ``images``: ``autolabel.sources.ImageSetConfig``: image folders without frames.csv are ``stills`` (independent
  images, per-image labels) or, with ``mode: sequence``, videos.
- ``multicam``: ``autolabel.multicam.CrossCameraConfig`` (2D teachers on multi-camera clips: one id per object
  across cameras from the rig geometry, 3D boxes from lifted tracks).
- ``export``, ``preview``: what each clip writes; ``batch_size``, ``queue_frames`` (memory and speed only);
  ``window_frames``, ``window_overlap`` (the 2D chain's windows over long videos).

The config hash (provenance ``config_sha256``, ``done`` markers: a rerun skips a clip only when they match) covers
the resolved sections except ``batch_size``/``queue_frames``, with every teacher weights file replaced by its
sha256: moving the weights does not relabel, new weights do.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from perception.hashing import file_sha256
from perception.labels import DRIVING_CLASSES

__all__ = [
    "JOB_SECTIONS",
    "Job",
    "TeacherInfo",
    "add_job_arguments",
    "build_job",
    "config_sha256",
    "expand_shorthands",
    "job_parser",
    "load_job_config",
    "parse_job_args",
    "parse_teacher_spec",
]

log = logging.getLogger("autolabel")

JOB_SECTIONS = (
    "teacher",
    "classes",
    "refine",
    "tracking3d",
    "multicam",
    "export",
    "batch_size",
    "queue_frames",
    "window_frames",
    "window_overlap",
    "preview",
    "images",
)
NOT_HASHED = ("batch_size", "queue_frames")  # speed and memory only: the same labels either way

TEACHER_CLASSES = {
    "onnx": "autolabel.teachers.onnx_detector.OnnxDetectorTeacher",
    "yolox": "autolabel.teachers.onnx_yolox.OnnxYoloxTeacher",
    "torchvision": "autolabel.teachers.torchvision_teacher.TorchvisionTeacher",
    "fleetvision": "autolabel.teachers.fleetvision.FleetvisionTeacher",
}


@dataclass
class TeacherInfo:
    """What produced the labels: teacher name, its weights' sha256, and whether it predicts 3D boxes."""

    name: str
    weights_sha256: str | None
    predicts_3d: bool = False


# ---------------------------------------------------------------------------------------------------- parsing
def add_job_arguments(parser: Any) -> None:
    """Add the job sections to a jsonargparse parser (``-c`` is added by ``job_parser`` / the CLI)."""
    from jsonargparse import ActionYesNo
    from jsonargparse.typing import NonNegativeInt, PositiveInt

    from autolabel.exporters import EXPORT_FORMATS
    from autolabel.multicam import CrossCameraConfig
    from autolabel.offline import OfflineLabelConfig
    from autolabel.sources import ImageSetConfig
    from autolabel.teachers.base import Teacher
    from autolabel.tracking3d import Tracker3DConfig

    group = parser.add_argument_group("job (config file sections; --section.key=value overrides)")
    group.add_argument(
        "--teacher",
        type=Teacher,
        default=None,
        help="class_path/init_args of a Teacher, or a shorthand: model.onnx (YOLOX, ultralytics or end-to-end layout, "
        "read from the model) | yolox:PATH | ultralytics:PATH | end2end:PATH | torchvision:ARCH:WEIGHTS "
        "| fleetvision:CKPT | CKPT.ckpt | class_path:pkg.module.Class",
    )
    group.add_argument(
        "--classes", type=list[str], default=list(DRIVING_CLASSES), help="output classes in class-id order"
    )
    group.add_argument(
        "--refine", type=OfflineLabelConfig, default=OfflineLabelConfig(), help="2D offline chain (or a preset file)"
    )
    group.add_argument(
        "--tracking3d", type=Tracker3DConfig, default=Tracker3DConfig(), help="3D world-frame tracker (3D teachers)"
    )
    group.add_argument(
        "--multicam",
        type=CrossCameraConfig,
        default=CrossCameraConfig(),
        help="2D teachers: association across cameras and 3D boxes from lifted tracks",
    )
    group.add_argument(
        "--export",
        type=list[Literal[tuple(EXPORT_FORMATS)]],  # type: ignore[misc]
        default=list(EXPORT_FORMATS),
        help=f"label formats, some of {list(EXPORT_FORMATS)}: mot/cvat/labelstudio per clip; yolo/coco: one training "
        "dataset over all clips (LABEL_DIR/dataset: frames as JPEG, train/val split by clip, data.yaml)",
    )
    group.add_argument("--batch_size", "--batch", type=PositiveInt, default=8, help="frames per teacher call")
    group.add_argument("--queue_frames", type=PositiveInt, default=16, help="decoded frames waiting for the teacher")
    group.add_argument("--window_frames", type=PositiveInt, default=600, help="2D chain window over long videos")
    group.add_argument("--window_overlap", type=NonNegativeInt, default=60, help="frames shared by windows")
    group.add_argument(
        "--preview", action=ActionYesNo, default=False, help="also write preview.mp4 per clip (--no_preview: not)"
    )
    group.add_argument(
        "--images",
        type=ImageSetConfig,
        default=ImageSetConfig(),
        help="image folders without frames.csv: mode 'stills' (independent images, per-image labels with score >= "
        "min_score, no tracking) or 'sequence' (tracked like a video)",
    )


def job_parser() -> Any:
    """jsonargparse parser of the job sections alone (``-c/--config`` files, no run options)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="autolabel", exit_on_error=False, print_config=None, default_env=False)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="job YAML (sections below)")
    add_job_arguments(parser)
    return parser


def parse_teacher_spec(spec: str) -> dict[str, Any] | None:
    """``--teacher`` shorthand -> ``{class_path, init_args}``, or None when ``spec`` is not a shorthand (then it is
    a class path or JSON for jsonargparse)."""
    kind, _, rest = spec.partition(":")
    if kind == "yolox" and rest:
        return {"class_path": TEACHER_CLASSES["yolox"], "init_args": {"model_path": rest}}
    if kind in ("ultralytics", "end2end") and rest:
        return {"class_path": TEACHER_CLASSES["onnx"], "init_args": {"model_path": rest, "layout": kind}}
    if kind == "onnx" and rest:
        return {"class_path": TEACHER_CLASSES["onnx"], "init_args": {"model_path": rest}}
    if kind == "torchvision" and rest:
        arch, _, path = rest.partition(":")
        if not path:
            raise ValueError(f"--teacher {spec!r}: expected torchvision:ARCH:WEIGHTS_PATH")
        return {"class_path": TEACHER_CLASSES["torchvision"], "init_args": {"arch": arch, "weights_path": path}}
    if kind == "fleetvision" and rest:  # fleetvision:A.pt,B.pt = an ensemble
        paths = rest.split(",") if "," in rest else rest
        return {"class_path": TEACHER_CLASSES["fleetvision"], "init_args": {"checkpoint_path": paths}}
    if kind == "class_path" and rest:
        return {"class_path": rest}
    suffix = Path(spec).suffix.lower()
    if suffix == ".onnx":  # layout, input size and class names read from the model (OnnxDetectorTeacher)
        return {"class_path": TEACHER_CLASSES["onnx"], "init_args": {"model_path": spec}}
    if suffix in (".ckpt", ".pt", ".pth"):
        return {"class_path": TEACHER_CLASSES["fleetvision"], "init_args": {"checkpoint_path": spec}}
    if spec.lstrip().startswith("{") or re.fullmatch(r"([A-Za-z_]\w*\.)*[A-Z]\w*", spec):
        return None  # JSON or pkg.module.Class: for jsonargparse
    raise ValueError(
        f"--teacher {spec!r}: expected a .onnx detector (YOLOX, ultralytics YOLOv8/YOLO11, end-to-end NMS; layout read "
        "from the model), a .ckpt/.pt (fleetvision checkpoint), torchvision:ARCH:WEIGHTS, yolox:PATH, "
        "ultralytics:PATH, end2end:PATH, fleetvision:PATH[,PATH...], class_path:pkg.module.Class or a class path"
    )


def expand_shorthands(argv: Sequence[str]) -> list[str]:
    """``--teacher SPEC`` shorthands -> jsonargparse ``--teacher={class_path, init_args}`` JSON."""
    out: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item == "--teacher" and index + 1 < len(items):
            value, index = items[index + 1], index + 2
        elif item.startswith("--teacher="):
            value, index = item.split("=", 1)[1], index + 1
        else:
            out.append(item)
            index += 1
            continue
        spec = parse_teacher_spec(value)
        out.append("--teacher=" + (value if spec is None else json.dumps(spec)))
    return out


def _config_files(argv: Sequence[str]) -> list[str]:
    files = []
    for index, item in enumerate(argv):
        if item in ("-c", "--config") and index + 1 < len(argv):
            files.append(argv[index + 1])
        elif item.startswith("--config="):
            files.append(item.split("=", 1)[1])
    return files


def _check_config_file(path: str) -> None:
    """Parse one config file alone, so an error names the file (jsonargparse's messages name only the key)."""
    from jsonargparse import ArgumentError

    from perception.errors import load_yaml

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    document = load_yaml(path, "an autolabel job config (YAML)")
    if not isinstance(document, dict):
        raise ValueError(
            f"{path}: expected a mapping of sections {list(JOB_SECTIONS)}, found {type(document).__name__}"
        )
    unknown = sorted(set(document) - set(JOB_SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}, expected some of {list(JOB_SECTIONS)}")
    teacher = document.get("teacher")
    if isinstance(teacher, dict) and "kind" in teacher:
        raise ValueError(
            f"{path}: field 'teacher': 'kind'/'path' is the old layout; write class_path + init_args "
            "(see configs/autolabel/jobs/*.yaml) or pass --teacher KIND:PATH"
        )
    try:
        job_parser().parse_args(["--config", str(path)])
    except ArgumentError as error:
        raise ValueError(f"{path}: {error}") from error


def parse_job_args(parser: Any, argv: Sequence[str]) -> Any:
    """Parse ``argv`` (shorthands expanded) with ``parser`` (``job_parser()`` or the CLI's); errors name the config
    file or the command line."""
    from jsonargparse import ArgumentError

    argv = expand_shorthands(argv)
    for path in _config_files(argv):
        _check_config_file(path)
    try:
        return parser.parse_args(argv)
    except ArgumentError as error:
        raise ValueError(f"command line: {error}") from error


def load_job_config(path: str | os.PathLike | None = None, *, overrides: Sequence[str] = ()) -> Any:
    """The job config (jsonargparse Namespace) of a YAML file and command-line style overrides."""
    argv = ([] if path is None else ["--config", str(path)]) + list(overrides)
    return parse_job_args(job_parser(), argv)


def job_sections(config: Any) -> Any:
    """The job sections of a parsed config (run options of the CLI dropped)."""
    config = config.clone()
    for key in list(config.keys()):
        if key.split(".", 1)[0] not in JOB_SECTIONS:
            del config[key]
    return config


def dump_job_config(config: Any) -> str:
    """Resolved job sections as YAML (what ``--print_config`` prints and a job saves beside its labels)."""
    return job_parser().dump(job_sections(config))


# ---------------------------------------------------------------------------------------------------- hashing
def _weights_files(node: Any, where: str = "teacher") -> list[tuple[str, str]]:
    """(dotted key, path) of every weights file argument in a teacher section (nested teachers included)."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict) and isinstance(node.get("class_path"), str):
        module_name, _, class_name = node["class_path"].rpartition(".")
        teacher_class = getattr(importlib.import_module(module_name), class_name)
        init_args = node.get("init_args") or {}
        argument = getattr(teacher_class, "weights_argument", None)
        value = init_args.get(argument) if argument else None
        if isinstance(value, list):  # several weights files (an ensemble)
            found += [(f"{where}.init_args.{argument}[{i}]", str(path)) for i, path in enumerate(value)]
        elif value is not None:
            found.append((f"{where}.init_args.{argument}", str(value)))
        for key, value in init_args.items():
            found += _weights_files(value, f"{where}.init_args.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _weights_files(value, f"{where}[{index}]")
    return found


def config_sha256(document: dict[str, Any], weights_sha256: dict[str, str]) -> str:
    """sha256 of the output-relevant settings: ``document`` (plain resolved sections) without batch_size and
    queue_frames, weights paths (dotted keys of ``weights_sha256``) replaced by their digests."""
    from perception import __version__

    settings = json.loads(json.dumps({k: v for k, v in document.items() if k not in NOT_HASHED}, default=str))
    for dotted, digest in weights_sha256.items():
        node: Any = settings
        parts = dotted.replace("[", ".[").split(".")
        keys = [int(part[1:-1]) if part.startswith("[") else part for part in parts]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = {"sha256": digest}
    settings["export"] = sorted(settings.get("export") or [])
    text = json.dumps({"fleetvision": __version__, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------- the job
@dataclass
class Job:
    """A built job: the labeler (teacher inside), what each clip writes, the resolved config and its hash."""

    labeler: Any
    export: list[str]
    preview: bool
    config_yaml: str
    config_sha256: str
    images: Any = None  # autolabel.sources.ImageSetConfig (still images)

    def __post_init__(self) -> None:
        if self.images is None:
            from autolabel.sources import ImageSetConfig

            self.images = ImageSetConfig()

    @property
    def teacher_info(self) -> TeacherInfo:
        return self.labeler.teacher_info


def _job_classes(teacher: Any, classes: list[str], refine: Any, tracking3d: Any, where: str) -> list[str]:
    """The output classes: ``classes`` plus teacher classes outside it (appended with a warning); class names set in
    ``refine.rigid_classes`` / ``tracking3d.gates_m`` that no output class has are reported (defaults are not)."""
    from autolabel.offline import OfflineLabelConfig
    from autolabel.tracking3d import Tracker3DConfig
    from perception.labels import check_class_names

    classes = check_class_names(list(classes), where)
    source = getattr(teacher, "class_map_source", None) or f"teacher {type(teacher).__name__}"
    for name in getattr(teacher, "class_names", []):
        if name not in classes:
            classes.append(name)
            log.warning(
                "teacher class %r (from %s) is not in 'classes' %s (set in %s): labelled as class id %d; "
                "list it in 'classes' to choose its id",
                name,
                source,
                classes[:-1],
                where,
                len(classes) - 1,
            )
    checks = [
        ("refine.rigid_classes", refine.rigid_classes, OfflineLabelConfig().rigid_classes),
        ("tracking3d.gates_m", tuple(tracking3d.gates_m), tuple(Tracker3DConfig().gates_m)),
    ]
    for field_name, names, default in checks:
        for name in names if tuple(names) != tuple(default) else ():
            if name not in classes:
                log.warning(
                    "%s: class %r (set in %s) is not one of the job's classes %s: it has no effect",
                    field_name,
                    name,
                    where,
                    classes,
                )
    return check_class_names(classes, f"{where} with the classes of {source}")


def build_job(config: Any) -> Job:
    """Construct the teacher and the labeler a parsed job config describes (weights from LOCAL paths)."""
    import yaml

    from autolabel.labeler import ClipLabeler

    sections = job_sections(config)
    where = ", ".join(str(p) for p in (config.get("config") or []) if p is not None) or "the command line"
    if sections.teacher is None:
        raise ValueError("no teacher: pass --teacher PATH_OR_SPEC or a config with a 'teacher:' section")
    parser = job_parser()
    config_yaml = parser.dump(sections)
    document = yaml.safe_load(config_yaml)
    weights = {}
    for dotted, path in _weights_files(document["teacher"]):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{dotted}: weights file {path} not found")
        weights[dotted] = file_sha256(path)
    built = parser.instantiate(sections)
    teacher = built.teacher
    digests = sorted(set(weights.values()))
    weights_sha256 = (
        digests[0] if len(digests) == 1 else hashlib.sha256("+".join(digests).encode()).hexdigest() if digests else None
    )
    info = TeacherInfo(
        name=getattr(teacher, "name", "") or type(teacher).__name__,
        weights_sha256=weights_sha256 or getattr(teacher, "weights_sha256", None),
        predicts_3d=bool(getattr(teacher, "predicts_3d", False)),
    )
    classes = _job_classes(teacher, built.classes, built.refine, built.tracking3d, where)
    labeler = ClipLabeler(
        teacher=teacher,
        teacher_info=info,
        classes=classes,
        refine=built.refine,
        tracking3d=built.tracking3d,
        multicam=built.multicam,
        batch_size=built.batch_size,
        queue_frames=built.queue_frames,
        window_frames=built.window_frames,
        window_overlap=built.window_overlap,
    )
    sha = config_sha256(document, weights)
    return Job(labeler, list(built.export), bool(built.preview), config_yaml, sha, images=built.images)
