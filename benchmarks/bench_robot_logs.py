"""Robot logs in and viewers out: import rate of ``perception import rosbag`` next to the floor (rosbags reading and
deserialising the same messages), and the rate of the Rerun and Foxglove exports, measured side by side.

    .venv/bin/python benchmarks/bench_robot_logs.py [--frames 30] [--rig configs/rigs/nuscenes_like_6cam.yaml]

A synthetic clip is written as two ROS 1 bags (raw rgb8 images; JPEG CompressedImage) with the test helper
tests/importers/bag_writer.py, then imported back; the clip is exported to .rrd and .mcap. Prints a table and
writes benchmarks/results/robot_logs.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _read_floor(bag: Path) -> int:
    """Read and deserialise every image message (what any importer must at least do)."""
    from rosbags.highlevel import AnyReader

    count = 0
    with AnyReader([bag]) as reader:
        images = [c for c in reader.connections if c.msgtype.endswith("Image")]
        for connection, _, raw in reader.messages(connections=images):
            reader.deserialize(raw, connection.msgtype)
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", type=Path, default=REPO / "configs" / "rigs" / "nuscenes_like_6cam.yaml")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "robot_logs.md")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests" / "importers"))
    from bag_writer import write_clip_as_bag

    from perception.clip import DriveClip
    from perception.export.foxglove import export_foxglove
    from perception.export.rerun import export_rerun
    from perception.export.scene import load_sources
    from perception.importers.rosbag import import_rosbag
    from perception.rig import Rig
    from perception.sim.generate import generate_clip

    rig = Rig.load(args.rig)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    work = Path(tempfile.mkdtemp(prefix="bench_robot_"))
    rows = []
    try:
        clip_path = generate_clip(work / "clip", rig, frames=args.frames, seed=5, image_format="mp4")
        images = args.frames * len(rig)
        for kind, compressed in (("raw rgb8", ()), ("JPEG compressed", tuple(rig.names))):
            bag = write_clip_as_bag(clip_path, work / f"{len(rows)}.bag", compressed=compressed)
            size_mb = bag.stat().st_size / 1e6
            floor_s, count = _timed(lambda bag=bag: _read_floor(bag))
            assert count == images, (count, images)
            import_s, _ = _timed(lambda bag=bag: import_rosbag([bag], work / f"import_{len(rows)}", progress=False))
            rows.append(
                (f"import {kind} bag ({size_mb:.0f} MB)", images / import_s, images / floor_s, import_s / floor_s)
            )
        clip = DriveClip.open(clip_path)
        sources = load_sources(clip)
        for name, export in (("rerun", export_rerun), ("foxglove", export_foxglove)):
            out = work / f"clip.{'rrd' if name == 'rerun' else 'mcap'}"
            export_s, _ = _timed(lambda export=export, out=out: export(clip, out, sources, progress=False))
            rows.append((f"export {name} ({out.stat().st_size / 1e6:.1f} MB)", images / export_s, None, None))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = "| step | camera images/s | floor: rosbags read+deserialise, images/s | time / floor |"
    lines = [header, "|---|---|---|---|"]
    for step, rate, floor, ratio in rows:
        floor_text = f"{floor:.0f}" if floor is not None else "-"
        ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
        lines.append(f"| {step} | {rate:.0f} | {floor_text} | {ratio_text} |")
    context = (
        f"{args.frames} frames x {len(rig)} cameras ({rig.cameras[0].width}x{rig.cameras[0].height}), "
        f"{platform.machine()}, {os.cpu_count()} cores, load average at start {load:.1f}"
    )
    text = "\n".join([f"# Robot logs in, viewers out ({context})", "", *lines, ""])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
