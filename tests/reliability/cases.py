"""The table of reliability cases: broken clips through every command that reads them, plus broken job configs,
models, budgets and command lines. ``all_cases()`` is the full table (``benchmarks/bench_reliability.py`` runs it);
the test suite runs the fast commands per case and the slow ones once over a whole batch.

Exit statuses are the documented ones (``perception.errors``): 1 when ``perception check`` finds a bad clip, 2 bad
input, 3 an ``autolabel`` batch with failed inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from corruptions import CLIP_CORRUPTIONS, NAMED_FILE, NOT_UTF8
from harness import Case, Outcome
from workspace import Workspace

BLOB_TEACHER = "class_path:autolabel_fakes.BlobTeacher"

# the file kinds each command reads (a command is not expected to fail on a file it does not read)
READS = {
    "check": {"rig", "frames", "poses", "labels", "video", "clip"},
    "viz-png": {"rig", "frames", "poses", "labels", "video", "clip"},
    "viz-mp4": {"rig", "frames", "poses", "labels", "video", "clip"},
    "export-foxglove": {"rig", "frames", "poses", "labels", "video", "clip"},
    "autolabel": {"rig", "frames", "poses", "video", "clip"},
}
# corruptions that only some frames show: the PNG picture of frame 0 does not decode them
NOT_IN_FRAME_0 = {"images-last-garbage"}


def _failures_name(clip_name: str) -> Callable[[Workspace, Outcome], str | None]:
    """An autolabel batch must list the broken input in failures.json."""

    def check(workspace: Workspace, outcome: Outcome) -> str | None:
        path = workspace.out / "labels" / "failures.json"
        if not path.is_file():
            return "no failures.json"
        failed = [item["relative"] for item in json.loads(path.read_text())]
        return None if any(clip_name in item for item in failed) else f"failures.json does not list {clip_name}"

    return check


def clip_case(name: str, command: str) -> Case:
    """Corruption ``name`` of ``CLIP_CORRUPTIONS`` through ``command``."""
    kind, storage, mutate = CLIP_CORRUPTIONS[name]
    broken = kind in READS[command] and not (command == "viz-png" and name in NOT_IN_FRAME_0)

    def build(workspace: Workspace) -> list[str]:
        clip = workspace.clip(storage)
        mutate(clip, workspace)
        out = workspace.out
        if command == "check":
            return ["check", str(clip)]
        if command == "viz-png":
            return ["viz", str(clip), "--out", str(out / "frame.png")]
        if command == "viz-mp4":
            return ["viz", str(clip), "--out", str(out / "clip.mp4")]
        if command == "export-foxglove":
            return ["export", "foxglove", str(clip), "--out", str(out / "clip.mcap"), "--no-progress"]
        return [str(clip), "--out", str(out / "labels"), "--teacher", BLOB_TEACHER, "--no-progress"]

    tool = "autolabel" if command == "autolabel" else "perception"
    if command == "check":
        codes = (1,) if broken else (0,)
    elif command == "autolabel":  # a batch: the broken clip is listed in failures.json; no input at all is bad input
        codes = ((2,) if kind == "clip" else (3,)) if broken else (0,)
    else:
        codes = (2,) if broken else (0,)
    return Case(
        f"{command}:{name}",
        tool,
        build,
        codes,
        names=(NAMED_FILE[kind],) if broken else (),
        clean_out=command != "autolabel",
        check=_failures_name("clip") if command == "autolabel" and broken and kind != "clip" else None,
    )


# ------------------------------------------------------------------------------------------------ other inputs
def _job_config(index: int, text: str | bytes) -> Case:
    def build(workspace: Workspace) -> list[str]:
        config = workspace.root / "job.yaml"
        config.write_bytes(text if isinstance(text, bytes) else text.encode())
        video = workspace.copy(workspace.templates.video)
        return [str(video), "--out", str(workspace.out / "labels"), "-c", str(config), "--no-progress"]

    names = ("missing.onnx",) if "missing.onnx" in str(text) else ("job.yaml",)
    return Case(f"autolabel-config:{index}:{str(text)[:40]!r}", "autolabel", build, (2,), names=names)


JOB_CONFIGS = [
    b"",
    NOT_UTF8,
    "- teacher\n- classes\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nbogus_section: 1\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nbatch_size: many\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nbatch_size: -3\n",
    "teacher: {class_path: no.such.Module}\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nclasses: car\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nclasses: ['../../escape', car]\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nexport: [coco, bogus]\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nrefine: missing_preset.yaml\n",
    "teacher: {class_path: autolabel_fakes.BlobTeacher}\nrefine: {min_length: lots}\n",
    "teacher: {kind: onnx, path: x.onnx}\n",
    "teacher: [\n",
    "!!python/object/apply:os.system ['echo owned']\n",
    "teacher:\n  class_path: autolabel.teachers.onnx_yolox.OnnxYoloxTeacher\n  init_args: {model_path: missing.onnx}\n",
]


def _model_case(command: str, model: Callable[[Workspace], Path], label: str, codes=(2,), names=None) -> Case:
    def build(workspace: Workspace) -> list[str]:
        path = model(workspace)
        out = workspace.out
        if command == "bench":
            return ["bench", str(path), "--out", str(out), "--min-runs", "2", "--max-runs", "3", "--warmup-runs", "1",
                    "--min-duration-s", "0", "--warmup-s", "0", "--throughput-s", "0", "--profile-runs", "0",
                    "--no-plot"]  # fmt: skip
        if command == "quantize":
            clip = workspace.clip("png")
            return ["quantize", str(path), "--calib", str(clip), "--out", str(out / "model.int8.onnx")]
        clip = workspace.clip("png")
        return ["run", str(path), "--clip", str(clip), "--out", str(out / "run"), "--fast"]

    return Case(f"deploy-{command}:{label}", "deploy", build, codes, names=names or ("model.onnx",))


def _file(name: str, content: bytes) -> Callable[[Workspace], Path]:
    def make(workspace: Workspace) -> Path:
        path = workspace.root / name
        path.write_bytes(content)
        return path

    return make


def _truncated_model(workspace: Workspace) -> Path:
    data = workspace.templates.model_static.read_bytes()
    path = workspace.root / "model.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _folder_model(workspace: Workspace) -> Path:
    path = workspace.root / "model.onnx"
    path.mkdir()
    return path


BAD_MODELS: dict[str, Callable[[Workspace], Path]] = {
    "missing": lambda ws: ws.root / "model.onnx",
    "empty": _file("model.onnx", b""),
    "text": _file("model.onnx", b"this is not a model\n"),
    "binary": _file("model.onnx", NOT_UTF8 * 50),
    "pytorch-zip": _file("model.onnx", b"PK\x03\x04" + b"\x00" * 200),
    "truncated": _truncated_model,
    "folder": _folder_model,
}


def _budget_case(text: str | bytes) -> Case:
    def build(workspace: Workspace) -> list[str]:
        budget = workspace.root / "budget.yaml"
        budget.write_bytes(text if isinstance(text, bytes) else text.encode())
        model = workspace.copy(workspace.templates.model_static, "model.onnx")
        return ["bench", str(model), "--budget", str(budget), "--out", str(workspace.out), "--min-runs", "2",
                "--max-runs", "2", "--warmup-runs", "0", "--min-duration-s", "0", "--warmup-s", "0",
                "--throughput-s", "0", "--profile-runs", "0", "--no-plot"]  # fmt: skip

    return Case(f"deploy-budget:{str(text)[:30]!r}", "deploy", build, (2,), names=("budget.yaml",))


BUDGETS = [
    b"",
    NOT_UTF8,
    "p99_ms: fast\n",
    "p99_ms: -5\n",
    "p99_ms: .nan\n",
    "[1, 2]\n",
    "name: x\n",
    "p99_ms: 10\nbogus: 1\n",
    "p99_ms: [\n",
]


def _dynamic_case(label: str, extra: list[str], codes: tuple[int, ...], names: tuple[str, ...] = ()) -> Case:
    def build(workspace: Workspace) -> list[str]:
        model = workspace.copy(workspace.templates.model_dynamic, "model.onnx")
        return ["bench", str(model), "--out", str(workspace.out), "--min-runs", "2", "--max-runs", "2",
                "--warmup-runs", "0", "--min-duration-s", "0", "--warmup-s", "0", "--throughput-s", "0",
                "--profile-runs", "0", "--no-plot", *extra]  # fmt: skip

    return Case(f"deploy-dynamic:{label}", "deploy", build, codes, names=names, clean_out=codes != (0,))


def _run_args_case(label: str, extra: list[str], names: tuple[str, ...]) -> Case:
    def build(workspace: Workspace) -> list[str]:
        model = workspace.copy(workspace.templates.model_static, "model.onnx")
        return ["run", str(model), "--clip", str(workspace.clip("png")), "--out", str(workspace.out / "run"), *extra]

    return Case(f"deploy-run-args:{label}", "deploy", build, (2,), names=names)


def _synth_case(label: str, build_rig: Callable[[Workspace], Path], names: tuple[str, ...]) -> Case:
    def build(workspace: Workspace) -> list[str]:
        return ["synth", "--rig", str(build_rig(workspace)), "--out", str(workspace.out / "data"), "--clips", "1",
                "--frames", "1", "--quiet"]  # fmt: skip

    return Case(f"synth:{label}", "perception", build, (2,), names=names)


def _rig_text(text: str | bytes) -> Callable[[Workspace], Path]:
    def make(workspace: Workspace) -> Path:
        path = workspace.root / "rig.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return make


def _escaping_rig(workspace: Workspace) -> Path:
    clip = workspace.clip("png")
    text = (clip / "rig.yaml").read_text().replace("name: front", f"name: {workspace.sentinel.with_suffix('')}")
    return _rig_text(text)(workspace)


def _import_video_case(label: str, extra: list[str], video: Callable[[Workspace], Path], names: tuple[str, ...]):
    def build(workspace: Workspace) -> list[str]:
        return ["import", "video", str(video(workspace)), "--out", str(workspace.out / "clip"), *extra]

    return Case(f"import-video:{label}", "perception", build, (2,), names=names)


def _nuscenes_info_case(label: str, content: bytes, suffix: str = ".json") -> Case:
    def build(workspace: Workspace) -> list[str]:
        info = workspace.root / f"infos{suffix}"
        info.write_bytes(content)
        return ["import", "nuscenes", str(info), "--out", str(workspace.out / "clip")]

    return Case(f"import-nuscenes:{label}", "perception", build, (2,), names=(f"infos{suffix}",))


def _finished_labels(workspace: Workspace) -> Path:
    """A label folder ``labels/clip`` holding a good clip's labels and a ``done`` marker (eval and review read only
    finished labels)."""
    labels = workspace.root / "labels" / "clip"
    labels.mkdir(parents=True)
    clip = workspace.clip("png")
    for name in ("labels.json", "labels_bev.npz"):
        (labels / name).write_bytes((clip / name).read_bytes())
    (labels / "done").write_text("{}")
    return labels


def _eval_case(label: str, mutate: Callable[[Path], None], names: tuple[str, ...]) -> Case:
    def build(workspace: Workspace) -> list[str]:
        mutate(_finished_labels(workspace) / "labels.json")
        return ["eval", str(workspace.root / "labels"), "--gt", str(workspace.root), "--out",
                str(workspace.out / "metrics.json")]  # fmt: skip

    return Case(f"autolabel-eval:{label}", "autolabel", build, (2,), names=names)


def _review_case(label: str, mutate: Callable[[Path], None], names: tuple[str, ...]) -> Case:
    def build(workspace: Workspace) -> list[str]:
        mutate(_finished_labels(workspace))
        return ["review", str(workspace.root / "labels"), "--out", str(workspace.out / "review"), "--no-pictures"]

    return Case(f"autolabel-review:{label}", "autolabel", build, (2,), names=names)


def _calibrate_case(label: str, write: Callable[[Path], None], extra: list[str], names: tuple[str, ...]) -> Case:
    def build(workspace: Workspace) -> list[str]:
        images = workspace.root / "chessboards"
        images.mkdir()
        write(images)
        return ["calibrate", str(images), "--out", str(workspace.out / "camera.yaml"), *extra]

    return Case(f"calibrate:{label}", "perception", build, (2,), names=names)


def _garbage_images(folder: Path) -> None:
    for index in range(4):
        (folder / f"{index}.png").write_bytes(NOT_UTF8 * 5)


def _blank_images(folder: Path) -> None:
    import cv2
    import numpy as np

    for index in range(4):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((48, 64), 128, np.uint8))


def _rosbag_case(label: str, content: bytes, name: str) -> Case:
    def build(workspace: Workspace) -> list[str]:
        bag = workspace.root / name
        bag.write_bytes(content)
        return ["import", "rosbag", str(bag), "--out", str(workspace.out / "clip"), "--no-progress"]

    return Case(f"import-rosbag:{label}", "perception", build, (2,), names=(name,))


def _detections_case(label: str, text: str) -> Case:
    def build(workspace: Workspace) -> list[str]:
        detections = workspace.root / "detections.jsonl"
        detections.write_text(text)
        return ["export", "foxglove", str(workspace.clip("png")), "--out", str(workspace.out / "x.mcap"),
                "--detections", str(detections), "--no-progress"]  # fmt: skip

    return Case(f"export-detections:{label}", "perception", build, (2,), names=("detections.jsonl",))


def other_cases() -> list[Case]:
    """Broken job configs, models, budgets, command lines, synth rigs, import inputs."""
    cases = [_job_config(index, text) for index, text in enumerate(JOB_CONFIGS)]
    for command in ("bench", "run", "quantize"):
        cases += [_model_case(command, model, label) for label, model in BAD_MODELS.items()]
    cases += [_budget_case(text) for text in BUDGETS]
    cases += [
        _dynamic_case("no-dims", [], (2,), names=("height",)),
        _dynamic_case("unknown-dim", ["--dim", "heigth=8", "--dim", "width=8"], (2,), names=("heigth",)),
        _dynamic_case("dims-given", ["--dim", "height=8", "--dim", "width=8"], (0,)),
        _dynamic_case("bad-default", ["--default-dim", "0", "--dim", "height=8", "--dim", "width=8"], (2,)),
    ]
    cases += [
        _run_args_case("negative-rate", ["--rate", "-5"], ("--rate",)),
        _run_args_case("zero-rate", ["--rate", "0"], ("--rate",)),
        _run_args_case("nan-rate", ["--rate", "nan"], ("--rate",)),
        _run_args_case("negative-max-frames", ["--max-frames", "-1"], ("--max-frames",)),
    ]
    cases += [
        _synth_case("binary-rig", _rig_text(NOT_UTF8), ("rig.yaml",)),
        _synth_case("empty-rig", _rig_text(""), ("rig.yaml",)),
        _synth_case("escaping-camera-name", _escaping_rig, ("rig.yaml",)),
        _synth_case("missing-rig", lambda ws: ws.root / "nowhere.yaml", ("nowhere.yaml",)),
    ]
    cases += [
        _import_video_case("garbage", [], _file("drive.mp4", NOT_UTF8 * 100), ("drive.mp4",)),
        _import_video_case("empty", [], _file("drive.mp4", b""), ("drive.mp4",)),
        _import_video_case(
            "escaping-name", ["--name", "../../outside/important"], lambda ws: ws.copy(ws.templates.video), ("name",)
        ),
        _import_video_case(
            "binary-camera-yaml",
            ["--camera-yaml", "camera.yaml"],
            lambda ws: (ws.root / "camera.yaml").write_bytes(NOT_UTF8) and ws.copy(ws.templates.video),
            ("camera.yaml",),
        ),
    ]
    cases += [
        _nuscenes_info_case("binary", NOT_UTF8),
        _nuscenes_info_case("not-json", b"{infos: "),
        _nuscenes_info_case("list", b"[1, 2]"),
        _nuscenes_info_case("empty-infos", b'{"infos": []}'),
        _nuscenes_info_case("wrong-types", b'{"infos": [{"cams": 5}]}'),
        _nuscenes_info_case("malicious-pickle", b"cos\nsystem\n(S'echo owned'\ntR.", suffix=".pkl"),
        _nuscenes_info_case("truncated-pickle", b"\x80\x04\x95", suffix=".pkl"),
    ]
    cases += [
        _eval_case("binary-labels", lambda path: path.write_bytes(NOT_UTF8), ("labels.json",)),
        _eval_case("nan-box", lambda path: path.write_text(path.read_text().replace("8.0", "NaN", 1)), ("labels",)),
    ]
    cases += [
        _review_case("binary-labels", lambda d: (d / "labels.json").write_bytes(NOT_UTF8), ("labels.json",)),
        _review_case(
            "class-escape",
            lambda d: (d / "labels.json").write_text((d / "labels.json").read_text().replace('"car"', '"../../car"')),
            ("classes",),
        ),
    ]
    cases += [
        _calibrate_case("garbage-images", _garbage_images, [], ("chessboards",)),
        _calibrate_case("no-chessboard", _blank_images, [], ("chessboards",)),
        _calibrate_case("bad-pattern", _blank_images, ["--pattern", "9by6"], ("--pattern",)),
        _calibrate_case("escaping-name", _blank_images, ["--name", "../../x"], ("name",)),
    ]
    cases += [
        _rosbag_case("garbage-bag", NOT_UTF8 * 20, "drive.bag"),
        _rosbag_case("empty-bag", b"", "drive.bag"),
        _rosbag_case("garbage-mcap", NOT_UTF8 * 20, "drive.mcap"),
        _rosbag_case("truncated-bag-header", b"#ROSBAG V2.0\n\x00\x10", "drive.bag"),
    ]
    cases += [
        _detections_case("not-json", "{index: 0\n"),
        _detections_case("wrong-types", '{"index": "zero", "boxes3d": 5}\n'),
        _detections_case("nan-box", '{"index": 0, "boxes3d": [{"center": [NaN, 0, 0]}]}\n'),
        _detections_case("binary", NOT_UTF8.decode("latin-1")),
    ]
    return cases


FAST_COMMANDS = ("check", "viz-png")
SLOW_COMMANDS = ("viz-mp4", "export-foxglove", "autolabel")


def clip_cases(commands=FAST_COMMANDS + SLOW_COMMANDS) -> list[Case]:
    return [clip_case(name, command) for name in CLIP_CORRUPTIONS for command in commands]


def all_cases() -> list[Case]:
    from scenarios import scenario_cases

    return clip_cases() + other_cases() + scenario_cases()
