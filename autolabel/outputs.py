"""Per-clip outputs on disk: atomic folder commit with a ``done`` marker, stale temp cleanup, job records, preview,
and the lock that keeps a second job out of a label folder.

A clip's files are written into a hidden temp folder ``.<name>.partial-<pid>-*`` beside the target and renamed into
place, so a killed run leaves either nothing or a finished folder; ``done`` is written last inside it and records:
the config hash, the input's fingerprint (its files' names, sizes and modification times, and a sha256 over their
contents) and every output file with its size and sha256. A rerun skips a clip only when all three still hold
(``why_not_done``): same config; the input's contents unchanged (hashed again on every run: a video replaced by
another of the same size and time is caught; hashing costs far less than labelling); every recorded output present
with its recorded bytes. Anything else relabels the clip.

``lock_label_folder``: an exclusive ``flock`` on ``LABEL_DIR/.autolabel.lock`` for the whole job (the file is removed
at the end); a second job on the same folder stops at once (``LabelFolderBusy``). The kernel drops the lock when the
holder exits, even killed, so a file left by a killed job does not block the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from autolabel.exporters import ExportContext, export_all
from autolabel.sources import ImageSet, Source
from perception.atomic import PathEscapeError, atomic_directory, atomic_write_json, atomic_write_text, path_inside
from perception.clip import DriveClip
from perception.errors import RunFailed
from perception.hashing import file_sha256
from perception.labels import Boxes2D, ClipLabels
from perception.video import image_files

__all__ = [
    "CONFIG_FILE",
    "DATASET_FOLDER",
    "DONE_FILE",
    "FAILURES_FILE",
    "IMAGES_FILE",
    "JOB_FILE",
    "LOCK_FILE",
    "LabelFolderBusy",
    "clean_stale_partials",
    "input_fingerprint",
    "is_done",
    "lock_label_folder",
    "why_not_done",
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


LOCK_FILE = ".autolabel.lock"


class LabelFolderBusy(RunFailed):
    """Another autolabel job holds the label folder's lock."""


@contextlib.contextmanager
def lock_label_folder(out_root: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``out_root`` for the block; ``LabelFolderBusy`` at once when another job holds it."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / LOCK_FILE
    handle = open(path, "a+b")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same_file = path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except BlockingIOError:
            same_file = None
        if not same_file:  # held, or removed by a job that just finished while we opened it: still busy
            raise LabelFolderBusy(
                f"{out_root}: another autolabel job is writing to this label folder (it holds {path}); wait for it "
                "to finish or choose another --out"
            )
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # while still locked: a job that opened it before sees it gone
    finally:
        handle.close()  # releases the lock


def input_files(source: Source) -> list[Path]:
    """The files an input's labels depend on: the video, the images of an image folder, or a clip's rig.yaml,
    frames.csv, poses.csv and camera files (its own labels are not read by the labeller)."""
    path = Path(source.path)
    if source.kind == "video" or path.is_file():  # a video, or one still image
        return [path]
    if source.kind in ("images", "stills"):
        marker = path / "frames.csv"  # an image sequence's timestamps
        return image_files(path) + ([marker] if marker.is_file() else [])
    files = [path / name for name in ("rig.yaml", "frames.csv", "poses.csv") if (path / name).is_file()]
    cameras = path / "cameras"
    if cameras.is_dir():
        files += sorted(p for p in cameras.rglob("*") if p.is_file())
    return files


def input_fingerprint(source: Source, *, content: bool = True) -> dict[str, Any]:
    """``{files, bytes, stat_sha256[, content_sha256]}`` of an input: a hash over (name, size, mtime) of its files
    and, with ``content``, a hash over their bytes."""
    root = Path(source.path) if Path(source.path).is_dir() else Path(source.path).parent
    rows, content_hash = [], hashlib.sha256()
    for path in input_files(source):
        stat = path.stat()
        name = path.relative_to(root).as_posix()
        rows.append([name, stat.st_size, stat.st_mtime_ns])
        if content:
            content_hash.update(f"{name}\0{file_sha256(path)}\0".encode())
    fingerprint: dict[str, Any] = {
        "files": len(rows),
        "bytes": sum(row[1] for row in rows),
        "stat_sha256": hashlib.sha256(json.dumps(rows).encode()).hexdigest(),
    }
    if content:
        fingerprint["content_sha256"] = content_hash.hexdigest()
    return fingerprint


def _output_records(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative name: {size, sha256}} of every file under ``folder``."""
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def why_not_done(folder: Path, config_sha256: str, source: Source | None = None) -> str | None:
    """None when ``folder`` holds finished labels of this config and of the input as it is now; else the reason to
    (re)label: no marker, another config, the input changed, an output missing or changed."""
    marker_path = Path(folder) / DONE_FILE
    try:
        marker = json.loads(marker_path.read_text())
    except FileNotFoundError:
        return "not labelled yet"
    except (OSError, ValueError) as error:
        return f"{marker_path}: unreadable done marker ({error})"
    if not isinstance(marker, dict) or marker.get("config_sha256") != config_sha256:
        return "labelled with another job config"
    recorded, outputs = marker.get("input_fingerprint"), marker.get("outputs")
    if not isinstance(recorded, dict) or not isinstance(outputs, dict) or not outputs:
        return "done marker of an older version (no input fingerprint or output hashes)"
    if source is not None:
        try:
            now = input_fingerprint(source)
        except OSError as error:
            return f"{source.path}: cannot fingerprint the input ({error})"
        if now["content_sha256"] != recorded.get("content_sha256"):
            touched = "" if now["stat_sha256"] != recorded.get("stat_sha256") else " (same sizes and times)"
            return f"{source.path}: the input's contents changed since it was labelled{touched}"
    for name, entry in outputs.items():
        try:
            path = path_inside(folder, name)
            size_ok = isinstance(entry, dict) and path.stat().st_size == entry.get("size")
            if not size_ok or file_sha256(path) != entry.get("sha256"):
                return f"{path}: changed since it was written"
        except FileNotFoundError:
            return f"{Path(folder) / name}: missing (recorded in {marker_path})"
        except (OSError, PathEscapeError) as error:
            return f"{Path(folder) / name}: cannot be checked ({error})"
    return None


def is_done(folder: Path, config_sha256: str, source: Source | None = None) -> bool:
    """True when ``why_not_done`` finds nothing to redo."""
    return why_not_done(folder, config_sha256, source) is None


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
    fingerprint: dict[str, Any] | None = None,
) -> None:
    """Write every output of one clip into a hidden temp folder beside ``target``, then rename it into place.

    ``fingerprint`` (``input_fingerprint`` taken before labelling; computed now when None) and the size and sha256
    of every output go into the ``done`` marker, written last."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = fingerprint or input_fingerprint(source)
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
                "input_fingerprint": fingerprint,
                "outputs": _output_records(temporary),
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
