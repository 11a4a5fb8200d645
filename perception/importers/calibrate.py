"""``perception calibrate``: intrinsics and radial-tangential distortion from chessboard images (OpenCV).

Finds the inner corners (``findChessboardCorners`` + ``cornerSubPix``), runs ``calibrateCamera``, prints the
per-image reprojection error and the rejected images, and writes a rig.yaml camera entry (K, radtan k1 k2 p1 p2 k3,
image size; ``ego_from_camera`` is identity until the camera's mounting is measured).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perception.errors import InputError
from perception.rig import Camera, Rig


class CalibrationError(InputError):
    """Calibration cannot run (too few usable images, mixed sizes, bad pattern)."""


@dataclass
class CalibrationResult:
    """Camera intrinsics (pixels), radtan distortion, RMS reprojection error (pixels) and per-image diagnostics."""

    camera: Camera
    rms: float
    per_image_error: dict[str, float]
    rejected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def parse_pattern(text: str) -> tuple[int, int]:
    """'9x6' -> (9, 6): inner corners per row and per column."""
    try:
        columns, rows = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise CalibrationError(f"--pattern: expected COLUMNSxROWS of inner corners like 9x6, found {text!r}") from error
    if columns < 2 or rows < 2:
        raise CalibrationError(f"--pattern: expected at least 2x2 inner corners, found {text!r}")
    return columns, rows


def calibrate_chessboard(
    images: list[Path],
    pattern: tuple[int, int],
    square: float,
    *,
    name: str = "camera",
    min_images: int = 3,
    progress: bool = True,
) -> CalibrationResult:
    """Calibrate from chessboard pictures; ``square`` is the square side in metres (scales the extrinsics only)."""
    import cv2
    from tqdm import tqdm

    board = np.zeros((pattern[0] * pattern[1], 3), np.float32)
    board[:, :2] = np.mgrid[0 : pattern[0], 0 : pattern[1]].T.reshape(-1, 2) * square
    object_points, image_points, used, rejected, resized = [], [], [], [], []
    size = None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    for path in tqdm(images, desc="finding chessboards", unit="image", disable=not progress):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            rejected.append(f"{path.name} (cannot decode)")
            continue
        image_size = (image.shape[1], image.shape[0])
        if size is None:
            size = image_size
        if abs(image_size[0] / size[0] - 1) > 0.01 or abs(image_size[1] / size[1] - 1) > 0.01:
            rejected.append(f"{path.name} (size {image_size[0]}x{image_size[1]}, others are {size[0]}x{size[1]})")
            continue
        found, corners = cv2.findChessboardCorners(
            image, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH + cv2.CALIB_CB_NORMALIZE_IMAGE
        )
        if not found:
            rejected.append(f"{path.name} (no {pattern[0]}x{pattern[1]} pattern found)")
            continue
        corners = cv2.cornerSubPix(image, corners, (11, 11), (-1, -1), criteria).reshape(-1, 1, 2)
        if image_size != size:  # a resampled copy a pixel or so larger: scale its corners to the common size
            corners = corners * np.array([size[0] / image_size[0], size[1] / image_size[1]], np.float32)
            resized.append(f"{path.name} ({image_size[0]}x{image_size[1]} scaled to {size[0]}x{size[1]})")
        object_points.append(board)
        image_points.append(corners)
        used.append(path)
    if len(used) < min_images:
        raise CalibrationError(
            f"found the {pattern[0]}x{pattern[1]} pattern on {len(used)} of {len(images)} images, need at least "
            f"{min_images}; "
            f"rejected: {rejected}. Check --pattern (inner corners, not squares)."
        )
    assert size is not None
    rms, K, distortion, rvecs, tvecs = cv2.calibrateCamera(object_points, image_points, size, None, None)
    per_image = {}
    for path, obj, img, rvec, tvec in zip(used, object_points, image_points, rvecs, tvecs):
        projected, _ = cv2.projectPoints(obj, rvec, tvec, K, distortion)
        residual = projected.reshape(-1, 2) - img.reshape(-1, 2)
        per_image[path.name] = float(np.sqrt(np.mean(np.sum(residual**2, axis=-1))))
    camera = Camera(name, size[0], size[1], K, np.eye(4), "radtan", np.asarray(distortion).reshape(-1)[:5])
    return CalibrationResult(camera, float(rms), per_image, rejected, resized)


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder in natural order (calibration2 before calibration10)."""
    import re

    from perception.video import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder of chessboard images")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise CalibrationError(f"{folder}: holds no {'/'.join(IMAGE_EXTENSIONS)} images")
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def main(argv: list[str] | None = None) -> int:
    """``perception calibrate IMAGES/ --pattern 9x6 --square 0.025 [--name CAM] --out camera.yaml``."""
    import yaml

    from perception.atomic import atomic_write_text

    parser = argparse.ArgumentParser(
        prog="perception calibrate", description="Calibrate a camera from chessboard images."
    )
    parser.add_argument("images", type=Path, help="folder of chessboard pictures taken with the camera")
    parser.add_argument("--pattern", default="9x6", help="inner corners COLUMNSxROWS (default 9x6)")
    parser.add_argument("--square", type=float, default=0.025, help="square side in metres (default 0.025)")
    parser.add_argument("--name", default="camera", help="camera name in the written entry")
    parser.add_argument("--out", type=Path, required=True, help="output YAML: a rig.yaml with this one camera")
    args = parser.parse_args(argv)
    from perception.rig import CAMERA_NAME_RULE, is_camera_name

    if not is_camera_name(args.name):
        print(f"perception calibrate: error: --name: expected {CAMERA_NAME_RULE}, found {args.name!r}", file=sys.stderr)
        return 2
    try:
        result = calibrate_chessboard(
            list_images(args.images), parse_pattern(args.pattern), args.square, name=args.name
        )
    except CalibrationError as error:
        where = "" if str(args.images) in str(error) or str(error).startswith("--") else f"{args.images}: "
        print(f"perception calibrate: error: {where}{error}", file=sys.stderr)
        return 2
    print(f"{'image':<28} reprojection error (px)")
    for image_name, error in result.per_image_error.items():
        print(f"{image_name:<28} {error:.3f}")
    for item in result.resized:
        print(f"resized: {item}")
    for item in result.rejected:
        print(f"rejected: {item}")
    K, d = result.camera.K, result.camera.distortion
    print(f"used {len(result.per_image_error)} images, rejected {len(result.rejected)}; RMS {result.rms:.3f} px")
    print(
        f"fx {K[0, 0]:.1f} fy {K[1, 1]:.1f} cx {K[0, 2]:.1f} cy {K[1, 2]:.1f}; k1 {d[0]:.4f} k2 {d[1]:.4f} p1 "
        f"{d[2]:.5f} p2 {d[3]:.5f} k3 {d[4]:.4f}"
    )
    document = Rig([result.camera]).to_dict()
    document["calibration"] = {
        "rms_px": round(result.rms, 4),
        "images_used": len(result.per_image_error),
        "rejected": result.rejected,
        "resized": result.resized,
        "pattern": args.pattern,
        "square_m": args.square,
    }
    atomic_write_text(args.out, yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
    print(f"wrote {args.out} (ego_from_camera is identity: set the mounting pose before using it in a rig)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
