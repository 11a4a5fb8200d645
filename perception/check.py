"""``perception check CLIP...``: deep validation of drive clips with errors a user can act on.

Checks, in order: the folder and its files; ``rig.yaml`` (shapes, focal lengths, rotations, names); ``frames.csv``
(columns, index, increasing timestamps) and each camera's file; every frame of every camera decodes (truncation is
reported with the last good frame, and mp4 containers are inspected to say why); ``labels.json`` (schema, cameras,
classes, frame count, finite boxes). Camera times far from the frame time are reported as warnings.
Exit status 1 when any clip has an error (every clip is checked: one broken clip never stops the others), 2 when a
path given is neither a clip nor a folder holding clips.
"""

from __future__ import annotations

import argparse
import struct
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HINTS = {
    "rig.yaml": "fix rig.yaml (each camera needs name, width, height, K 3x3, distortion, ego_from_camera)",
    "frames.csv": "frames.csv needs one row per frame: index,timestamp,x,y,z,qw,qx,qy,qz,t_<camera>... "
    "with increasing times",
    "video": "re-export this camera from its source or re-run the import; a clip's cameras must all hold every frame",
    "labels": "regenerate labels.json for this clip, or fix the named field",
}
MAX_CAMERA_SKEW_S = 0.5


@dataclass
class CheckReport:
    """What ``check_clip`` found: errors (the clip is unusable) and warnings (suspicious but usable)."""

    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def _atoms(data: bytes, start: int, end: int):
    """Yield (type, offset, size, header) of the MP4 atoms in data[start:end]."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1 and offset + 16 <= end:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        yield kind.decode("latin-1"), offset, size, header
        if size < header:
            return
        offset += size


def diagnose_mp4(path: Path) -> str | None:
    """Say why an MP4/MOV container is unreadable (truncated atom, missing moov index), or None if its atoms look
    whole."""
    if path.suffix.lower() not in (".mp4", ".mov", ".m4v") or not path.is_file():
        return None
    data = path.read_bytes()
    kinds = []
    for kind, offset, size, _ in _atoms(data, 0, len(data)):
        kinds.append(kind)
        if offset + size > len(data):
            missing = offset + size - len(data)
            note = (
                f"{path}: file is truncated: atom '{kind}' at byte {offset} declares {size} bytes, "
                f"{missing} are missing"
            )
            if kind == "mdat" and "moov" not in kinds:
                note += (
                    "; the 'moov' index that follows the media data is lost, so no frame can be located "
                    "(last good frame: none)"
                )
            return note
    if "mdat" in kinds and "moov" not in kinds:
        return (
            f"{path}: the 'moov' index atom is missing (writer did not finish?): no frame can be located "
            "(last good frame: none)"
        )
    return None


def _hint(kind: str) -> str:
    return f"\n    hint: {HINTS[kind]}"


def check_clip(path: str | Path, deep: bool = True, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Validate one clip folder; ``deep`` decodes every frame of every camera (``progress(n)`` is called with the
    number of frames decoded, for a progress bar)."""
    from perception.clip import ClipError, DriveClip, camera_source
    from perception.rig import Rig, RigError
    from perception.video import VideoError, VideoReader, image_file_problem, image_files

    path = Path(path)
    report = CheckReport(path)
    if not path.is_dir():
        report.errors.append(f"{path}: not a folder (a clip is a folder holding rig.yaml, frames.csv and cameras/)")
        return report
    for name in ("rig.yaml", "frames.csv"):
        if not (path / name).is_file():
            report.errors.append(f"{path / name}: file not found{_hint(name)}")
    if report.errors:
        return report
    try:
        rig = Rig.load(path / "rig.yaml")
    except RigError as error:
        report.errors.append(f"{error}{_hint('rig.yaml')}")
        return report
    try:
        clip = DriveClip.open(path)
    except ClipError as error:
        message = str(error)
        kind = "frames.csv" if "frames.csv" in message else "labels" if "labels" in message else "video"
        report.errors.append(f"{message}{_hint(kind)}")
        for camera in rig.names:
            source = camera_source(path, camera)
            note = diagnose_mp4(source) if source is not None else None
            if note and note not in message:
                report.errors.append(note)
        return report
    for camera in clip.rig.names:
        source = clip.sources[camera]
        if not deep:
            continue
        damaged = [image_file_problem(p) for p in image_files(source)] if source.is_dir() else []
        damaged = [problem for problem in damaged if problem]
        if damaged:
            more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
            report.errors.append(f"{damaged[0]}{more}{_hint('video')}")
            continue
        decoded = 0
        try:
            with VideoReader(source) as reader:
                for _ in reader:
                    decoded += 1
                    if progress is not None and decoded % 16 == 0:
                        progress(16)
            if progress is not None:
                progress(decoded % 16)
        except VideoError as error:
            note = diagnose_mp4(source)
            report.errors.append(f"{error}{(chr(10) + '    ' + note) if note else ''}{_hint('video')}")
            continue
        if decoded != clip.num_frames:
            report.errors.append(
                f"{source}: decoded {decoded} frames but frames.csv lists {clip.num_frames} "
                f"(last good frame: {decoded - 1 if decoded else 'none'}){_hint('video')}"
            )
    for camera, times in clip.camera_timestamps.items():
        skew = np.abs(times - clip.timestamps)
        if skew.max() > MAX_CAMERA_SKEW_S:
            i = int(np.argmax(skew))
            report.warnings.append(
                f"{path / 'frames.csv'}: column 't_{camera}' is {skew[i]:.3f} s from the frame time at frame {i}"
            )
    if not np.all(np.isfinite(clip.world_from_ego)):
        report.errors.append(f"{path / 'frames.csv'}: pose columns hold non-finite values{_hint('frames.csv')}")
    try:
        labels = clip.labels
    except ClipError as error:
        report.errors.append(f"{error}{_hint('labels')}")
        labels = None
    boxes = 0
    if labels is not None:
        for index, frame in enumerate(labels.frames):
            table = frame.boxes3d
            boxes += len(table)
            if len(table) and not (np.all(np.isfinite(table.center)) and np.all(np.isfinite(table.yaw))):
                report.errors.append(
                    f"{path / 'labels.json'}: frames[{index}].boxes3d: non-finite centre or yaw{_hint('labels')}"
                )
            if len(table) and np.any(table.size <= 0):
                report.errors.append(
                    f"{path / 'labels.json'}: frames[{index}].boxes3d.size: expected positive l, w, h, found "
                    f"{table.size[table.size.min(axis=1) <= 0].tolist()[:3]}"
                )
    report.summary = f"{clip.num_frames} frames, cameras {clip.rig.names}, " + (
        f"labels: {len(labels.classes)} classes, {boxes} 3D boxes ({labels.provenance.get('source', '?')})"
        if labels
        else "no labels"
    )
    return report


def _looks_like_clip(folder: Path) -> bool:
    """A clip, whole or broken: the folder holds rig.yaml or frames.csv."""
    return (folder / "rig.yaml").exists() or (folder / "frames.csv").exists()


def _clip_folders(root: Path) -> list[Path]:
    """Every clip folder under ``root`` (whole or broken, see ``_looks_like_clip``), not descending into clips."""
    found = []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and not p.name.startswith(".")):
        if _looks_like_clip(folder) and not any(parent in found for parent in folder.parents):
            found.append(folder)
    return found


def main(argv: list[str] | None = None) -> int:
    """``perception check CLIP... [--quick]``; prints one block per clip, exit 1 if any clip has errors."""
    parser = argparse.ArgumentParser(
        prog="perception check", description="Validate drive clips and report what is wrong."
    )
    parser.add_argument("clips", nargs="+", type=Path, help="clip folders, or folders searched for clips")
    parser.add_argument("--quick", action="store_true", help="skip decoding every frame")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (decoded frames)")
    args = parser.parse_args(argv)
    paths: list[Path] = []
    for item in args.clips:
        found = [item] if _looks_like_clip(item) or not item.is_dir() else _clip_folders(item)
        paths.extend(found or [item])
    from tqdm import tqdm

    bad = 0
    bar = tqdm(total=None, desc="decoding", unit="frame", disable=args.no_progress or args.quick, leave=False)
    for clip_path in paths:
        bar.set_postfix_str(clip_path.name)
        try:
            report = check_clip(clip_path, deep=not args.quick, progress=bar.update)
        except Exception as error:  # one clip's unexpected failure is that clip's error, the others are checked
            from perception.errors import debug_enabled, is_expected, one_line

            if debug_enabled():
                traceback.print_exc()
            report = CheckReport(clip_path)
            kind = "" if is_expected(error) else "internal error (rerun with --debug for the traceback): "
            report.errors.append(f"{clip_path}: {kind}{type(error).__name__}: {one_line(error)}")
        lines = [f"OK    {clip_path}: {report.summary}"] if report.ok else [f"ERROR {clip_path}:"]
        bad += not report.ok
        lines += [f"  - {error}" for error in report.errors] + [f"  warning: {w}" for w in report.warnings]
        for line in lines:
            tqdm.write(line)
    bar.close()
    print(f"{len(paths) - bad} of {len(paths)} clips OK")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
