"""Rasteriser for one camera: textured ground by per-pixel ray/ground lookup, sky and fog, painter's-algorithm
polygons (convex parts sorted far to near, back faces culled, frustum-clipped in 3D, lens distortion applied to
subdivided edges), and an object-id buffer from which 2D boxes, visibility and truncation are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perception.rig import Camera
from perception.sim.ground import GroundTexture
from perception.sim.look import SNOW_RANGE, Look, headlight_gain
from perception.sim.meshes import Mesh

NEAR = 0.15  # metres: near clipping plane
MAX_RANGE = 110.0  # metres: ground and objects farther away fade into the haze / are not drawn
_SHIFT = 4
_ONE = 1 << _SHIFT
_NOISE_PAD = 32  # noise images are this much larger than the frame; each frame uses a random crop


def subdivision_for(camera: Camera) -> int:
    """Points per polygon edge needed so that distortion bends edges visibly right."""
    if camera.distortion_model == "fisheye":
        return 8
    if camera.distortion_model == "radtan" and np.any(camera.distortion):
        return 4
    return 1


@dataclass
class CameraSetup:
    """Per-camera precomputation (depends only on the camera): ground hit points, ray elevation, frustum limits."""

    camera: Camera
    ground_xy: np.ndarray  # (H, W, 2) float32 ego-frame ground point seen by each pixel (far away if none)
    ground_distance: np.ndarray  # (H, W) float32 metres (inf: ray misses the ground within range)
    elevation: np.ndarray  # (H, W) float32 sine of the ray's elevation in the ego frame
    valid: np.ndarray  # (H, W) bool: the lens model maps this pixel to a ray
    limit_x: float  # |x / z| bound for clipping (normalised coordinates where the distortion stays monotonic)
    limit_y: float


def _monotonic_radius(camera: Camera) -> float:
    if camera.distortion_model == "fisheye":  # up to 88 deg off-axis, or where the lens folds back before that
        folds = camera.max_undistorted_radius()
        return float(np.tan(np.radians(88.0))) if folds is None else min(folds, float(np.tan(np.radians(88.0))))
    if camera.distortion_model != "radtan" or not np.any(camera.distortion):
        return np.inf
    r = np.linspace(0.0, 8.0, 4001)
    distorted = np.linalg.norm(camera.distort(np.stack([r, np.zeros_like(r)], -1)), axis=-1)
    falling = np.nonzero(np.diff(distorted) <= 0)[0]
    return float(r[falling[0]]) if len(falling) else 8.0


_SETUP_CACHE: dict[bytes, CameraSetup] = {}


def camera_setup(camera: Camera) -> CameraSetup:
    """Cached ``CameraSetup`` of a camera (keyed by its parameters)."""
    key = repr(
        (
            camera.width,
            camera.height,
            camera.K.tolist(),
            camera.ego_from_camera.tolist(),
            camera.distortion_model,
            camera.distortion.tolist(),
        )
    ).encode()
    if key not in _SETUP_CACHE:
        if len(_SETUP_CACHE) > 32:
            _SETUP_CACHE.clear()
        _SETUP_CACHE[key] = _build_setup(camera)
    return _SETUP_CACHE[key]


def _build_setup(camera: Camera) -> CameraSetup:
    h, w = camera.height, camera.width
    v, u = np.mgrid[0:h, 0:w]
    uv = np.stack([u.ravel(), v.ravel()], -1).astype(np.float64)
    rays = camera.unproject(uv, np.ones(len(uv)))
    with np.errstate(invalid="ignore"):
        back, _ = camera.project(rays)
        valid = np.all(np.isfinite(rays), axis=1) & (np.linalg.norm(back - uv, axis=1) < 0.05)
    rays[~valid] = [0.0, 0.0, 1.0]
    ego_rays = rays @ camera.ego_from_camera[:3, :3].T
    ego_rays /= np.linalg.norm(ego_rays, axis=1, keepdims=True)
    origin = camera.ego_from_camera[:3, 3]
    downward = ego_rays[:, 2] < -1e-4
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(downward, -origin[2] / ego_rays[:, 2], np.inf)
    distance[distance > MAX_RANGE] = np.inf
    hit = origin[None, :2] + ego_rays[:, :2] * np.where(np.isfinite(distance), distance, 0.0)[:, None]
    hit[~np.isfinite(distance)] = 1e7
    normalised = rays[valid, :2] / rays[valid, 2:3]
    extent = np.abs(normalised).max(0) if len(normalised) else np.array([1.0, 1.0])
    limit = _monotonic_radius(camera) * 0.7
    return CameraSetup(
        camera=camera,
        ground_xy=hit.reshape(h, w, 2).astype(np.float32),
        ground_distance=distance.reshape(h, w).astype(np.float32),
        elevation=ego_rays[:, 2].reshape(h, w).astype(np.float32),
        valid=valid.reshape(h, w),
        limit_x=float(min(extent[0] * 1.5 + 0.2, limit)),
        limit_y=float(min(extent[1] * 1.5 + 0.2, limit)),
    )


@dataclass
class CameraLook:
    """Per-clip, per-camera background: sky/haze image and blend weights for the ground."""

    background: np.ndarray  # (H, W, 3) uint8 sky gradient / haze (black where the lens sees nothing)
    ground_weight: np.ndarray  # (H, W) float32
    background_weight: np.ndarray  # (H, W) float32
    noise: np.ndarray  # (K, H + pad, W + pad, 3) int16 bank of sensor-noise images
    ground_from_row: int  # rows above this show no ground
    blend_until_row: int  # rows from here down are pure ground (fog weight < 1 %)
    gain: float  # this camera's exposure relative to the clip's (auto-exposure differs between cameras)
    ground_light: np.ndarray | None = None  # (H, W, 1) float32 extra light on the ground (headlights), x lit colour


def camera_look(setup: CameraSetup, look: Look, rng: np.random.Generator) -> CameraLook:
    """Sky gradient and fog weights of one camera under one clip's look."""
    g = np.clip(setup.elevation * 2.5, 0.0, 1.0)[..., None] ** 0.7
    sky = look.sky_horizon * (1 - g) + look.sky_zenith * g
    distance = setup.ground_distance
    fog = 1.0 - np.exp(-np.where(np.isfinite(distance), distance, MAX_RANGE) / look.fog_distance)
    fade = np.clip((distance - 0.75 * MAX_RANGE) / (0.25 * MAX_RANGE), 0.0, 1.0)
    fog = np.where(np.isfinite(distance), np.maximum(fog, fade), 1.0)
    fog = np.where(setup.valid, fog, 1.0)
    sky[~setup.valid] = 0.0
    shape = (1, distance.shape[0] + _NOISE_PAD, distance.shape[1] + _NOISE_PAD, 3)
    noise = np.round(rng.standard_normal(shape, dtype=np.float32) * look.noise_sigma).astype(np.int16)
    ground_rows = np.nonzero(np.any(fog < 1.0, axis=1))[0]
    ground_from_row = int(ground_rows[0]) if len(ground_rows) else distance.shape[0]
    hazy_rows = np.nonzero(np.any(fog > 0.01, axis=1))[0]
    blend_until_row = max(int(hazy_rows[-1]) + 1 if len(hazy_rows) else 0, ground_from_row)
    ground_light = None
    if look.headlights > 0:  # the ego's headlights on the road: fixed in the ego frame, so fixed per camera
        points = np.concatenate([setup.ground_xy.reshape(-1, 2), np.zeros((distance.size, 1), np.float32)], axis=1)
        extra = headlight_gain(look, points.astype(np.float64)).reshape(distance.shape)
        extra[~np.isfinite(distance)] = 0.0
        base = look.ambient + look.diffuse * max(float(look.sun[2]), 0.0)
        ground_light = (1.0 + extra / base).astype(np.float32)[..., None]
    return CameraLook(
        ground_light=ground_light,
        gain=float(rng.uniform(0.92, 1.08)),
        ground_from_row=ground_from_row,
        blend_until_row=blend_until_row,
        background=np.clip(sky, 0, 255).astype(np.uint8),
        ground_weight=(1.0 - fog).astype(np.float32),
        background_weight=fog.astype(np.float32),
        noise=noise,
    )


@dataclass
class SceneBatch:
    """All meshes of a clip concatenated (actors and scenery), so each camera frame is a few array operations."""

    vertices: np.ndarray  # (V, 3) object frames
    vertex_instance: np.ndarray  # (V,)
    rings: np.ndarray  # (F, R) indices into ``vertices``
    face_instance: np.ndarray  # (F,)
    face_part: np.ndarray  # (F,) global part index
    normal: np.ndarray  # (F, 3) object frames
    anchor: np.ndarray  # (F, 3)
    colour: np.ndarray  # (F, 3)
    emissive: np.ndarray  # (F,)
    part_min: np.ndarray  # (P, 3)
    part_max: np.ndarray  # (P, 3)
    part_instance: np.ndarray  # (P,)
    part_flat: np.ndarray  # (P,) ground decals: drawn first, not in the id buffer
    object_id: np.ndarray  # (I,) 0 = unlabelled scenery, else track id + 1
    sphere_centre: np.ndarray  # (I, 3) bounding sphere, object frame
    sphere_radius: np.ndarray  # (I,)

    @classmethod
    def build(cls, meshes: list[Mesh], object_ids: list[int]) -> SceneBatch:
        vertices, vertex_instance, rings, face_instance, face_part = [], [], [], [], []
        part_min, part_max, part_instance, centres, radii = [], [], [], [], []
        v_offset = p_offset = 0
        for i, mesh in enumerate(meshes):
            vertices.append(mesh.vertices)
            vertex_instance.append(np.full(len(mesh.vertices), i))
            rings.append(mesh.rings + v_offset)
            face_instance.append(np.full(len(mesh.rings), i))
            face_part.append(mesh.part + p_offset)
            part_min.append(mesh.part_min)
            part_max.append(mesh.part_max)
            part_instance.append(np.full(len(mesh.part_min), i))
            centre = (mesh.vertices.min(0) + mesh.vertices.max(0)) / 2
            centres.append(centre)
            radii.append(float(np.linalg.norm(mesh.vertices - centre, axis=1).max()))
            v_offset += len(mesh.vertices)
            p_offset += len(mesh.part_min)
        return cls(
            vertices=np.concatenate(vertices),
            vertex_instance=np.concatenate(vertex_instance),
            rings=np.concatenate(rings),
            face_instance=np.concatenate(face_instance),
            face_part=np.concatenate(face_part),
            normal=np.concatenate([m.normal for m in meshes]),
            anchor=np.concatenate([m.anchor for m in meshes]),
            colour=np.concatenate([m.colour for m in meshes]),
            emissive=np.concatenate([m.emissive for m in meshes]),
            part_min=np.concatenate(part_min),
            part_max=np.concatenate(part_max),
            part_instance=np.concatenate(part_instance),
            part_flat=np.concatenate([m.part_flat for m in meshes]),
            object_id=np.asarray(object_ids, dtype=np.int64),
            sphere_centre=np.array(centres),
            sphere_radius=np.array(radii),
        )


@dataclass
class RenderResult:
    """Rendered BGR image, object-id buffer, and per-object silhouette statistics."""

    image: np.ndarray
    ids: np.ndarray  # (H, W) uint16
    visible_pixels: np.ndarray  # (max_id + 1,)
    silhouettes: dict[int, tuple[int, tuple[int, int, int, int], tuple[float, float, float, float]]]
    # object id -> (unoccluded pixel count, in-image bbox x1,y1,x2,y2, full projected extent x1,y1,x2,y2)


def _clip_polygon(points: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: keep the part of a 3D polygon (N, 3) where plane @ [p, 1] >= 0 for every plane."""
    for plane in planes:
        if len(points) == 0:
            break
        side = points @ plane[:3] + plane[3]
        if np.all(side >= 0):
            continue
        kept = []
        n = len(points)
        for i in range(n):
            a, b = points[i], points[(i + 1) % n]
            sa, sb = side[i], side[(i + 1) % n]
            if sa >= 0:
                kept.append(a)
            if (sa >= 0) != (sb >= 0):
                kept.append(a + (b - a) * (sa / (sa - sb)))
        points = np.array(kept) if kept else np.zeros((0, 3))
    return points


def _project(camera: Camera, points: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) of camera-frame points with z > 0 (distortion applied)."""
    xy = points[:, :2] / points[:, 2:3]
    xy = camera.distort(xy)
    return xy @ camera.K[:2, :2].T + camera.K[:2, 2]


def render_camera(
    setup: CameraSetup,
    look: Look,
    cam_look: CameraLook,
    ground: GroundTexture,
    world_from_ego: np.ndarray,
    batch: SceneBatch,
    ego_from_object: np.ndarray,
    world_rotation: np.ndarray,
    in_range: np.ndarray,
    rng: np.random.Generator,
) -> RenderResult:
    """Render one camera image at one capture time.

    ``world_from_ego`` and ``ego_from_object`` (I, 4, 4) are at the camera's capture time; ``world_rotation``
    (I, 3, 3) lights the faces; ``in_range`` (I,) bool skips far scenery.
    """
    camera = setup.camera
    h, w = camera.height, camera.width
    # ground: ego-frame hit points -> world -> texel, then one remap
    texel_from_ego = ground.texel_from_world() @ np.array(
        [
            [world_from_ego[0, 0], world_from_ego[0, 1], world_from_ego[0, 3]],
            [world_from_ego[1, 0], world_from_ego[1, 1], world_from_ego[1, 3]],
            [0, 0, 1.0],
        ]
    )
    r0, r1 = cam_look.ground_from_row, cam_look.blend_until_row
    image = cam_look.background.copy()
    if r0 < h:
        maps = cv2.transform(setup.ground_xy[r0:], texel_from_ego[:2].astype(np.float32))
        terrain = cv2.remap(
            ground.image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=ground.border
        )
        if cam_look.ground_light is not None:
            terrain = np.clip(terrain * cam_look.ground_light[r0:], 0, 255).astype(np.uint8)
        if r1 > r0:
            image[r0:r1] = cv2.blendLinear(
                terrain[: r1 - r0],
                cam_look.background[r0:r1],
                cam_look.ground_weight[r0:r1],
                cam_look.background_weight[r0:r1],
            )
        image[r1:] = terrain[r1 - r0 :]
    ids = np.zeros((h, w), dtype=np.uint16)

    camera_from_ego = camera.camera_from_ego
    planes = np.array(
        [
            [0, 0, 1, -NEAR],
            [-1, 0, setup.limit_x, 0],
            [1, 0, setup.limit_x, 0],
            [0, -1, setup.limit_y, 0],
            [0, 1, setup.limit_y, 0],
        ],
        dtype=np.float64,
    )
    camera_from_object = camera_from_ego[None] @ ego_from_object  # (I, 4, 4)
    rotation, translation = camera_from_object[:, :3, :3], camera_from_object[:, :3, 3]
    # cull whole instances with their bounding spheres
    centre = np.einsum("iab,ib->ia", rotation, batch.sphere_centre) + translation
    r = batch.sphere_radius
    plane_normals = planes[:, :3] / np.linalg.norm(planes[:, :3], axis=1, keepdims=True)
    offsets = planes[:, 3] / np.linalg.norm(planes[:, :3], axis=1)
    signed = centre @ plane_normals.T + offsets  # (I, 5)
    active = np.all(signed > -r[:, None], axis=1) & (np.linalg.norm(centre, axis=1) < MAX_RANGE + r) & in_range
    camera_in_object = -np.einsum("iba,ib->ia", rotation, translation)  # camera centre in each object frame
    faces = np.nonzero(active[batch.face_instance])[0]
    faces = faces[
        np.einsum("fk,fk->f", batch.normal[faces], camera_in_object[batch.face_instance[faces]] - batch.anchor[faces])
        > 1e-9
    ]
    used_mask = np.zeros(len(batch.vertices), dtype=bool)
    used_mask[batch.rings[faces].ravel()] = True
    used = np.nonzero(used_mask)[0]
    vertices = np.zeros((len(batch.vertices), 3))
    vi = batch.vertex_instance[used]
    vertices[used] = np.einsum("vab,vb->va", rotation[vi], batch.vertices[used]) + translation[vi]
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    outside = np.stack(
        [z < NEAR, x > setup.limit_x * z, -x > setup.limit_x * z, y > setup.limit_y * z, -y > setup.limit_y * z], -1
    )
    face_outside = outside[batch.rings[faces]]  # (F, R, 5)
    faces = faces[~np.any(np.all(face_outside, axis=1), axis=1)]
    face_inside = ~np.any(outside[batch.rings[faces]], axis=(1, 2))
    uv = np.zeros((len(vertices), 2))
    used_mask[:] = False
    used_mask[batch.rings[faces[face_inside]].ravel()] = True
    inside_vertices = np.nonzero(used_mask)[0]
    if len(inside_vertices):
        uv[inside_vertices] = _project(camera, vertices[inside_vertices])
    # Lambert shading in the world frame, fog by object distance, lights glow at night
    fi = batch.face_instance[faces]
    normals_world = np.einsum("fab,fb->fa", world_rotation[fi], batch.normal[faces])
    light = look.ambient + look.diffuse * np.clip(normals_world @ look.sun, 0.0, None)
    if look.headlights > 0:  # headlights light what is ahead of the ego, by the object's distance
        light = light + headlight_gain(look, ego_from_object[:, :3, 3])[fi]
    colours = batch.colour[faces] * light[:, None] * look.exposure * look.tint
    if look.lights_on:
        emissive = batch.emissive[faces]
        colours[emissive] = batch.colour[faces][emissive] * 1.1
    fog = 1.0 - np.exp(-np.linalg.norm(translation[fi], axis=1) / look.fog_distance)
    colours = np.clip(colours * (1 - fog[:, None]) + look.sky_horizon * fog[:, None], 0, 255).tolist()
    # painter's order: parts far to near (distance from the camera to the part's box), faces in mesh order
    parts = batch.face_part[faces]
    pi = batch.part_instance[parts]
    nearest = np.clip(camera_in_object[pi], batch.part_min[parts], batch.part_max[parts])
    part_distance = np.linalg.norm(nearest - camera_in_object[pi], axis=1)
    part_distance[batch.part_flat[parts]] = np.inf  # shadows lie on the ground: draw them before any solid
    order = np.lexsort((faces, parts, -part_distance))
    fixed_all = np.round(np.clip(uv[batch.rings[faces]], -4 * w, 5 * w) * _ONE).astype(np.int32)
    object_ids = np.where(batch.part_flat[parts], -1, batch.object_id[fi]).tolist()
    parts_list = parts.tolist()
    hulls: dict[int, list[np.ndarray]] = {}
    extents: dict[int, list[np.ndarray]] = {}
    current_part, current_points = -1, []

    def flush() -> None:
        if not current_points or current_id < 0:
            return
        hull = cv2.convexHull(np.concatenate(current_points))
        cv2.fillConvexPoly(ids, hull, current_id, cv2.LINE_8, _SHIFT)
        if current_id:
            hulls.setdefault(current_id, []).append(hull)
            extents.setdefault(current_id, []).extend(current_points)

    current_id = 0
    for k in order.tolist():
        if parts_list[k] != current_part:
            flush()
            current_part, current_id, current_points = parts_list[k], object_ids[k], []
        if face_inside[k]:
            polygon = fixed_all[k]
        else:
            clipped = _clip_polygon(vertices[batch.rings[faces[k]]], planes)
            if len(clipped) < 3:
                continue
            polygon = np.round(np.clip(_project(camera, clipped), -4 * w, 5 * w) * _ONE).astype(np.int32)
        cv2.fillPoly(image, [polygon], colours[k], cv2.LINE_AA, _SHIFT)
        current_points.append(polygon)
    flush()

    visible = np.bincount(ids.ravel(), minlength=int(batch.object_id.max(initial=0)) + 1)
    silhouettes = {}
    scratch = np.zeros((h, w), dtype=np.uint8)
    for object_id, object_hulls in hulls.items():
        if visible[object_id] == 0:
            continue
        points = np.concatenate(extents[object_id]).reshape(-1, 2) / _ONE
        full = (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max() + 1),
            float(points[:, 1].max() + 1),
        )
        x0, y0 = max(int(full[0]) - 1, 0), max(int(full[1]) - 1, 0)
        x1, y1 = min(int(np.ceil(full[2])) + 1, w), min(int(np.ceil(full[3])) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = scratch[y0:y1, x0:x1]
        roi[:] = 0
        for hull in object_hulls:
            cv2.fillConvexPoly(roi, hull - np.array([[[x0 * _ONE, y0 * _ONE]]], dtype=np.int32), 1, cv2.LINE_8, _SHIFT)
        count = int(cv2.countNonZero(roi))
        if count == 0:
            continue
        bx, by, bw, bh = cv2.boundingRect(roi)
        silhouettes[object_id] = (count, (x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh), full)

    if look.snow_flakes > 0:
        image = draw_snowfall(image, setup, look, rng)
    if look.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), look.blur_sigma)
    image = cv2.convertScaleAbs(image, alpha=cam_look.gain)
    dy, dx = int(rng.integers(_NOISE_PAD)), int(rng.integers(_NOISE_PAD))
    noise = cam_look.noise[int(rng.integers(len(cam_look.noise))), dy : dy + h, dx : dx + w]
    image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return RenderResult(image, ids, visible, silhouettes)


FLAKE_DIAMETER = 0.02  # metres (a flake with its blur)
FLAKE_FALL = 0.04  # metres a flake falls during one exposure (about 1.2 m/s over 1/30 s)


def draw_snowfall(image: np.ndarray, setup: CameraSetup, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Falling snow in front of one camera: ``look.snow_flakes`` flakes spread uniformly through the camera's view
    volume out to ``SNOW_RANGE`` metres, each drawn at its projected size (at least a faint pixel) and streaked by its
    fall during the exposure; flakes beyond the ground the pixel sees are hidden. Farther snow is the clip's haze."""
    camera = setup.camera
    h, w = image.shape[:2]
    count = look.snow_flakes
    depth = SNOW_RANGE * np.cbrt(rng.uniform((0.4 / SNOW_RANGE) ** 3, 1.0, count))  # uniform in volume
    pixel = np.column_stack([rng.uniform(0, w, count), rng.uniform(0, h, count)])
    rays = camera.unproject(pixel, np.ones(count))
    points = rays * depth[:, None]  # camera frame
    down = camera.camera_from_ego[:3, :3] @ np.array([0.0, 0.0, -1.0])  # the fall direction in the camera frame
    drift = rng.normal(0.0, 0.3, 2)  # some wind, the same for a frame's flakes
    fall = down + camera.camera_from_ego[:3, :3] @ np.array([drift[0], drift[1], 0.0])
    start, start_depth = camera.project(points)
    end, end_depth = camera.project(points + FLAKE_FALL * fall)
    row = np.clip(pixel[:, 1].astype(int), 0, h - 1)
    col = np.clip(pixel[:, 0].astype(int), 0, w - 1)
    behind_ground = depth * np.linalg.norm(rays, axis=1) > setup.ground_distance[row, col]
    keep = (start_depth > 0.1) & (end_depth > 0.1) & ~behind_ground & np.all(np.isfinite(start), 1)
    keep &= np.all(np.isfinite(end), 1)
    size_px = camera.K[0, 0] * FLAKE_DIAMETER / depth
    alpha_layer = np.zeros((h, w), np.float32)
    for (x0, y0), (x1, y1), size in zip(start[keep], end[keep], size_px[keep]):
        thickness = max(1, int(round(size)))
        strength = float(min(1.0, 0.35 + size))  # sub-pixel flakes are faint
        cv2.line(alpha_layer, (int(x0), int(y0)), (int(x1), int(y1)), strength, thickness, cv2.LINE_AA)
    alpha = np.clip(alpha_layer, 0.0, 1.0)[..., None]
    white = np.clip(look.sky_horizon * 1.08, 0, 255).astype(np.float32)
    return np.clip(image * (1.0 - alpha) + white * alpha, 0, 255).astype(np.uint8)
