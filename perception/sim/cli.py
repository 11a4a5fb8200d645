"""``perception synth``: generate a synthetic multi-camera dataset of drive clips."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception synth",
        description="Generate synthetic multi-camera drive clips (images, poses, 3D/2D boxes, BEV maps) for a rig.",
    )
    parser.add_argument("--rig", required=True, type=Path, help="rig.yaml (e.g. configs/rigs/nuscenes_like_6cam.yaml)")
    parser.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    parser.add_argument("--frames", type=int, default=40, help="frames per clip (default 40)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (clips clip_0000, clip_0001, ...)")
    parser.add_argument(
        "--seed", type=int, default=0, help="dataset seed (default 0); clip i uses a seed derived from it"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate, Hz (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--image-format", default="mp4", choices=["mp4", "avi", "jpg", "png"], help="camera storage")
    parser.add_argument(
        "--capture-offset",
        type=float,
        default=0.008,
        help="seconds between consecutive cameras' capture times, rig order (default 0.008)",
    )
    parser.add_argument("--bev-range", type=float, default=25.0, help="BEV grid half extent, metres (default 25)")
    parser.add_argument("--bev-resolution", type=float, default=0.5, help="BEV cell size, metres (default 0.5)")
    parser.add_argument(
        "--weather",
        choices=["fog", "low_light", "snow"],
        default=None,
        help="render every clip under this test condition (same world and labels as the clear clip of the seed)",
    )
    parser.add_argument("--weather-severity", type=int, choices=[1, 2, 3], default=2, help="1..3 (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _same_rig(a, b) -> bool:
    """Same cameras (names, sizes, lens model) with the same calibration to 1e-6 (rig.yaml rounds)."""
    import numpy as np

    if a.names != b.names:
        return False
    for x, y in zip(a, b):
        if (x.width, x.height, x.distortion_model) != (y.width, y.height, y.distortion_model):
            return False
        if x.distortion.shape != y.distortion.shape or not np.allclose(x.distortion, y.distortion, atol=1e-6):
            return False
        if not (np.allclose(x.K, y.K, atol=1e-6) and np.allclose(x.ego_from_camera, y.ego_from_camera, atol=1e-6)):
            return False
    return True


def _mismatch(path: Path, expected: dict) -> str | None:
    """How the finished clip at ``path`` differs from what this run would write (``expected``: rig dict, frames,
    seed, fps, capture_offset, image_format, bev_grid), or None when it is the same clip."""
    import json

    from perception.clip import camera_source
    from perception.rig import Rig

    try:
        found = {"rig": Rig.load(path / "rig.yaml")}
        found["frames"] = sum(1 for line in (path / "frames.csv").read_text().splitlines()[1:] if line.strip())
        labels = json.loads((path / "labels.json").read_text())
        provenance = labels.get("provenance", {})
        for key in ("seed", "fps", "capture_offset"):
            found[key] = provenance.get(key)
        found["bev_grid"] = labels.get("bev", {}).get("grid")
        source = camera_source(path, found["rig"].names[0])
        found["image_format"] = None if source is None else (source.suffix[1:] if source.is_file() else "folder")
    except (OSError, ValueError, KeyError, IndexError, AttributeError) as error:
        return f"it cannot be read back ({type(error).__name__}: {error})"
    if found["image_format"] == "folder":  # image folders: jpg or png
        images = sorted((path / "cameras" / found["rig"].names[0]).iterdir())
        found["image_format"] = images[0].suffix[1:] if images else None
    differences = []
    for key, value in expected.items():
        if key == "rig":
            same = _same_rig(found["rig"], value)
        elif isinstance(value, float):
            same = isinstance(found.get(key), int | float) and abs(found[key] - value) < 1e-9
        else:
            same = found.get(key) == value
        if not same:
            shown = "a different rig" if key == "rig" else f"{found.get(key)!r}"
            wanted = "this run's rig" if key == "rig" else f"{value!r}"
            name = "clip seed (derived from --seed)" if key == "seed" else key
            differences.append(f"{name}: {shown} (this run: {wanted})")
    return "; ".join(differences) or None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from perception.geometry import BevGrid
    from perception.rig import Rig, RigError
    from perception.sim.generate import clip_is_complete, clip_seed, generate_dataset

    for name in ("clips", "frames", "workers"):
        if getattr(args, name) < 1:
            print(
                f"perception synth: --{name.replace('_', '-')}: expected >= 1, found {getattr(args, name)}",
                file=sys.stderr,
            )
            return 2
    start = time.perf_counter()
    try:
        rig = Rig.load(args.rig)
        grid = BevGrid(-args.bev_range, args.bev_range, -args.bev_range, args.bev_range, args.bev_resolution)
    except (RigError, ValueError) as error:
        print(f"perception synth: {error}", file=sys.stderr)
        return 2
    kept = []
    for index in range(args.clips):  # finished clips are kept only when they are the clips this run would write
        path = args.out / f"clip_{index:04d}"
        if not clip_is_complete(path):
            continue
        expected = {
            "rig": rig,
            "frames": args.frames,
            "seed": clip_seed(args.seed, index),
            "fps": float(args.fps),
            "capture_offset": float(args.capture_offset),
            "image_format": args.image_format,
            "bev_grid": grid.to_dict(),
        }
        problem = _mismatch(path, expected)
        if problem is not None:
            print(
                f"perception synth: {path}: expected the clip this run would write (or none), found one written with "
                f"other settings: {problem}; hint: choose another --out, or delete {args.out} to regenerate",
                file=sys.stderr,
            )
            return 2
        kept.append(path)
    try:
        paths = generate_dataset(
            args.out,
            rig,
            clips=args.clips,
            frames=args.frames,
            seed=args.seed,
            workers=args.workers,
            progress=not args.quiet,
            fps=args.fps,
            image_format=args.image_format,
            capture_offset=args.capture_offset,
            bev_grid=grid,
            weather=args.weather,
            weather_severity=args.weather_severity,
        )
    except (RigError, FileExistsError, ValueError) as error:
        print(f"perception synth: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    size = f"{args.frames} frames x {len(rig)} cameras"
    if kept:
        print(
            f"wrote {len(paths) - len(kept)} clips and kept {len(kept)} identical finished ones (same rig, frames, "
            f"seed): {len(paths)} clips x {size} in {args.out} ({elapsed:.1f} s)"
        )
    else:
        print(f"wrote {len(paths)} clips x {size} to {args.out} in {elapsed:.1f} s")
    others = sorted(p.name for p in args.out.glob("clip_*") if p.is_dir() and p not in paths)
    if others:
        print(f"note: {args.out} also holds {others[:3]}{' ...' if len(others) > 3 else ''} from an earlier run")
    return 0
