"""The error boundary of the three CLIs, names that would be paths, writers confined to their output folder, and the
file modes of outputs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from perception.atomic import FILE_MODE, PathEscapeError, atomic_directory, atomic_write_text, path_inside
from perception.errors import EXIT_BAD_INPUT, EXIT_FAILED, InputError, cli_boundary
from perception.rig import Camera, RigError


# ------------------------------------------------------------------------------------------------ the boundary
def _raises(error: BaseException):
    def run(*args: object) -> int:
        raise error

    return run


def test_unexpected_error_is_one_line_with_the_debug_hint(capsys):
    assert cli_boundary("perception", _raises(ZeroDivisionError("division by zero")), ["synth"], ["synth"]) == 1
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("perception synth: internal error: ZeroDivisionError: division by zero")
    assert "rerun with --debug for the traceback" in err


def test_debug_prints_the_traceback(capsys):
    assert cli_boundary("deploy", _raises(KeyError("x")), ["bench", "--debug"], ["bench"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError" in err and "rerun with --debug" not in err


def test_expected_errors_exit_2_in_one_line(capsys):
    message = "rig.yaml: field 'cameras[0].K': expected a 3x3 matrix, found 'x'\n    hint: fix rig.yaml"
    assert cli_boundary("perception", _raises(InputError(message)), ["viz"], ["viz"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err == "perception viz: error: rig.yaml: field 'cameras[0].K': expected a 3x3 matrix, found 'x' hint: " \
        "fix rig.yaml\n"  # fmt: skip
    assert cli_boundary("autolabel", _raises(FileNotFoundError("nowhere.mp4")), []) == EXIT_BAD_INPUT
    assert cli_boundary("autolabel", _raises(PermissionError("out/labels")), []) == EXIT_FAILED


def test_argparse_exits_and_interrupts_become_exit_codes(capsys):
    assert cli_boundary("deploy", _raises(SystemExit(2)), []) == 2
    assert cli_boundary("deploy", _raises(KeyboardInterrupt()), []) == 130
    assert "interrupted" in capsys.readouterr().err


def test_every_tool_has_the_boundary(monkeypatch, capsys):
    """An unexpected error inside each tool's subcommand becomes one line and exit 1 (not a traceback)."""
    import autolabel.cli
    import deploy.cli
    import perception.check

    monkeypatch.setattr(perception.check, "main", _raises(ZeroDivisionError("check")))
    from perception.cli import main as perception_main

    assert perception_main(["check", "x"]) == 1
    monkeypatch.setattr(autolabel.cli, "_run_eval", _raises(ZeroDivisionError("eval")))
    assert autolabel.cli.main(["eval", "x", "--gt", "y"]) == 1
    monkeypatch.setattr(deploy.cli, "build_parser", _raises(ZeroDivisionError("parser")))
    assert deploy.cli.main(["bench", "x.onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("internal error: ZeroDivisionError") == 3 and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ names and paths
@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../x", "a/../../x", "..", ".", "", "a\x00b", "front,left", "x\ny", "-front", "a" * 65]
)
def test_camera_names_that_are_not_names_are_refused(name):
    with pytest.raises(RigError, match="field 'name'"):
        Camera(name, 64, 48, np.diag([60.0, 60.0, 1.0]))


@pytest.mark.parametrize("name", ["front", "CAM_FRONT", "cam0", "front_left.wide", "Color_0", "a-b"])
def test_camera_names_that_are_names_are_accepted(name):
    assert Camera(name, 64, 48, np.diag([60.0, 60.0, 1.0])).name == name


def test_path_inside_refuses_escapes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert path_inside(out, "mot", "front.txt") == out / "mot" / "front.txt"
    for parts in [("/etc/passwd",), ("..", "x"), ("mot", "../../x"), ("",), (".",), ("a", "..")]:
        with pytest.raises(PathEscapeError):
            path_inside(out, *parts)
    (out / "link").symlink_to(tmp_path)  # a symbolic link inside that points outside
    with pytest.raises(PathEscapeError, match="symbolic link"):
        path_inside(out, "link", "x.txt")


def test_exporters_never_write_outside_their_folder(tmp_path):
    """Even with a camera name that escapes (readers refuse those; this is the writers' own guard)."""
    from autolabel.exporters import ExportContext, export_all
    from perception.labels import Boxes2D, ClipLabels, FrameLabels

    outside = tmp_path / "important.txt"
    outside.write_text("keep")
    labels = ClipLabels(["car"], [FrameLabels(boxes2d={"x": Boxes2D(np.array([[1.0, 1, 5, 5]]), track_id=[1])})])
    for camera in ("../../important", str(tmp_path / "important")):
        context = ExportContext("clip", {camera: (64, 48)}, 10.0, 1)
        for exporter in ("mot", "cvat", "labelstudio"):
            with pytest.raises(PathEscapeError):
                export_all(labels, context, tmp_path / "out" / "clip", [exporter])
    assert outside.read_text() == "keep"


# ------------------------------------------------------------------------------------------------ file modes
def test_outputs_have_ordinary_permissions(tmp_path):
    """Atomic writers use private temporary files (0600); what they leave must have the mode open() would give."""
    from perception.video import VideoWriter

    text = atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_directory(tmp_path / "folder") as staging:
        (staging / "inside.txt").write_text("y")
    with VideoWriter(tmp_path / "v.mp4", 10.0) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(text.stat().st_mode) == FILE_MODE == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "v.mp4").stat().st_mode) == FILE_MODE


def test_synth_outputs_are_readable_by_others(tmp_path):
    from workspace import small_rig

    from perception.cli import main

    small_rig().save(tmp_path / "rig.yaml")
    assert main(["synth", "--rig", str(tmp_path / "rig.yaml"), "--out", str(tmp_path / "d"), "--clips", "1",
                 "--frames", "1", "--quiet"]) == 0  # fmt: skip
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    private = {name: oct(mode) for name, mode in modes.items() if not mode & 0o044}
    assert not private, private
    assert Path(tmp_path / "d" / "clip_0000" / "labels.json").is_file()
