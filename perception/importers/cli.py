"""``perception import``: nuScenes (mmdet3d info files or raw tables), plain videos and robot logs to drive clips.

perception import nuscenes INFO.json|INFO.pkl --out CLIP [--data-root DIR] [--keep-other]
perception import nuscenes NUSCENES_ROOT --version v1.0-mini --out CLIPS_DIR [--scenes scene-0061 ...]
                           [--no-interpolate]
perception import video VIDEO_OR_IMAGE_FOLDER --out CLIP [--fps 30] [--camera-yaml camera.yaml]
perception import rosbag BAG... --out CLIP [--cameras TOPIC[=NAME] ...] [--rig rig.yaml] [--base-frame base_link]

Bad input exits with status 2 and one line naming the file, the field or topic, what was expected and found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception import", description="Convert datasets and videos to drive clips."
    )
    sub = parser.add_subparsers(dest="source", required=True)
    nus = sub.add_parser(
        "nuscenes", help="nuScenes: an mmdet3d info file (.json/.pkl) or a raw dataset root (v1.0-* tables)"
    )
    nus.add_argument("path", type=Path, help="info file, or the folder holding v1.0-*/, samples/, sweeps/")
    nus.add_argument(
        "--out", type=Path, required=True, help="clip folder (info file) or folder of clips, one per scene (raw)"
    )
    nus.add_argument(
        "--data-root", type=Path, help="info file: folder the image paths are relative to (default: the info file's)"
    )
    nus.add_argument("--version", default="v1.0-mini", help="raw: table folder name (default v1.0-mini)")
    nus.add_argument("--scenes", nargs="+", help="raw: scene names or tokens to import (default: all)")
    nus.add_argument("--cameras", nargs="+", help="camera channels to keep (default: the six surround cameras)")
    nus.add_argument("--reference-camera", default="CAM_FRONT", help="raw: camera whose images define the frames")
    nus.add_argument(
        "--no-interpolate", action="store_true", help="raw: label only keyframes' exact times (others empty)"
    )
    nus.add_argument(
        "--keep-other", action="store_true", help="keep objects outside the 10 detection classes as class 'other'"
    )
    nus.add_argument("--overwrite", action="store_true", help="replace existing clip folders")
    video = sub.add_parser("video", help="a video file or image folder -> one-camera clip")
    video.add_argument("path", type=Path, help="video file (.mp4 .avi .mov .mkv .webm) or folder of images")
    video.add_argument("--out", type=Path, required=True, help="clip folder to write")
    video.add_argument(
        "--fps",
        type=float,
        help="force frame i to i / FPS s (default: the container's presentation times, for variable frame rates; "
        "image folders: their frames.csv 'timestamp' column, else 10 fps)",
    )
    video.add_argument(
        "--camera-yaml", type=Path, help="rig.yaml or 'perception calibrate' output with the camera's K and distortion"
    )
    video.add_argument("--name", default="camera", help="camera name in the clip (default 'camera')")
    video.add_argument("--max-frames", type=int, help="import at most this many frames")
    video.add_argument(
        "--format", default="mp4", choices=["mp4", "avi", "jpg", "png"], help="how frames are stored (default mp4)"
    )
    video.add_argument("--overwrite", action="store_true", help="replace an existing clip folder")
    bag = sub.add_parser(
        "rosbag",
        help="ROS 1 .bag, ROS 2 bag (sqlite3/MCAP) or .mcap -> one multi-camera clip (no ROS install needed)",
        description="Robot log to drive clip: cameras, CameraInfo calibration, tf extrinsics, header.stamp times, "
        "frames grouped around a reference camera, ego poses from Odometry or /tf. Conventions: "
        "perception/importers/rosbag.py.",
    )
    bag.add_argument(
        "bags", type=Path, nargs="+", metavar="BAG", help="bag file(s) of one recording, or a ROS 2 bag folder"
    )
    bag.add_argument("--out", type=Path, required=True, help="clip folder to write")
    bag.add_argument(
        "--cameras",
        nargs="+",
        metavar="TOPIC[=NAME]",
        help="image topics to import, optionally renamed (default: every image topic with a sibling camera_info)",
    )
    bag.add_argument("--rig", type=Path, help="rig.yaml supplying calibration the bag lacks (cameras matched by name)")
    bag.add_argument("--base-frame", default="base_link", help="tf frame that is the ego frame (default base_link)")
    bag.add_argument("--odom-frame", default="odom", help="tf frame of the ego-pose chain odom -> base (default odom)")
    bag.add_argument(
        "--odom-topic", help="nav_msgs/Odometry topic for ego poses (default: /tf chain, else the only one)"
    )
    bag.add_argument("--reference-camera", help="camera whose images define the frames (default: the first)")
    bag.add_argument(
        "--max-skew-ms", type=float, default=50.0, help="largest capture-time gap to the reference camera (default 50)"
    )
    bag.add_argument(
        "--format",
        default="auto",
        choices=["auto", "png", "jpg", "mp4"],
        help="image storage: auto keeps compressed images' bytes and stores raw images as PNG (default)",
    )
    bag.add_argument("--max-frames", type=int, help="import at most this many frames")
    bag.add_argument(
        "--salvage", action="store_true", help="a truncated or unindexed bag: import the messages that can be read"
    )
    bag.add_argument("--overwrite", action="store_true", help="replace an existing clip folder")
    bag.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from perception.clip import ClipError
    from perception.importers.nuscenes_info import InfoFileError
    from perception.importers.safe_pickle import UnsafePickleError
    from perception.rig import RigError

    args = _parser().parse_args(argv)
    try:
        if args.source == "rosbag":
            from perception.importers.rosbag import BagError, BagImportError, main_import
            from perception.importers.tf_tree import TransformError

            try:
                written = [main_import(args).path]
            except (BagError, BagImportError, TransformError) as error:
                print(f"perception import rosbag: error: {error}", file=sys.stderr)
                return 2
            except ModuleNotFoundError as error:
                if error.name not in ("rosbags", "mcap"):
                    raise
                print(
                    f"perception import rosbag: {error.name} is not installed: pip install fleetvision[robot]",
                    file=sys.stderr,
                )
                return 1
        elif args.source == "video":
            from perception.importers.video import import_video

            written = [
                import_video(
                    args.path,
                    args.out,
                    fps=args.fps,
                    camera_yaml=args.camera_yaml,
                    camera_name=args.name,
                    max_frames=args.max_frames,
                    image_format=args.format,
                    overwrite=args.overwrite,
                )
            ]
        elif args.path.is_file():
            from perception.importers.nuscenes_info import import_nuscenes_info

            written = import_nuscenes_info(
                args.path,
                args.out,
                data_root=args.data_root,
                cameras=args.cameras,
                keep_other=args.keep_other,
                overwrite=args.overwrite,
            )
        else:
            from perception.importers.nuscenes_raw import import_nuscenes_raw

            written = import_nuscenes_raw(
                args.path,
                args.out,
                version=args.version,
                scenes=args.scenes,
                cameras=args.cameras,
                reference_camera=args.reference_camera,
                interpolate=not args.no_interpolate,
                keep_other=args.keep_other,
                overwrite=args.overwrite,
            )
    except (ClipError, InfoFileError, UnsafePickleError, RigError) as error:
        print(f"perception import: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
