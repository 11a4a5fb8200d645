"""Cameras and camera rigs: intrinsics, distortion, extrinsics, projection, and ``rig.yaml`` I/O."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from perception.atomic import atomic_write_text
from perception.errors import InputError, load_yaml
from perception.geometry import invert_se3, matrix_to_quat, quat_to_matrix, se3, transform_points

RIG_SCHEMA_VERSION = 1
DISTORTION_MODELS = {"none": (0,), "radtan": (4, 5, 8), "fisheye": (4,)}


# A camera name is a file name (cameras/<name>.mp4) and a CSV column (t_<name>): letters, digits, '_', '.', '-',
# starting with a letter or digit, at most 64 characters. Names read from files are checked where they are read.
CAMERA_NAME_RULE = "letters, digits, '_', '.', '-' (starting with a letter or digit, at most 64 characters)"
_CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


class RigError(InputError):
    """A rig description is malformed; the message names the file, the field, the expectation and the finding."""


def is_camera_name(name: object) -> bool:
    """True when ``name`` may name a camera (see ``CAMERA_NAME_RULE``): safe as a file name and a CSV column."""
    return isinstance(name, str) and _CAMERA_NAME.fullmatch(name) is not None


def _distort_radtan(xy: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    k = np.zeros(8)
    k[: len(coeffs)] = coeffs
    k1, k2, p1, p2, k3, k4, k5, k6 = k
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], -1)


def _distort_fisheye(xy: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    k1, k2, k3, k4 = coeffs
    r = np.linalg.norm(xy, axis=-1)
    theta = np.arctan(r)
    theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
    scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
    return xy * scale[..., None]


def _undistort_fisheye(xy_d: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    k1, k2, k3, k4 = coeffs
    theta_d = np.linalg.norm(xy_d, axis=-1)
    theta = theta_d.copy()
    for _ in range(30):  # Newton on f(theta) = theta * poly(theta) - theta_d
        t2 = theta * theta
        f = theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4) - theta_d
        df = 1 + 3 * k1 * t2 + 5 * k2 * t2**2 + 7 * k3 * t2**3 + 9 * k4 * t2**4
        theta = theta - f / df
    scale = np.where(theta_d > 1e-12, np.tan(theta) / np.maximum(theta_d, 1e-12), 1.0)
    return xy_d * scale[..., None]


@dataclass
class Camera:
    """One calibrated camera: image size (pixels), intrinsics ``K``, distortion and ``ego_from_camera``."""

    name: str
    width: int
    height: int
    K: np.ndarray
    ego_from_camera: np.ndarray = field(default_factory=lambda: np.eye(4))
    distortion_model: str = "none"
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if not is_camera_name(self.name):
            raise RigError(f"<camera>: field 'name': expected {CAMERA_NAME_RULE}, found {self.name!r}")
        self.K = np.asarray(self.K, dtype=np.float64)
        self.ego_from_camera = np.asarray(self.ego_from_camera, dtype=np.float64)
        self.distortion = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
        self.width, self.height = int(self.width), int(self.height)

    @property
    def camera_from_ego(self) -> np.ndarray:
        return invert_se3(self.ego_from_camera)

    def distort(self, xy: np.ndarray) -> np.ndarray:
        """Apply the lens distortion to normalised image coordinates (..., 2)."""
        if self.distortion_model == "radtan" and np.any(self.distortion):
            return _distort_radtan(xy, self.distortion)
        if self.distortion_model == "fisheye":
            return _distort_fisheye(xy, self.distortion)
        return xy

    def max_undistorted_radius(self) -> float | None:
        """Normalised radius where the radial distortion stops increasing (None: monotonic up to r = 10, or, for
        fisheye, up to 90 deg off-axis)."""
        if self.distortion_model == "fisheye":
            k1, k2, k3, k4 = self.distortion
            theta = np.linspace(0.0, np.pi / 2, 4001)[:-1]
            t2 = theta * theta
            slope = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))  # d(theta_d)/d(theta)
            turning = np.nonzero(slope <= 0)[0]
            return float(np.tan(theta[turning[0]])) if len(turning) else None
        if self.distortion_model != "radtan" or not np.any(self.distortion):
            return None
        radial_only = self.distortion.copy()
        radial_only[2:4] = 0.0  # tangential terms do not fold the image back
        radius = np.linspace(0.0, 10.0, 4001)
        distorted = _distort_radtan(np.stack([radius, np.zeros_like(radius)], -1), radial_only)[:, 0]
        turning = np.nonzero(np.diff(distorted) <= 0)[0]
        return float(radius[turning[0]]) if len(turning) else None

    def undistort(self, xy_d: np.ndarray) -> np.ndarray:
        """Invert ``distort`` on normalised coordinates (iterative; exact to ~1e-10 inside the image)."""
        if self.distortion_model == "fisheye":
            return _undistort_fisheye(xy_d, self.distortion)
        if self.distortion_model != "radtan" or not np.any(self.distortion):
            return xy_d
        xy = xy_d.copy()
        for _ in range(100):  # Gauss-Newton with a numeric Jacobian: robust for strong radial terms
            residual = _distort_radtan(xy, self.distortion) - xy_d
            eps = 1e-7
            jx = (_distort_radtan(xy + [eps, 0.0], self.distortion) - _distort_radtan(xy, self.distortion)) / eps
            jy = (_distort_radtan(xy + [0.0, eps], self.distortion) - _distort_radtan(xy, self.distortion)) / eps
            det = jx[..., 0] * jy[..., 1] - jy[..., 0] * jx[..., 1]
            det = np.where(np.abs(det) < 1e-12, 1e-12, det)
            dx = (jy[..., 1] * residual[..., 0] - jy[..., 0] * residual[..., 1]) / det
            dy = (-jx[..., 1] * residual[..., 0] + jx[..., 0] * residual[..., 1]) / det
            xy = xy - np.stack([dx, dy], -1)
            if np.nanmax(np.abs(residual), initial=0.0) < 1e-12:
                break
        return xy

    def project(self, points_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project camera-frame points (N, 3) to pixels (N, 2); returns (uv, depth); z <= 0 gives nan uv."""
        points = np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)
        depth = points[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = points[:, :2] / depth[:, None]
        xy[depth <= 1e-6] = np.nan
        limit = self.max_undistorted_radius()
        if limit is not None:  # beyond it the lens model folds back and would alias far points into the image
            xy[np.sum(xy * xy, axis=1) > limit * limit] = np.nan
        xy = self.distort(xy)
        uv = xy @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, depth

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) and depth along the optical axis (N,) to camera-frame points (N, 3)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        xy_d = np.linalg.solve(self.K[:2, :2], (uv - self.K[:2, 2]).T).T
        xy = self.undistort(xy_d)
        depth = np.asarray(depth, dtype=np.float64).reshape(-1)
        return np.concatenate([xy * depth[:, None], depth[:, None]], axis=1)

    def ground_points(self, uv: np.ndarray, camera_from_ego: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where the rays of pixels (N, 2) meet the ground plane z = 0 of the ego frame: (points (N, 3) metres, ego
        frame; hit (N,) bool, False where the ray points at or above the horizon, those points are nan).

        ``camera_from_ego`` defaults to the rig extrinsic; give ``DriveClip.camera_from_ego(frame, camera)`` to
        honour the camera's own capture time. Flat ground is assumed: on a slope the error grows with range.
        """
        camera_from_ego = self.camera_from_ego if camera_from_ego is None else np.asarray(camera_from_ego)
        ego_from_camera = invert_se3(camera_from_ego)
        rays = self.unproject(uv, np.ones(len(np.asarray(uv).reshape(-1, 2)))) @ ego_from_camera[:3, :3].T
        origin = ego_from_camera[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = -origin[2] / rays[:, 2]
        hit = np.isfinite(distance) & (rays[:, 2] < -1e-9) & (distance > 0)
        points = origin + rays * np.where(hit, distance, np.nan)[:, None]
        return points, hit

    def project_ego(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ego-frame points (N, 3) to pixels; returns (uv, depth)."""
        return self.project(transform_points(self.camera_from_ego, points_ego))

    def in_image(self, uv: np.ndarray) -> np.ndarray:
        """Boolean mask of pixel positions inside the image."""
        uv = np.asarray(uv)
        return (uv[..., 0] >= 0) & (uv[..., 0] < self.width) & (uv[..., 1] >= 0) & (uv[..., 1] < self.height)

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to ``width`` x ``height`` (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        # pixel centres sit at integers (OpenCV): x' = (x + 0.5) * s - 0.5, as cv2.resize samples
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
        return replace(self, width=int(width), height=int(height), K=K)

    def cropped(self, x0: float, y0: float, width: int, height: int) -> Camera:
        """The same camera for the crop starting at pixel (x0, y0) of size ``width`` x ``height``."""
        K = self.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return replace(self, width=int(width), height=int(height), K=K)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "K": self.K.round(9).tolist(),
            "distortion": {"model": self.distortion_model, "coefficients": self.distortion.round(12).tolist()},
            "ego_from_camera": {
                "translation": self.ego_from_camera[:3, 3].round(9).tolist(),
                "rotation_wxyz": matrix_to_quat(self.ego_from_camera[:3, :3]).round(12).tolist(),
            },
        }


def _require(condition: bool, source: str, field_name: str, expected: str, found: object) -> None:
    if not condition:
        raise RigError(f"{source}: field '{field_name}': expected {expected}, found {found!r}")


def _numbers(value: object) -> np.ndarray | None:
    """``value`` as a float64 array when it is a (nested) list of finite real numbers, else None."""

    def plain(item: object) -> bool:
        if isinstance(item, list | tuple):
            return all(plain(x) for x in item)
        return isinstance(item, int | float) and not isinstance(item, bool)

    if not plain(value):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):  # ragged
        return None
    return array if np.all(np.isfinite(array)) else None


def _camera_from_dict(data: object, source: str, where: str) -> Camera:
    _require(isinstance(data, dict), source, where, "a mapping with name, width, height, K", data)
    assert isinstance(data, dict)
    for key in ("name", "width", "height", "K"):
        _require(key in data, source, f"{where}.{key}", "a value (required field)", "nothing")
    name = data["name"]
    _require(is_camera_name(name), source, f"{where}.name", CAMERA_NAME_RULE, name)
    for key in ("width", "height"):
        value = data[key]
        _require(
            isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65535,
            source,
            f"{where}.{key}",
            "a positive integer up to 65535 (pixels)",
            value,
        )
    K = _numbers(data["K"])
    _require(K is not None and K.shape == (3, 3), source, f"{where}.K", "a 3x3 matrix of finite numbers", data["K"])
    assert K is not None
    _require(
        K[0, 0] > 0 and K[1, 1] > 0, source, f"{where}.K", "positive focal lengths K[0][0], K[1][1]", [K[0, 0], K[1, 1]]
    )
    _require(np.allclose(K[2], [0, 0, 1]), source, f"{where}.K", "last row [0, 0, 1]", K[2].tolist())

    distortion = data.get("distortion") or {"model": "none"}
    _require(isinstance(distortion, dict), source, f"{where}.distortion", "a mapping {model, coefficients}", distortion)
    model = distortion.get("model", "none")
    _require(
        isinstance(model, str) and model in DISTORTION_MODELS,
        source,
        f"{where}.distortion.model",
        f"one of {sorted(DISTORTION_MODELS)}",
        model,
    )
    coefficients = _numbers(distortion.get("coefficients", []))
    _require(
        coefficients is not None and coefficients.ndim <= 1,
        source,
        f"{where}.distortion.coefficients",
        "a list of finite numbers",
        distortion.get("coefficients"),
    )
    assert coefficients is not None
    coefficients = coefficients.reshape(-1)
    allowed = DISTORTION_MODELS[model]
    _require(
        len(coefficients) in allowed or (model == "none" and len(coefficients) == 0),
        source,
        f"{where}.distortion.coefficients",
        f"{' or '.join(map(str, allowed))} numbers for model '{model}'",
        coefficients.tolist(),
    )

    extrinsic = data.get("ego_from_camera")
    _require(
        isinstance(extrinsic, dict),
        source,
        f"{where}.ego_from_camera",
        "a mapping {translation, rotation_wxyz} or {matrix}",
        extrinsic,
    )
    assert isinstance(extrinsic, dict)
    if "matrix" in extrinsic:
        matrix = _numbers(extrinsic["matrix"])
        _require(
            matrix is not None and matrix.shape == (4, 4),
            source,
            f"{where}.ego_from_camera.matrix",
            "a 4x4 matrix of finite numbers",
            extrinsic["matrix"],
        )
        assert matrix is not None
        _require(
            np.allclose(matrix[3], [0, 0, 0, 1]),
            source,
            f"{where}.ego_from_camera.matrix",
            "last row [0,0,0,1]",
            matrix[3].tolist(),
        )
    else:
        translation = _numbers(extrinsic.get("translation", []))
        quaternion = _numbers(extrinsic.get("rotation_wxyz", []))
        _require(
            translation is not None and translation.shape == (3,),
            source,
            f"{where}.ego_from_camera.translation",
            "3 numbers (metres)",
            extrinsic.get("translation"),
        )
        _require(
            quaternion is not None and quaternion.shape == (4,),
            source,
            f"{where}.ego_from_camera.rotation_wxyz",
            "4 numbers (w, x, y, z)",
            extrinsic.get("rotation_wxyz"),
        )
        assert translation is not None and quaternion is not None
        _require(
            abs(np.linalg.norm(quaternion) - 1) < 1e-3,
            source,
            f"{where}.ego_from_camera.rotation_wxyz",
            "a unit quaternion",
            quaternion.tolist(),
        )
        matrix = se3(quat_to_matrix(quaternion), translation)
    rotation = matrix[:3, :3]
    orthonormal = np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) and np.linalg.det(rotation) > 0
    _require(
        orthonormal,
        source,
        f"{where}.ego_from_camera",
        "an orthonormal rotation with det +1",
        rotation.round(4).tolist(),
    )
    return Camera(name, data["width"], data["height"], K, matrix, model, coefficients)


@dataclass
class Rig:
    """An ordered set of cameras mounted on one vehicle."""

    cameras: list[Camera]

    def __post_init__(self) -> None:
        names = [camera.name for camera in self.cameras]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise RigError(f"<rig>: field 'cameras': expected unique names, found duplicates {duplicates}")

    @property
    def names(self) -> list[str]:
        return [camera.name for camera in self.cameras]

    def __getitem__(self, name: str) -> Camera:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(f"camera {name!r} not in rig (cameras: {self.names})")

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[Camera]:
        return iter(self.cameras)

    def subset(self, names: list[str]) -> Rig:
        return Rig([self[name] for name in names])

    def resized(self, width: int, height: int) -> Rig:
        """Every camera resized to the same ``width`` x ``height``."""
        return Rig([camera.resized(width, height) for camera in self.cameras])

    def to_dict(self) -> dict:
        return {"schema_version": RIG_SCHEMA_VERSION, "cameras": [camera.to_dict() for camera in self.cameras]}

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> Rig:
        _require(isinstance(data, dict), source, "<root>", "a mapping with 'cameras'", type(data).__name__)
        assert isinstance(data, dict)
        version = data.get("schema_version", RIG_SCHEMA_VERSION)
        _require(version == RIG_SCHEMA_VERSION, source, "schema_version", str(RIG_SCHEMA_VERSION), version)
        cameras = data.get("cameras")
        _require(isinstance(cameras, list) and len(cameras) > 0, source, "cameras", "a non-empty list", cameras)
        parsed = [_camera_from_dict(item, source, f"cameras[{i}]") for i, item in enumerate(cameras)]
        names = [camera.name for camera in parsed]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        _require(not duplicates, source, "cameras[].name", "unique camera names", duplicates)
        return cls(parsed)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Rig:

        path = Path(path)
        if not path.is_file():
            raise RigError(f"{path}: file not found (expected a rig.yaml)")
        data = load_yaml(path, "a rig.yaml", RigError)
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | os.PathLike) -> None:
        import yaml

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))


RING_NAMES = ("front", "front_left", "back_left", "back", "back_right", "front_right")


def ring_rig(
    *, num_cameras: int = 6, width: int = 384, height: int = 224, hfov_deg: float = 80.0, mount_height_m: float = 1.6
) -> Rig:
    """A synthetic rig of pinhole cameras evenly spaced in yaw (0 = forward, counter-clockwise), looking outwards.

    Cameras sit 0.5 m out from (1.0, 0, ``mount_height_m``) metres in the ego frame; the focal length gives
    ``hfov_deg`` horizontally; six cameras are named ``RING_NAMES``, other counts ``cam0``, ``cam1``, ..."""
    focal = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    K = np.array([[focal, 0.0, width / 2 - 0.5], [0.0, focal, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    names = RING_NAMES if num_cameras == 6 else tuple(f"cam{i}" for i in range(num_cameras))
    cameras = []
    for i, name in enumerate(names):
        yaw = 2 * np.pi * i / num_cameras
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        position = np.array([1.0, 0.0, mount_height_m]) + 0.5 * forward
        cameras.append(Camera(name, width, height, K, se3(np.stack([right, down, forward], axis=1), position)))
    return Rig(cameras)
