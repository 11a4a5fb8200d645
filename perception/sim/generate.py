"""Generate synthetic drive clips (images + poses + ground truth) for any rig, deterministically by seed."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from perception.clip import ClipWriter
from perception.geometry import BevGrid, invert_se3, se3, yaw_matrix
from perception.labels import DRIVING_CLASSES, BevMaps, ClipLabels, FrameLabels, make_provenance
from perception.rig import Rig
from perception.sim.ground import build_ground_texture
from perception.sim.groundtruth import BEV_CHANNELS, bev_maps_at, boxes2d_from_render, boxes3d_at
from perception.sim.look import sample_look, with_weather
from perception.sim.meshes import ACTOR_MESHES
from perception.sim.render import MAX_RANGE, SceneBatch, camera_look, camera_setup, render_camera, subdivision_for
from perception.sim.road import sample_road
from perception.sim.scenery import sample_scenery
from perception.sim.traffic import SIM_DT, sample_agents, simulate

PRODUCER = "fleetvision.sim"


def camera_times(rig: Rig, frame_time: float, capture_offset: float) -> dict[str, float]:
    """Capture time (s) of each camera: rig order, ``capture_offset`` seconds apart, the first at the frame time."""
    return {name: frame_time + k * capture_offset for k, name in enumerate(rig.names)}


def _pose(x: float, y: float, yaw: float) -> np.ndarray:
    return se3(yaw_matrix(yaw), [x, y, 0.0])


class _Stopwatch:
    """Accumulates wall seconds per stage into a dict (no-op without one)."""

    def __init__(self, totals: dict[str, float] | None) -> None:
        self.totals, self.stage, self.since = totals, None, 0.0

    def start(self, stage: str) -> None:
        if self.totals is None:
            return
        self.stop()
        self.stage, self.since = stage, time.perf_counter()

    def stop(self) -> None:
        if self.totals is not None and self.stage is not None:
            self.totals[self.stage] = self.totals.get(self.stage, 0.0) + time.perf_counter() - self.since
            self.stage = None


def _poses(x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N, 4, 4) world poses of objects on the ground at (x, y) with heading ``yaw``."""
    poses = np.zeros((len(x), 4, 4))
    c, s = np.cos(yaw), np.sin(yaw)
    poses[:, 0, 0], poses[:, 0, 1], poses[:, 1, 0], poses[:, 1, 1] = c, -s, s, c
    poses[:, 2, 2] = poses[:, 3, 3] = 1.0
    poses[:, 0, 3], poses[:, 1, 3] = x, y
    return poses


def generate_clip(
    path: str | os.PathLike,
    rig: Rig,
    *,
    frames: int,
    seed: int,
    fps: float = 10.0,
    image_format: str = "mp4",
    bev_grid: BevGrid | None = None,
    capture_offset: float = 0.008,
    num_actors: tuple[int, int] = (5, 20),
    label_range: float = 60.0,
    min_visible_pixels: int = 12,
    weather: str | None = None,
    weather_severity: int = 2,
    overwrite: bool = False,
    on_frame: Callable[[], None] | None = None,
    timings: dict[str, float] | None = None,
) -> Path:
    """Write one synthetic clip to ``path`` and return it.

    ``capture_offset``: seconds between consecutive cameras' capture times (rig order); each camera is rendered
    at its own capture time while labels are at the frame time. ``label_range``: metres from the ego within
    which 3D boxes are labelled. ``weather`` (``perception.sim.look.WEATHERS``: fog, low_light, snow) renders the
    same world, traffic and labels under that condition at ``weather_severity`` 1..3 (the clear clip of the same
    seed is its clean counterpart). Same ``seed`` and arguments give identical images and labels.
    ``timings``, when given, accumulates seconds per stage (world, render, labels, write) for benchmarks.
    """
    if frames < 1:
        raise ValueError(f"generate_clip: frames: expected >= 1, found {frames}")
    if fps <= 0:
        raise ValueError(f"generate_clip: fps: expected > 0, found {fps}")
    if capture_offset < 0 or capture_offset * (len(rig) - 1) >= 1.0 / fps:
        raise ValueError(
            f"generate_clip: capture_offset: expected 0 <= offset and all cameras within one frame "
            f"period ({1.0 / fps:.4f} s for {len(rig)} cameras), found {capture_offset}"
        )
    bev_grid = bev_grid or BevGrid()
    clock = _Stopwatch(timings)
    clock.start("world")
    # independent streams, so e.g. a longer clip keeps the same world and the same first frames
    # (spawned children do not depend on how many are spawned: the 9th, weather, leaves the others unchanged)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0x5EED]).spawn(9)]
    road_rng, agent_rng, motion_rng, look_rng, mesh_rng, ground_rng, scenery_rng, sensor_rng, weather_rng = streams
    duration = (frames - 1) / fps + capture_offset * (len(rig) - 1)
    times = np.arange(0.0, duration + 3 * SIM_DT, SIM_DT)

    road = sample_road(road_rng, s_min=-250.0 - 15.0 * duration, s_max=25.0 * duration + 300.0)
    agents = sample_agents(agent_rng, road, times, num_actors=num_actors)
    traffic = simulate(road, agents, times, motion_rng)
    look = sample_look(look_rng)
    if weather is not None:
        look = with_weather(look, weather, weather_severity, weather_rng)
    builders = [ACTOR_MESHES[agent.class_name](mesh_rng, agent.size) for agent in agents[1:]]
    ego_s = traffic.s[0]
    s_lo, s_hi = float(ego_s.min()) - MAX_RANGE - 10, float(ego_s.max()) + MAX_RANGE + 10
    ground = build_ground_texture(road, look, ground_rng, s_min=s_lo, s_max=s_hi)
    if look.snow_cover > 0:
        ground = cover_with_snow(ground, look, weather_rng)
    scenery = sample_scenery(scenery_rng, road, s_min=-250.0, s_max=25.0 * duration + 300.0)
    scenery_poses = np.array([_pose(x, y, yaw) for (x, y), yaw in zip(scenery.xy, scenery.yaw)]).reshape(-1, 4, 4)
    object_ids = list(range(1, len(builders) + 1)) + [0] * len(scenery.builders)
    batches = {
        level: SceneBatch.build([b.build(level) for b in builders + scenery.builders], object_ids)
        for level in sorted({subdivision_for(camera) for camera in rig})
    }
    setups = {camera.name: camera_setup(camera) for camera in rig}
    looks = {name: camera_look(setup, look, sensor_rng) for name, setup in setups.items()}
    class_ids = traffic.class_ids
    n_actors = len(builders)

    label_frames, bev = [], np.zeros((frames, len(BEV_CHANNELS), *bev_grid.shape), dtype=np.uint8)
    with ClipWriter(path, rig, fps=fps, image_format=image_format, overwrite=overwrite) as writer:
        pose_times: set[float] = set()
        for index in range(frames):
            frame_time = index / fps
            world_from_ego = traffic.world_from_ego(frame_time)
            capture = camera_times(rig, frame_time, capture_offset)
            images, boxes2d = {}, {}
            for camera in rig:
                clock.start("render")
                t = capture[camera.name]
                world_from_ego_t = traffic.world_from_ego(t)
                ego_from_world_t = invert_se3(world_from_ego_t)
                x, y, yaw, _, _ = traffic.state(t)
                world_from_object = np.concatenate([_poses(x[1:], y[1:], yaw[1:]), scenery_poses])
                in_range = np.hypot(*(world_from_object[:, :2, 3] - world_from_ego_t[:2, 3]).T) < MAX_RANGE + 30
                in_range[:n_actors] = True
                result = render_camera(
                    setups[camera.name],
                    look,
                    looks[camera.name],
                    ground,
                    world_from_ego_t,
                    batches[subdivision_for(camera)],
                    ego_from_world_t[None] @ world_from_object,
                    world_from_object[:, :3, :3],
                    in_range,
                    sensor_rng,
                )
                images[camera.name] = result.image
                clock.start("labels")
                boxes2d[camera.name] = boxes2d_from_render(
                    result, class_ids, camera.width, camera.height, min_visible_pixels=min_visible_pixels
                )
            boxes3d = boxes3d_at(traffic, frame_time, world_from_ego, label_range=label_range)
            label_frames.append(FrameLabels(boxes3d, boxes2d))
            bev[index] = bev_maps_at(road, bev_grid, world_from_ego, traffic.ego_s(frame_time))
            clock.start("write")
            writer.add_frame(images, frame_time, world_from_ego, camera_timestamps=capture)
            for t in [frame_time, *capture.values()]:
                if t not in pose_times:
                    pose_times.add(t)
                    writer.add_pose(t, traffic.world_from_ego(t))
            if on_frame is not None:
                on_frame()
        provenance = make_provenance(
            "ground_truth",
            PRODUCER,
            seed=int(seed),
            fps=float(fps),
            capture_offset=float(capture_offset),
            condition=look.condition,
            weather=look.weather,
            weather_severity=look.weather_severity,
            lanes=len(road.lanes),
            actors=n_actors,
        )
        writer.set_labels(
            ClipLabels(list(DRIVING_CLASSES), label_frames, provenance, BevMaps(bev_grid, list(BEV_CHANNELS), bev))
        )
    clock.stop()
    return Path(path)


def cover_with_snow(ground, look, rng: np.random.Generator):
    """The ground texture with ``look.snow_cover`` of white laid over it in patches (thinner where the noise is low)."""
    import dataclasses

    import cv2

    height, width = ground.image.shape[:2]
    small = rng.random((height // 40 + 2, width // 40 + 2)).astype(np.float32)
    patches = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    cover = np.clip(look.snow_cover * (0.6 + 0.8 * patches), 0.0, 1.0)[..., None]
    white = np.clip(look.sky_horizon * 1.02, 0, 255)
    image = np.clip(ground.image * (1.0 - cover) + white * cover, 0, 255).astype(np.uint8)
    return dataclasses.replace(ground, image=image)


def clip_seed(seed: int, index: int) -> int:
    """Seed of clip ``index`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def clip_is_complete(path: Path) -> bool:
    """A clip folder exists only after ClipWriter renamed it into place; labels mark our clips complete."""
    return (path / "frames.csv").is_file() and (path / "labels.json").is_file() and (path / "rig.yaml").is_file()


def _generate_one(args: tuple) -> str:
    path, rig, frames, seed, options = args
    generate_clip(path, rig, frames=frames, seed=seed, **options)
    return str(path)


def generate_dataset(
    out_dir: str | os.PathLike,
    rig: Rig,
    *,
    clips: int,
    frames: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    **clip_options,
) -> list[Path]:
    """Generate ``clips`` clips ``clip_0000``.. under ``out_dir`` (complete ones are skipped, so reruns resume).

    ``clip_options`` are passed to ``generate_clip`` (fps, image_format, bev_grid, capture_offset, ...).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"clip_{i:04d}" for i in range(clips)]
    todo = [i for i, p in enumerate(paths) if not clip_is_complete(p)]
    foreign = [str(paths[i]) for i in todo if paths[i].exists()]
    if foreign:  # ClipWriter renames finished clips into place, so these were not written by an earlier run
        raise FileExistsError(
            f"{out_dir}: expected clip folders written by 'perception synth' (with labels.json) or "
            f"none, found other folders: {foreign[:3]}{' ...' if len(foreign) > 3 else ''}"
        )
    for i in todo:  # leftovers of an interrupted run: ClipWriter's temporary folders
        for stale in out_dir.glob(f".{paths[i].name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    skipped = clips - len(todo)
    bar = tqdm(
        total=clips * frames,
        initial=skipped * frames,
        unit="frame",
        disable=not progress,
        desc=f"synth {clips} clips",
        dynamic_ncols=True,
    )
    done = skipped
    bar.set_postfix(clips=f"{done}/{clips}")
    try:
        if workers <= 1:
            for i in todo:
                generate_clip(
                    paths[i],
                    rig,
                    frames=frames,
                    seed=clip_seed(seed, i),
                    on_frame=lambda: bar.update(1),
                    **clip_options,
                )
                done += 1
                bar.set_postfix(clips=f"{done}/{clips}")
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            options = dict(clip_options)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_generate_one, (paths[i], rig, frames, clip_seed(seed, i), options)) for i in todo
                ]
                for future in as_completed(futures):
                    future.result()
                    done += 1
                    bar.update(frames)
                    bar.set_postfix(clips=f"{done}/{clips}")
    finally:
        bar.close()
    return paths
