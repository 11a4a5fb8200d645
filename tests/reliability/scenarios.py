"""Cases that need a history: a finished labelling resumed after its input or outputs changed, a second job on the
same label folder, batches with a few broken items, synth into a folder of other clips, an importer replacing a
good clip. Each is a ``Case`` of the harness (``build`` runs the earlier commands, the judged run is the last)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from corruptions import NOT_UTF8
from harness import Case, Outcome, run_tool
from workspace import Workspace, write_small_clip

BLOB_TEACHER = "class_path:autolabel_fakes.BlobTeacher"
TEACHER = ["--teacher", BLOB_TEACHER, "--no-progress"]


# ------------------------------------------------------------------------------------------------ autolabel resume
def _label(workspace: Workspace, inputs: Path, out: Path) -> None:
    outcome = run_tool("autolabel", [str(inputs), "--out", str(out), *TEACHER])
    assert outcome.code == 0, outcome.output


def _bmp_frames(folder: Path, frames: int = 6, offset: int = 0) -> Path:
    """An image-sequence input of BMP files (equal sizes, so a frame can be replaced by one of the same size)."""
    from autolabel_fakes import blob_frame

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        cv2.imwrite(str(folder / f"{index:06d}.bmp"), blob_frame(index, offset=offset))
    return folder


def _boxes(path: Path) -> object:
    document = json.loads(path.read_text())
    return document["classes"], document["frames"]


def _same_as_fresh(relative: str):
    """The resumed labels must equal a fresh labelling of the input as it is now (not stale, not mixed)."""

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        fresh = workspace.root / "fresh"
        _label(workspace, workspace.root / "inputs", fresh)
        resumed = workspace.out / "labels" / relative / "labels.json"
        if not resumed.is_file():
            return f"{resumed} missing after the rerun"
        if _boxes(resumed) != _boxes(fresh / relative / "labels.json"):
            return "the rerun kept labels that differ from a fresh labelling of the current input (stale labels)"
        shutil.rmtree(fresh)
        return None

    return check


def _resume_case(name: str, mutate, relative: str = "drive") -> Case:
    def build(workspace: Workspace) -> list[str]:
        inputs = workspace.root / "inputs"
        if relative == "frames":
            _bmp_frames(inputs / "frames")
        else:
            workspace.copy(workspace.templates.video, "inputs/drive.mp4")
        out = workspace.out / "labels"
        _label(workspace, inputs, out)
        mutate(workspace, inputs, out / relative)
        return [str(inputs), "--out", str(out), *TEACHER]

    return Case(f"resume:{name}", "autolabel", build, (0,), clean_out=False, check=_same_as_fresh(relative))


def _replace_video(workspace: Workspace, inputs: Path, labelled: Path) -> None:
    from autolabel_fakes import write_blob_video

    write_blob_video(inputs / "drive.mp4", frames=6, offset=60)


def _replace_frame_same_size_and_time(workspace: Workspace, inputs: Path, labelled: Path) -> None:
    from autolabel_fakes import blob_frame

    path = inputs / "frames" / "000003.bmp"
    stat = path.stat()
    image = blob_frame(3, offset=70)
    cv2.imwrite(str(path), image)
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _delete(name: str):
    def mutate(workspace: Workspace, inputs: Path, labelled: Path) -> None:
        (labelled / name).unlink()

    return mutate


def _truncate(name: str):
    def mutate(workspace: Workspace, inputs: Path, labelled: Path) -> None:
        data = (labelled / name).read_bytes()
        (labelled / name).write_bytes(data[: len(data) // 2])

    return mutate


def _edit_mot(workspace: Workspace, inputs: Path, labelled: Path) -> None:
    path = next(path for path in sorted((labelled / "mot").rglob("*.txt")) if path.stat().st_size)
    path.write_text(path.read_text().replace(",", ";", 3))


def _empty_labels(workspace: Workspace, inputs: Path, labelled: Path) -> None:
    document = json.loads((labelled / "labels.json").read_text())
    for frame in document["frames"]:
        frame["boxes2d"] = {}
    (labelled / "labels.json").write_text(json.dumps(document))


def _garbage(name: str):
    def mutate(workspace: Workspace, inputs: Path, labelled: Path) -> None:
        (labelled / name).write_bytes(NOT_UTF8)

    return mutate


@contextlib.contextmanager
def _second_job_context(workspace: Workspace):
    """A first job still running: it holds the label folder's lock file (autolabel.outputs.LOCK_FILE), as a job of
    this version does (an older version without a lock simply lets the second job write)."""
    path = workspace.out / "labels" / ".autolabel.lock"
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield path


def _second_job() -> Case:
    def build(workspace: Workspace) -> list[str]:
        inputs = workspace.root / "inputs"
        workspace.copy(workspace.templates.video, "inputs/drive.mp4")
        _label(workspace, inputs, workspace.out / "labels")
        _replace_video(workspace, inputs, workspace.out / "labels" / "drive")  # the second job would relabel it
        workspace.before = (workspace.out / "labels" / "drive" / "labels.json").read_bytes()
        return [str(inputs), "--out", str(workspace.out / "labels"), *TEACHER]

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        after = (workspace.out / "labels" / "drive" / "labels.json").read_bytes()
        return None if after == workspace.before else "the second job wrote into the label folder the first holds"

    return Case(
        "resume:second-job-same-out",
        "autolabel",
        build,
        (1,),
        names=("another autolabel job",),
        clean_out=False,
        check=check,
        context=_second_job_context,
    )


def resume_cases() -> list[Case]:
    return [
        _resume_case("replaced-video", _replace_video),
        _resume_case("replaced-frame-same-size-and-time", _replace_frame_same_size_and_time, relative="frames"),
        _resume_case("labels-deleted", _delete("labels.json")),
        _resume_case("labels-truncated", _truncate("labels.json")),
        _resume_case("labels-emptied", _empty_labels),
        _resume_case("export-edited", _edit_mot),
        _resume_case("done-garbage", _garbage("done")),
        _resume_case("done-deleted", _delete("done")),
        _second_job(),
    ]


# ------------------------------------------------------------------------------------------------ batches
def _broken_rig(clip: Path) -> None:
    (clip / "rig.yaml").write_bytes(NOT_UTF8)


def _text_rig(clip: Path) -> None:
    (clip / "rig.yaml").write_text("cameras:\n  - {name: front, width: wide, height: 48, K: x}\n")


def _corrupt_bev(clip: Path) -> None:
    (clip / "labels_bev.npz").write_bytes(b"PK\x03\x04" + NOT_UTF8)


def _nan_pose(clip: Path) -> None:
    lines = (clip / "poses.csv").read_text().splitlines()
    row = lines[2].split(",")
    row[1] = "nan"
    lines[2] = ",".join(row)
    (clip / "poses.csv").write_text("\n".join(lines) + "\n")


BATCH_BREAKS = {"c1_binary_rig": _broken_rig, "c2_text_rig": _text_rig, "c3_bev": _corrupt_bev, "c4_nan": _nan_pose}


def _batch(workspace: Workspace) -> Path:
    root = workspace.root / "clips"
    for name in ("c0_good", *BATCH_BREAKS, "c5_good"):
        workspace.copy(workspace.templates.clip_png, f"clips/{name}")
    for name, damage in BATCH_BREAKS.items():
        damage(root / name)
    return root


def _autolabel_batch() -> Case:
    def build(workspace: Workspace) -> list[str]:
        return [str(_batch(workspace)), "--out", str(workspace.out / "labels"), *TEACHER]

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        labels = workspace.out / "labels"
        failed = sorted(item["relative"] for item in json.loads((labels / "failures.json").read_text()))
        expected = ["c1_binary_rig", "c2_text_rig", "c4_nan"]  # the clip's own BEV maps are not an input
        if failed != expected:
            return f"failures.json lists {failed}, expected {expected}"
        missing = [n for n in ("c0_good", "c3_bev", "c5_good") if not (labels / n / "done").is_file()]
        return f"good clips not labelled: {missing}" if missing else None

    return Case("batch:autolabel", "autolabel", build, (3,), clean_out=False, check=check)


def _check_batch() -> Case:
    def build(workspace: Workspace) -> list[str]:
        return ["check", str(_batch(workspace))]

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        if "2 of 6 clips OK" not in outcome.output:
            return "not every clip of the batch was checked"
        unnamed = [name for name in BATCH_BREAKS if f"ERROR {workspace.root / 'clips' / name}" not in outcome.output]
        return f"broken clips not reported: {unnamed}" if unnamed else None

    return Case("batch:check", "perception", build, (1,), names=("c1_binary_rig", "labels_bev.npz"), check=check)


# ------------------------------------------------------------------------------------------------ synth
def _synth_twice(label: str, second: list[str]) -> Case:
    rig = Path(__file__).resolve().parents[2] / "configs" / "rigs"

    def build(workspace: Workspace) -> list[str]:
        small = workspace.root / "rig.yaml"
        write_small_clip(workspace.root / "rig_source", frames=1)
        shutil.copy(workspace.root / "rig_source" / "rig.yaml", small)
        common = ["synth", "--out", str(workspace.out / "data"), "--quiet", "--clips", "2"]
        first = run_tool("perception", [*common, "--rig", str(small), "--frames", "1"])
        assert first.code == 0, first.output
        workspace.before = _tree(workspace.out / "data")
        other_rig = str(next(rig.glob("*.yaml"))) if "--other-rig" in second else str(small)
        extra = [item for item in second if item != "--other-rig"]
        return [*common, "--rig", other_rig, *(extra if "--frames" in extra else ["--frames", "1", *extra])]

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        return None if _tree(workspace.out / "data") == workspace.before else "the existing clips were changed"

    return Case(f"synth-into-existing:{label}", "perception", build, (2,), names=("clip_0000",), clean_out=False,
                check=check)  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def synth_cases() -> list[Case]:
    return [
        _synth_twice("frames", ["--frames", "2"]),
        _synth_twice("seed", ["--seed", "5"]),
        _synth_twice("fps", ["--fps", "5"]),
        _synth_twice("rig", ["--other-rig"]),
        _synth_twice("format", ["--image-format", "png"]),
    ]


# ------------------------------------------------------------------------------------------------ nuScenes info
def write_info(root: Path, frames: int = 2, *, bbox: list[float] | None = None) -> Path:
    """A minimal mmdet3d v1.x nuScenes info file: one camera (64x48 JPEGs), ``frames`` samples, one car."""
    camera_axes = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # camera x, y, z in the ego frame (columns)
    cam2ego = np.eye(4)
    cam2ego[:3, :3], cam2ego[:3, 3] = camera_axes, [1.5, 0.0, 1.5]
    lidar2cam = np.linalg.inv(cam2ego)
    rng = np.random.default_rng(0)
    entries = []
    for index in range(frames):
        image = root / "samples" / "CAM_FRONT" / f"{index:03d}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        ego2global = np.eye(4)
        ego2global[0, 3] = 2.0 * index
        entries.append(
            {
                "token": f"sample{index}",
                "timestamp": 0.5 * index,
                "ego2global": ego2global.tolist(),
                "lidar_points": {"lidar2ego": np.eye(4).tolist()},
                "images": {
                    "CAM_FRONT": {
                        "img_path": f"samples/CAM_FRONT/{index:03d}.jpg",
                        "cam2img": [[60.0, 0, 32], [0, 60, 24], [0, 0, 1]],
                        "cam2ego": cam2ego.tolist(),
                        "lidar2cam": lidar2cam.tolist(),
                        "timestamp": 0.5 * index,
                    }
                },
                "instances": [
                    {
                        "bbox_3d": bbox or [10.0, 0.0, 0.8, 4.0, 1.8, 1.6, 0.0],
                        "bbox_label_3d": 0,
                        "velocity": [0.0, 0.0],
                        "instance_token": "car0",
                    }
                ],
            }
        )
    path = root / "infos.json"
    path.write_text(json.dumps({"metainfo": {"dataset": "nuscenes"}, "data_list": entries}))
    return path


def _truncate_jpeg(root: Path) -> None:
    image = root / "samples" / "CAM_FRONT" / "001.jpg"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])


def _import_case(label: str, damage, *, over_good: bool, bbox: list[float] | None = None) -> Case:
    def build(workspace: Workspace) -> list[str]:
        info = write_info(workspace.root / "nuscenes", bbox=bbox if not over_good else None)
        argv = ["import", "nuscenes", str(info), "--out", str(workspace.out / "clip")]
        if over_good:
            first = run_tool("perception", argv)
            assert first.code == 0, first.output
            workspace.before = _tree(workspace.out / "clip")
            write_info(workspace.root / "nuscenes", bbox=bbox)
        if damage is not None:
            damage(workspace.root / "nuscenes")
        return argv + (["--overwrite"] if over_good else [])

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        if over_good and _tree(workspace.out / "clip") != workspace.before:
            return "the good clip was replaced"
        return None

    return Case(f"import-nuscenes-check:{label}", "perception", build, (2,), names=("clip",), clean_out=not over_good,
                check=check)  # fmt: skip


def import_cases() -> list[Case]:
    nan_box = [float("nan"), 0.0, 0.8, 4.0, 1.8, 1.6, 0.0]
    flat_box = [10.0, 0.0, 0.8, 4.0, 0.0, 1.6, 0.0]
    return [
        _import_case("truncated-jpeg", _truncate_jpeg, over_good=False),
        _import_case("truncated-jpeg-overwrite", _truncate_jpeg, over_good=True),
        _import_case("nan-box", None, over_good=False, bbox=nan_box),
        _import_case("nan-box-overwrite", None, over_good=True, bbox=nan_box),
        _import_case("zero-width-box-overwrite", None, over_good=True, bbox=flat_box),
    ]


def scenario_cases() -> list[Case]:
    return resume_cases() + [_autolabel_batch(), _check_batch()] + synth_cases() + import_cases()
