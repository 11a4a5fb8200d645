"""Drawing for drive clips (torch-free, OpenCV): 3D boxes on camera images, camera mosaics, a bird's-eye-view panel,
whole frames (mosaic beside BEV), and ``perception viz`` to render a clip to a video or a picture.

The same code draws ground truth, pseudo-labels and model outputs: ``style="gt"`` is solid, ``style="pred"`` is dashed
and shows scores. Colours come from the class (or the track id with ``color_by="track"``). Images are BGR uint8.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perception.geometry import BevGrid, transform_points
from perception.labels import Boxes3D, ClipLabels, FrameLabels
from perception.rig import Camera

# BGR, colour-blind-friendly-ish palette (Okabe-Ito first, then tab10 extras)
PALETTE = [
    (0, 159, 230),
    (178, 114, 0),
    (0, 158, 0),
    (66, 228, 240),
    (167, 121, 204),
    (0, 94, 213),
    (233, 180, 86),
    (115, 158, 0),
    (128, 128, 128),
    (255, 200, 120),
    (207, 190, 23),
    (194, 119, 227),
]
# box edges by corner index (geometry.box3d_corners order): bottom 0-3, top 4-7, verticals; the front face is 0,1,5,4
BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]
FRONT_CROSS = [(0, 5), (1, 4)]
STYLES = ("gt", "pred")


def color_for(index: int) -> tuple[int, int, int]:
    """A stable BGR colour for a class id or track id (-1 gives grey)."""
    return (200, 200, 200) if index < 0 else PALETTE[int(index) % len(PALETTE)]


def _box_color(boxes3d: Boxes3D, i: int, color_by: str) -> tuple[int, int, int]:
    if color_by == "track":
        return color_for(int(boxes3d.track_id[i]))
    if color_by == "class":
        return color_for(int(boxes3d.class_id[i]))
    raise ValueError(f"color_by: expected 'class' or 'track', found {color_by!r}")


def _dashed_line(
    image: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: tuple, thickness: int, dash: float = 8.0
) -> None:
    import cv2

    length = float(np.hypot(*(p1 - p0)))
    steps = max(int(length / dash), 1)
    for k in range(0, steps, 2):
        a = p0 + (p1 - p0) * (k / steps)
        b = p0 + (p1 - p0) * (min(k + 1, steps) / steps)
        cv2.line(image, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), color, thickness, cv2.LINE_AA)


def _line(image: np.ndarray, p0: np.ndarray, p1: np.ndarray, color: tuple, thickness: int, style: str) -> None:
    import cv2

    if not (np.all(np.isfinite(p0)) and np.all(np.isfinite(p1))):
        return
    limit = 4 * max(image.shape)  # keep far-off endpoints within int range for cv2
    p0, p1 = np.clip(p0, -limit, limit), np.clip(p1, -limit, limit)
    if style == "pred":
        _dashed_line(image, p0, p1, color, thickness)
    else:
        cv2.line(image, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), color, thickness, cv2.LINE_AA)


def _polyline(image: np.ndarray, uv: np.ndarray, color: tuple, thickness: int, style: str) -> None:
    """Connect points (K, 2): solid, or dashed along the whole length (``pred``); non-finite points break it."""
    if style != "pred":
        for a, b in itertools.pairwise(uv):
            _line(image, a, b, color, thickness, style)
        return
    finite = np.all(np.isfinite(uv), axis=1)
    uv = uv[: np.argmin(finite)] if not finite.all() else uv
    if len(uv) < 2:
        return
    if len(uv) == 2:
        _line(image, uv[0], uv[1], color, thickness, style)
        return
    lengths = np.hypot(*np.diff(uv, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    dash = 8.0
    for start in np.arange(0.0, along[-1], 2 * dash):
        stops = np.concatenate(
            [[start], along[(along > start) & (along < start + dash)], [min(start + dash, along[-1])]]
        )
        points = np.stack([np.interp(stops, along, uv[:, 0]), np.interp(stops, along, uv[:, 1])], axis=1)
        for a, b in itertools.pairwise(points):
            _line(image, a, b, color, thickness, "gt")


def _edge_samples(camera: Camera) -> int:
    """Points per box edge: lens distortion bends straight edges, so distorted cameras draw them as curves."""
    if camera.distortion_model == "fisheye":
        return 16
    return 8 if camera.distortion_model == "radtan" and np.any(camera.distortion) else 1


def _label_text(boxes3d: Boxes3D, i: int, classes: Sequence[str] | None, show_track_id: bool, style: str) -> str:
    class_id = int(boxes3d.class_id[i])
    text = classes[class_id] if classes is not None and 0 <= class_id < len(classes) else str(class_id)
    if show_track_id and boxes3d.track_id[i] >= 0:
        text += f" #{int(boxes3d.track_id[i])}"
    if style == "pred":
        text += f" {float(boxes3d.score[i]):.2f}"
    return text


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], color: tuple, scale: float = 0.45) -> None:
    import cv2

    x, y = origin
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(x, 0, max(image.shape[1] - w - 2, 0)))
    y = int(np.clip(y, h + 2, image.shape[0] - 2))
    cv2.rectangle(image, (x, y - h - 2), (x + w + 2, y + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def draw_boxes3d_on_image(
    image: np.ndarray,
    boxes3d: Boxes3D,
    camera: Camera,
    camera_from_ego: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    color_by: str = "class",
    show_track_id: bool = True,
    style: str = "gt",
    thickness: int = 2,
    min_depth: float = 0.2,
    show_labels: bool = True,
) -> np.ndarray:
    """Draw 3D boxes (ego frame) as wireframes on a copy of ``image`` seen by ``camera``.

    ``camera_from_ego`` maps ego points into the camera (use ``DriveClip.camera_from_ego`` to honour capture time);
    default is the rig's static ``camera.camera_from_ego``. Edges crossing the near plane are clipped in 3D; with a
    distorted lens each edge is drawn through several projected points (the curve the lens makes of it).
    """
    if style not in STYLES:
        raise ValueError(f"style: expected one of {STYLES}, found {style!r}")
    out = np.ascontiguousarray(image).copy()
    if len(boxes3d) == 0:
        return out
    camera_from_ego = camera.camera_from_ego if camera_from_ego is None else camera_from_ego
    corners = transform_points(camera_from_ego, boxes3d.corners())  # (N, 8, 3), camera frame
    order = np.argsort(-corners[:, :, 2].mean(axis=1))  # far first, so near boxes are drawn on top
    samples = _edge_samples(camera)
    for i in order:
        box = corners[i]
        if np.all(box[:, 2] <= min_depth):
            continue
        color = _box_color(boxes3d, i, color_by)
        drawn = False
        for a, b in BOX_EDGES + FRONT_CROSS:
            p, q = box[a], box[b]
            if p[2] <= min_depth and q[2] <= min_depth:
                continue
            if p[2] <= min_depth or q[2] <= min_depth:  # clip the segment at the near plane
                alpha = (min_depth - p[2]) / (q[2] - p[2])
                cut = p + alpha * (q - p)
                p, q = (cut, q) if p[2] <= min_depth else (p, cut)
            steps = np.linspace(0.0, 1.0, samples + 1)[:, None]
            uv, _ = camera.project(p + steps * (q - p))
            if not camera.in_image(uv).any() and not _segment_hits_image(uv, camera):
                continue
            width = max(thickness - 1, 1) if (a, b) in FRONT_CROSS else thickness
            _polyline(out, uv, color, width, style)
            drawn = True
        if drawn and show_labels:
            visible = box[box[:, 2] > min_depth]
            uv, _ = camera.project(visible)
            top = uv[np.argmin(uv[:, 1])]
            if np.all(np.isfinite(top)):
                _put_text(
                    out, _label_text(boxes3d, i, classes, show_track_id, style), (int(top[0]), int(top[1]) - 4), color
                )
    return out


def _segment_hits_image(uv: np.ndarray, camera: Camera) -> bool:
    """Cheap test: does the segment's bounding box overlap the image?"""
    uv = uv[np.all(np.isfinite(uv), axis=1)]
    if len(uv) < 2:
        return False
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    return bool(hi[0] >= 0 and lo[0] < camera.width and hi[1] >= 0 and lo[1] < camera.height)


def draw_boxes2d_on_image(
    image: np.ndarray,
    xyxy: np.ndarray,
    class_id: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    style: str = "gt",
    thickness: int = 1,
) -> np.ndarray:
    """Draw 2D boxes (pixels, xyxy) on a copy of ``image``; solid for ``gt``, dashed for ``pred``."""
    out = np.ascontiguousarray(image).copy()
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)):
        color = color_for(int(class_id[i])) if class_id is not None else (255, 255, 255)
        corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
        for k in range(4):
            _line(out, corners[k], corners[(k + 1) % 4], color, thickness, style)
    return out


def render_mosaic(
    images: dict[str, np.ndarray], columns: int = 3, tile_width: int = 480, show_names: bool = True
) -> np.ndarray:
    """A grid of camera images (row-major in dict order), each resized to ``tile_width`` and titled with its name."""
    import cv2

    if not images:
        raise ValueError("render_mosaic: no images given")
    first = next(iter(images.values()))
    tile_height = int(round(tile_width * first.shape[0] / first.shape[1]))
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    mosaic = np.zeros((rows * tile_height, columns * tile_width, 3), np.uint8)
    for k, (name, image) in enumerate(images.items()):
        tile = cv2.resize(image, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
        if show_names:
            _put_text(tile, name, (4, 18), (255, 255, 255), 0.55)
        r, c = divmod(k, columns)
        mosaic[r * tile_height : (r + 1) * tile_height, c * tile_width : (c + 1) * tile_width] = tile
    return mosaic


MAP_COLORS = {"drivable": (70, 70, 70), "lane": (0, 215, 255), "lane_divider": (0, 215, 255), "road": (70, 70, 70)}


def render_bev(
    boxes3d: Boxes3D | None,
    grid: BevGrid,
    bev_maps: np.ndarray | None = None,
    pred_boxes: Boxes3D | None = None,
    classes: Sequence[str] | None = None,
    bev_channels: Sequence[str] | None = None,
    size: int = 600,
    ring_step: float = 10.0,
    color_by: str = "class",
    show_track_id: bool = False,
    legend: bool = True,
) -> np.ndarray:
    """Bird's-eye-view panel (forward is up): map layers, range rings, ego vehicle, GT boxes solid, predictions dashed.

    ``bev_maps`` is one frame's rasters (C, H, W) uint8 on ``grid`` (non-zero = present), named by ``bev_channels``.
    ``size`` is the panel's long side in pixels.
    """
    import cv2

    rows, cols = grid.shape
    scale = size / max(rows, cols)
    height, width = int(round(rows * scale)), int(round(cols * scale))
    panel = np.full((height, width, 3), 24, np.uint8)
    if bev_maps is not None:
        bev_maps = np.asarray(bev_maps)
        if bev_maps.shape[1:] != (rows, cols):
            raise ValueError(f"render_bev: bev_maps shape {bev_maps.shape} does not match grid {grid.shape}")
        names = list(bev_channels or [f"channel{i}" for i in range(len(bev_maps))])
        for c, name in enumerate(names):
            mask = cv2.resize((bev_maps[c] > 0).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
            color = MAP_COLORS.get(name, color_for(c + 6))
            panel[mask] = (0.5 * panel[mask] + 0.5 * np.array(color)).astype(np.uint8) if c else color

    def to_pixel(xy: np.ndarray) -> np.ndarray:
        rc = grid.ego_to_cell(xy)
        return np.stack([rc[..., 1], rc[..., 0]], -1) * scale

    centre = to_pixel(np.zeros(2))
    for k in range(1, int(max(abs(grid.x_min), grid.x_max, abs(grid.y_min), grid.y_max) / ring_step) + 2):
        radius = int(round(k * ring_step / grid.resolution * scale))
        cv2.circle(panel, tuple(np.round(centre).astype(int)), radius, (60, 60, 60), 1, cv2.LINE_AA)
        _put_text(
            panel, f"{k * ring_step:g} m", (int(centre[0]) + 2, int(centre[1] - radius) + 12), (140, 140, 140), 0.35
        )
    ego = np.array([[3.7, 0.95], [3.7, -0.95], [-1.0, -0.95], [-1.0, 0.95]])  # ~4.7 x 1.9 m, origin at rear axle
    cv2.fillPoly(panel, [np.round(to_pixel(ego)).astype(np.int32)], (255, 255, 255), cv2.LINE_AA)
    cv2.arrowedLine(
        panel,
        tuple(np.round(centre).astype(int)),
        tuple(np.round(to_pixel(np.array([6.0, 0.0]))).astype(int)),
        (255, 255, 255),
        1,
        cv2.LINE_AA,
        tipLength=0.3,
    )
    for boxes, style in ((boxes3d, "gt"), (pred_boxes, "pred")):
        if boxes is None or len(boxes) == 0:
            continue
        footprint = to_pixel(boxes.corners()[:, :4, :2])  # bottom face, (N, 4, 2)
        for i in range(len(boxes)):
            color = _box_color(boxes, i, color_by)
            for k in range(4):
                _line(panel, footprint[i, k], footprint[i, (k + 1) % 4], color, 2 if style == "gt" else 1, style)
            front_mid = footprint[i, :2].mean(axis=0)
            _line(panel, footprint[i].mean(axis=0), front_mid, color, 1, style)
            if show_track_id and boxes.track_id[i] >= 0:
                _put_text(panel, str(int(boxes.track_id[i])), tuple(np.round(footprint[i, 0]).astype(int)), color, 0.35)
    if legend:
        _draw_legend(panel, boxes3d, pred_boxes, classes)
    return panel


def _draw_legend(panel: np.ndarray, gt: Boxes3D | None, pred: Boxes3D | None, classes: Sequence[str] | None) -> None:
    present = sorted({int(c) for boxes in (gt, pred) if boxes is not None for c in boxes.class_id})
    entries: list[tuple[str, tuple, str]] = []
    if gt is not None and len(gt):
        entries.append(("ground truth", (255, 255, 255), "gt"))
    if pred is not None and len(pred):
        entries.append(("prediction", (255, 255, 255), "pred"))
    for c in present:
        entries.append((classes[c] if classes is not None and c < len(classes) else f"class {c}", color_for(c), "gt"))
    y = panel.shape[0] - 8 - 14 * (len(entries) - 1)
    for text, color, style in entries:
        _line(panel, np.array([8.0, y - 4.0]), np.array([30.0, y - 4.0]), color, 2, style)
        _put_text(panel, text, (34, y), color, 0.4)
        y += 14


def _frame_boxes(labels: ClipLabels | None, index: int) -> FrameLabels | None:
    if labels is None:
        return None
    if not 0 <= index < len(labels.frames):
        raise IndexError(f"labels hold {len(labels.frames)} frames, asked for frame {index}")
    return labels.frames[index]


def default_grid(labels: ClipLabels | None) -> BevGrid:
    """The labels' BEV grid when they carry maps, else +-50 m around the ego vehicle."""
    if labels is not None and labels.bev is not None:
        return labels.bev.grid
    return BevGrid(x_min=-50.0, x_max=50.0, y_min=-50.0, y_max=50.0, resolution=0.5)


def compose_frame(
    clip,
    frame,
    labels: ClipLabels | None = None,
    pred_labels: ClipLabels | None = None,
    grid: BevGrid | None = None,
    tile_width: int = 480,
    show_boxes2d: bool = False,
) -> np.ndarray:
    """Render an already-decoded ``Frame`` of ``clip``: annotated camera mosaic beside the BEV panel (BGR)."""
    import cv2

    gt = _frame_boxes(labels, frame.index)
    pred = _frame_boxes(pred_labels, frame.index)
    classes = (labels or pred_labels).classes if (labels or pred_labels) is not None else None
    pred_classes = pred_labels.classes if pred_labels is not None else classes
    annotated = {}
    for name, image in frame.images.items():
        camera, camera_from_ego = clip.rig[name], clip.camera_from_ego(frame.index, name)
        if gt is not None:
            image = draw_boxes3d_on_image(image, gt.boxes3d, camera, camera_from_ego, classes, style="gt")
            if show_boxes2d and name in gt.boxes2d:
                image = draw_boxes2d_on_image(image, gt.boxes2d[name].xyxy, gt.boxes2d[name].class_id, classes)
        if pred is not None:
            image = draw_boxes3d_on_image(image, pred.boxes3d, camera, camera_from_ego, pred_classes, style="pred")
        annotated[name] = image
    columns = {1: 1, 2: 2, 4: 2}.get(len(annotated), 3)  # 4 cameras as 2x2
    mosaic = render_mosaic(annotated, columns=columns, tile_width=tile_width)
    grid = grid or default_grid(labels or pred_labels)
    maps, channels = None, None
    source = labels if labels is not None and labels.bev is not None else pred_labels
    if source is not None and source.bev is not None and frame.index < len(source.bev.data):
        maps, channels = source.bev.data[frame.index], source.bev.channels
        grid = source.bev.grid
    bev = render_bev(
        gt.boxes3d if gt else None,
        grid,
        maps,
        pred.boxes3d if pred else None,
        classes,
        channels,
        size=max(mosaic.shape[0], 320),
    )
    if bev.shape[0] != mosaic.shape[0]:
        bev = cv2.resize(bev, (int(round(bev.shape[1] * mosaic.shape[0] / bev.shape[0])), mosaic.shape[0]))
    canvas = np.concatenate([mosaic, bev], axis=1)
    _put_text(
        canvas,
        f"{clip.name}  frame {frame.index}  t={frame.timestamp:.3f}s",
        (4, canvas.shape[0] - 6),
        (255, 255, 255),
        0.5,
    )
    return canvas[: canvas.shape[0] // 2 * 2, : canvas.shape[1] // 2 * 2]  # even size for video codecs


def render_frame(
    clip,
    index: int,
    labels: ClipLabels | None = None,
    pred_labels: ClipLabels | None = None,
    grid: BevGrid | None = None,
    tile_width: int = 480,
    cameras: Sequence[str] | None = None,
) -> np.ndarray:
    """Frame ``index`` of a ``DriveClip``: camera mosaic with boxes beside the BEV panel (BGR uint8).

    ``labels`` defaults to the clip's own labels (drawn solid); ``pred_labels`` are drawn dashed with scores.
    """
    labels = clip.labels if labels is None else labels
    frame = clip.read_frame(index, cameras)
    return compose_frame(clip, frame, labels, pred_labels, grid, tile_width)


def main(argv: list[str] | None = None) -> int:
    """``perception viz CLIP --out preview.mp4|preview.png|clip.rrd|clip.mcap [--frame N] [--labels OTHER.json]``."""
    import cv2
    from tqdm import tqdm

    from perception.clip import ClipError, DriveClip
    from perception.errors import EXIT_BAD_INPUT, InputError
    from perception.video import VideoWriter

    parser = argparse.ArgumentParser(
        prog="perception viz", description="Render a drive clip (cameras + 3D boxes + BEV)."
    )
    parser.add_argument("clip", type=Path, help="clip folder (rig.yaml, frames.csv, cameras/), or a plain video")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output .mp4/.avi (video), .png/.jpg (one frame), .rrd (Rerun) or .mcap (Foxglove; perception export)",
    )
    parser.add_argument("--frame", type=int, default=0, help="frame index for a picture output (default 0)")
    parser.add_argument(
        "--labels",
        type=Path,
        help="another labels.json (predictions, pseudo-labels) drawn dashed beside the clip's own",
    )
    parser.add_argument("--no-gt", action="store_true", help="do not draw the clip's own labels")
    parser.add_argument("--max-frames", type=int, help="render at most this many frames (video output)")
    parser.add_argument("--cameras", nargs="+", help="subset of camera names (default: all)")
    parser.add_argument("--tile-width", type=int, default=480, help="width of each camera tile in pixels")
    parser.add_argument("--fps", type=float, help="output video frame rate (default: from the clip's timestamps)")
    parser.add_argument("--boxes2d", action="store_true", help="also draw the clip's 2D boxes (thin, per camera)")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() in (".rrd", ".mcap"):  # the viewer recordings of ``perception export``
        from perception.export.cli import main as export_main

        forwarded = [
            "rerun" if args.out.suffix.lower() == ".rrd" else "foxglove",
            str(args.clip),
            "--out",
            str(args.out),
        ]
        forwarded += ["--labels", str(args.labels)] if args.labels else []
        forwarded += ["--no-gt"] if args.no_gt else []
        forwarded += ["--max-frames", str(args.max_frames)] if args.max_frames else []
        return export_main(forwarded)
    try:
        clip_parts = ("rig.yaml", "frames.csv", "cameras")  # any of them: a (broken) clip, not an image folder
        is_plain_video = args.clip.exists() and not any((args.clip / part).exists() for part in clip_parts)
        clip = DriveClip.from_video(args.clip) if is_plain_video else DriveClip.open(args.clip)
        labels = None if args.no_gt else clip.labels
        pred = ClipLabels.load(args.labels, camera_names=clip.rig.names) if args.labels else None
        if pred is not None and len(pred.frames) != clip.num_frames:
            raise ClipError(f"{args.labels}: holds {len(pred.frames)} frames, clip {args.clip} has {clip.num_frames}")
        suffix = args.out.suffix.lower()
        if suffix in (".png", ".jpg", ".jpeg"):
            image = compose_frame(
                clip,
                clip.read_frame(args.frame, args.cameras),
                labels,
                pred,
                tile_width=args.tile_width,
                show_boxes2d=args.boxes2d,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            ok, encoded = cv2.imencode(suffix, image)
            if not ok:
                raise ClipError(f"{args.out}: OpenCV could not encode the picture")
            from perception.atomic import atomic_write_bytes

            atomic_write_bytes(args.out, encoded.tobytes())
            print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}, frame {args.frame})")
            return 0
        stop = clip.num_frames if args.max_frames is None else min(clip.num_frames, args.max_frames)
        fps = args.fps or (float(1.0 / np.median(np.diff(clip.timestamps))) if clip.num_frames > 1 else 10.0)
        with VideoWriter(args.out, fps) as writer:
            for frame in tqdm(
                clip.frames(args.cameras, 0, stop), total=stop, desc=f"rendering {clip.name}", unit="frame"
            ):
                writer.write(
                    compose_frame(clip, frame, labels, pred, tile_width=args.tile_width, show_boxes2d=args.boxes2d)
                )
        print(f"wrote {args.out} ({stop} frames at {fps:.2f} fps)")
        return 0
    except (InputError, IndexError) as error:
        print(f"perception viz: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
