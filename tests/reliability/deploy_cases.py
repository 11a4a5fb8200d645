"""``deploy run`` cases: they need a model exported with fleetvision metadata and a clip of its rig (the tiny model
of tests/deploy/conftest.py), so they are built from those paths."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from corruptions import NOT_UTF8
from harness import Case, Outcome
from workspace import Workspace

QUICK = ["--fast", "--max-frames", "3"]


def _first_camera_video(clip: Path) -> Path:
    return sorted(p for p in (clip / "cameras").iterdir())[0]


def _run_case(
    label: str,
    model: Path,
    clip: Path,
    damage: Callable[[Path, Workspace], list[str]] | None,
    codes: tuple[int, ...],
    names: tuple[str, ...] = (),
    check: Callable[[Workspace, Outcome], str | None] | None = None,
    keeps_record: bool = False,
) -> Case:
    """``keeps_record``: a failed run may leave its (complete) summary.json saying what happened."""

    def build(workspace: Workspace) -> list[str]:
        copy = workspace.copy(clip, "clip")
        extra = damage(copy, workspace) if damage is not None else []
        return ["run", str(model), "--clip", str(copy), "--out", str(workspace.out / "run"), *QUICK, *extra]

    clean = codes != (0,) and not keeps_record
    return Case(f"deploy-run-clip:{label}", "deploy", build, codes, names=names, clean_out=clean, check=check)


def _write(name: str, content: bytes) -> Callable[[Path, Workspace], list[str]]:
    def damage(clip: Path, workspace: Workspace) -> list[str]:
        (clip / name).write_bytes(content)
        return []

    return damage


def _nan_time(clip: Path, workspace: Workspace) -> list[str]:
    lines = (clip / "frames.csv").read_text().splitlines()
    row = lines[2].split(",")
    row[1] = "nan"
    lines[2] = ",".join(row)
    (clip / "frames.csv").write_text("\n".join(lines) + "\n")
    return []


def _no_videos(clip: Path, workspace: Workspace) -> list[str]:
    shutil.rmtree(clip / "cameras")
    (clip / "cameras").mkdir()
    return []


def _one_video_missing(clip: Path, workspace: Workspace) -> list[str]:
    path = _first_camera_video(clip)
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    return []


def _unwritable_video(clip: Path, workspace: Workspace) -> list[str]:
    blocker = workspace.root / "video_parent"
    blocker.write_text("a file where the video's folder should be")
    return ["--video", str(blocker / "run.mp4")]


def _summary_lists_missing(workspace: Workspace, outcome: Outcome) -> str | None:
    return None if "missing" in outcome.output else "the summary does not say a camera was missing"


def _video_written(workspace: Workspace, outcome: Outcome) -> str | None:
    return None if (workspace.out / "run.mp4").is_file() else "--video was asked for but not written"


def run_cases(model: Path, clip: Path) -> list[Case]:
    """Broken clips and options through ``deploy run`` (``model`` has fleetvision metadata; ``clip`` its rig)."""
    return [
        _run_case("good", model, clip, None, (0,)),
        _run_case(
            "good-with-video", model, clip, lambda c, w: ["--video", str(w.out / "run.mp4")], (0,), check=_video_written
        ),
        _run_case("rig-binary", model, clip, _write("rig.yaml", NOT_UTF8), (2,), names=("rig.yaml",)),
        _run_case("frames-binary", model, clip, _write("frames.csv", NOT_UTF8), (2,), names=("frames.csv",)),
        _run_case("frames-nan", model, clip, _nan_time, (2,), names=("frames.csv",)),
        _run_case(
            "no-camera-videos", model, clip, _no_videos, (1,), names=("no frame was processed",), keeps_record=True
        ),
        _run_case("one-camera-missing", model, clip, _one_video_missing, (0,), check=_summary_lists_missing),
        _run_case("video-unwritable", model, clip, _unwritable_video, (1,), names=("run.mp4",), keeps_record=True),
        _run_case("start-after-end", model, clip, lambda c, w: ["--start-frame", "10000"], (1, 2), names=("frame",)),
        _run_case("negative-rate", model, clip, lambda c, w: ["--rate", "-20"], (2,), names=("--rate",)),
    ]
