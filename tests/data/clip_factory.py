"""A tiny, exactly-known drive clip for data/training tests (stand-in for the synthetic world: fast, controllable).

Two cameras (front, left), 96x64 PNG frames, ego driving +x at 5 m/s, per-camera capture offsets; static boxes
painted as flat-colour rectangles at their projected 3D corners (so pixel content and geometry agree exactly);
BEV maps "drivable" (y in [-3, 6] m, asymmetric on purpose) and "lane" (|y - 1.5| < 0.5 m).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from perception.clip import ClipWriter
from perception.geometry import BevGrid, box3d_corners, se3, transform_points
from perception.labels import DRIVING_CLASSES, BevMaps, Boxes2D, Boxes3D, ClipLabels, FrameLabels, make_provenance
from perception.rig import Camera, Rig

WIDTH, HEIGHT = 96, 64
SPEED = 5.0
FPS = 10.0
COLORS = [(255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (255, 40, 255)]
# world-frame boxes: centre x, y, z, l, w, h, yaw, class (DRIVING_CLASSES index)
WORLD_BOXES = np.array(
    [
        [14.0, 0.5, 0.8, 4.2, 1.8, 1.6, 0.3, 0],
        [20.0, -4.0, 0.9, 4.5, 1.9, 1.8, -0.2, 0],
        [9.0, 3.5, 0.9, 0.6, 0.6, 1.8, 0.0, 3],
        [3.0, 9.0, 0.8, 4.0, 1.8, 1.6, 1.2, 0],
        [-1.0, 12.0, 0.9, 4.4, 2.0, 1.8, 0.1, 1],
    ]
)


def make_rig(cameras: tuple[str, ...] = ("front", "left")) -> Rig:
    K = np.array([[50.0, 0, WIDTH / 2], [0, 50.0, HEIGHT / 2], [0, 0, 1]])
    rotations = {
        "front": np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
        "left": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    }
    translations = {"front": [1.5, 0.0, 1.5], "left": [1.0, 0.8, 1.5]}
    return Rig([Camera(name, WIDTH, HEIGHT, K, se3(rotations[name], translations[name])) for name in cameras])


def world_from_ego_at(t: float) -> np.ndarray:
    return se3(np.eye(3), [SPEED * t, 0.0, 0.0])


def make_clip(
    path: Path, *, frames: int = 4, cameras: tuple[str, ...] = ("front", "left"), with_bev: bool = True
) -> Path:
    """Write the clip to ``path`` and return it."""
    rig = make_rig(cameras)
    offsets = {name: 0.02 * i for i, name in enumerate(rig.names)}
    grid = BevGrid(-16.0, 16.0, -16.0, 16.0, 0.5)
    centers_xy = grid.cell_centers()
    drivable = ((centers_xy[..., 1] >= -3) & (centers_xy[..., 1] <= 6)).astype(np.uint8)
    lane = (np.abs(centers_xy[..., 1] - 1.5) < 0.5).astype(np.uint8)
    frame_labels, bev = [], []
    with ClipWriter(path, rig, fps=FPS, image_format="png") as writer:
        for index in range(frames):
            t = index / FPS
            world_from_ego = world_from_ego_at(t)
            ego_from_world = np.linalg.inv(world_from_ego)
            centers = transform_points(ego_from_world, WORLD_BOXES[:, :3])
            boxes3d = Boxes3D(
                centers,
                WORLD_BOXES[:, 3:6],
                WORLD_BOXES[:, 6],
                np.zeros((len(centers), 2)),
                WORLD_BOXES[:, 7].astype(np.int64),
                track_id=np.arange(len(centers)),
            )
            images, boxes2d = {}, {}
            for camera in rig:
                t_camera = t + offsets[camera.name]
                # ego at the camera's capture time; boxes are static in the world
                camera_from_world = camera.camera_from_ego @ np.linalg.inv(world_from_ego_at(t_camera))
                image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
                xyxy, classes, tracks = [], [], []
                corners = box3d_corners(WORLD_BOXES[:, :3], WORLD_BOXES[:, 3:6], WORLD_BOXES[:, 6])
                depth_order = np.argsort(-transform_points(camera_from_world, WORLD_BOXES[:, :3])[:, 2])
                for i in depth_order:
                    uv, depth = camera.project(transform_points(camera_from_world, corners[i]))
                    if np.any(depth <= 0.5):
                        continue
                    x1, y1 = uv.min(0)
                    x2, y2 = uv.max(0)
                    if x2 <= 0 or y2 <= 0 or x1 >= WIDTH or y1 >= HEIGHT:
                        continue
                    c = [int(v) for v in COLORS[i % len(COLORS)][::-1]]  # BGR
                    # pixel (u, v) centre at integer coords: fill pixels whose centre lies inside the box
                    u0, v0 = max(int(np.ceil(x1)), 0), max(int(np.ceil(y1)), 0)
                    u1, v1 = min(int(np.floor(x2)), WIDTH - 1), min(int(np.floor(y2)), HEIGHT - 1)
                    image[v0 : v1 + 1, u0 : u1 + 1] = c
                    xyxy.append([max(x1, 0), max(y1, 0), min(x2, WIDTH), min(y2, HEIGHT)])
                    classes.append(int(WORLD_BOXES[i, 7]))
                    tracks.append(int(i))
                images[camera.name] = image
                boxes2d[camera.name] = Boxes2D(
                    np.asarray(xyxy).reshape(-1, 4),
                    np.asarray(classes, np.int64),
                    track_id=np.asarray(tracks, np.int64),
                )
            writer.add_frame(images, t, world_from_ego, {n: t + o for n, o in offsets.items()})
            frame_labels.append(FrameLabels(boxes3d, boxes2d))
            bev.append(np.stack([drivable, lane]))
        writer.set_labels(
            ClipLabels(
                list(DRIVING_CLASSES),
                frame_labels,
                make_provenance("ground_truth", "tests.clip_factory"),
                BevMaps(grid, ["drivable", "lane"], np.stack(bev)) if with_bev else None,
            )
        )
    return path


def tiny_spec(image_size: tuple[int, int] = (64, 96), *, det2d: bool = True) -> dict:
    """A target spec matching a small model over the factory's world."""
    grid = {"x_min": -24.0, "x_max": 24.0, "y_min": -24.0, "y_max": 24.0, "resolution": 1.0}
    return {
        "image_size": list(image_size),
        "bev_grid": grid,
        "head_grid": grid,
        "detection3d_classes": ["car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone"],
        "segmentation_classes": ["drivable", "lane"],
        "detection2d_classes": ["car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone"] if det2d else None,
        "image_stride": 8,
    }


def make_pseudo_split(root: Path, scores: list[float], *, frames: int = 3) -> tuple[Path, Path, Path]:
    """(labelled, unlabelled, pseudo): a labelled and an unlabelled split of one clip each, and a pseudo-label folder
    for the unlabelled clip holding its ground-truth boxes (car, car, pedestrian, car, truck) with ``scores``."""
    from perception.clip import DriveClip

    labelled = make_clip(root / "L" / "clip_0000", frames=frames).parent
    unlabelled = make_clip(root / "U" / "clip_0000", frames=frames).parent
    truth = DriveClip.open(unlabelled / "clip_0000").labels
    pseudo = ClipLabels(truth.classes, truth.frames, make_provenance("autolabel", "test"), None)
    for frame in pseudo.frames:
        frame.boxes3d.score[:] = scores
    (root / "pseudo" / "clip_0000").mkdir(parents=True)
    pseudo.save(root / "pseudo" / "clip_0000" / "labels.json")
    return labelled, unlabelled, root / "pseudo"


# a small bev_tiny over the factory's world (2 backbone stages, 2 m cells): its size, shared by the training tests
TINY_BEV_SIZE = {
    "backbone_stages": 2,
    "image_channels": 16,
    "image_stride": 8,
    "image_size": [64, 96],
    "x_range": [-24.0, 24.0],
    "y_range": [-24.0, 24.0],
    "resolution": 2.0,
    "num_heights": 2,
    "bev_channels": 16,
    "bev_blocks": 1,
    "head_channels": 16,
}
# ... with the six driving classes' 3D boxes only
TINY_BEV = {
    **TINY_BEV_SIZE,
    "segmentation_classes": None,
    "detection2d_classes": None,
    "detection3d_classes": ["car", "truck", "bus", "pedestrian", "cyclist", "traffic_cone"],
}


def save_tiny_checkpoint(path: Path, cameras: tuple[str, ...] = ("front", "left"), seed: int = 0) -> Path:
    """A random TINY_BEV saved as ``perception fit`` exports a model (metadata + state_dict); torch is imported here."""
    import torch

    from perception.models import build_model
    from perception.training.checkpoint import model_metadata

    torch.manual_seed(seed)
    model = build_model("bev_tiny", **TINY_BEV).eval()
    meta = model_metadata(model, model_name="bev_tiny", rig=None, cameras=list(cameras))
    torch.save({**meta, "state_dict": model.state_dict()}, path)
    return path


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (the benchmarks folder is no package), for testing its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the module runs
    spec.loader.exec_module(module)
    return module
