"""benchmarks/bench_refine_grid.py reads its grid as a Tracker3DConfig field and YAML values, and refuses others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clip_factory import load_benchmark


def test_grid_values_are_yaml_and_keys_are_tracker_fields() -> None:
    grid = load_benchmark("bench_refine_grid").parse_grid
    assert grid("stationary_max_speed=null,0.5,1") == ("stationary_max_speed", [None, 0.5, 1])
    assert grid("class_vote=false,true") == ("class_vote", [False, True])
    with pytest.raises(SystemExit, match="stationary_max_speed"):
        grid("stationary_max_sped=0.5")  # a typo names the fields it could have meant
    with pytest.raises(SystemExit, match="expected KEY=V1,V2"):
        grid("min_length=")


def _write_cache(cache: Path, clip: Path, per_frame) -> None:
    """Stand in for the teacher: its cached per-frame output (the job's views: bidirectional) for ``clip``."""
    from perception.clip import DriveClip
    from perception.labels import Boxes3D

    frames = [per_frame(frame.boxes3d) for frame in DriveClip.open(clip).labels.frames]
    arrays = {f"{i}_{k}": getattr(b, k) for i, b in enumerate(frames) for k in Boxes3D._shapes}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / f"{clip.name}.bidirectional.npz", **arrays)


def test_scores_raw_and_refined_labels_per_split_from_the_cache_or_the_teacher(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from clip_factory import make_clip, save_tiny_checkpoint

    main = load_benchmark("bench_refine_grid").main
    cached = make_clip(tmp_path / "val" / "clip_0000", frames=6).parent
    _write_cache(tmp_path / "cache" / "val", cached / "clip_0000", lambda truth: truth)  # a perfect teacher
    inferred = make_clip(tmp_path / "test" / "clip_0000", frames=6).parent  # not cached: the teacher runs
    teacher = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "table.md"
    argv = [str(teacher), str(cached), str(inferred), "--raw", "--grid", "min_length=1,3"]
    assert main([*argv, "--cache", str(tmp_path / "cache"), "--markdown", str(out)]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| val") or
            line.startswith("| test")]  # fmt: skip
    assert [(row[0], row[1]) for row in rows] == [
        (f"| {split} (1 clips)", setting) for split in ("val", "test") for setting in ("raw per-frame", "1", "3")
    ]
    assert all(len(row) == 5 + 2 * 6 for row in rows)  # split, setting, mAP, NDS, mAVE, AP@2m and AVE per class
    assert rows[0][2] == "1.000" and rows[1][2] == "1.000"  # the perfect teacher's boxes, raw and refined
    assert all(0.0 <= float(row[2]) < 0.5 for row in rows[3:])  # a random tiny model
    assert len(list((tmp_path / "cache" / "test").glob("clip_0000.*.npz"))) == 1  # its output is cached by split
    pooled = tmp_path / "pooled.md"  # both splits as one (clips of the same name in each), the job's setting only
    assert main([str(teacher), str(cached), str(inferred), "--pool", "--cache", str(tmp_path / "cache"),
                 "--markdown", str(pooled)]) == 0  # fmt: skip
    rows = [line.split(" | ") for line in pooled.read_text().splitlines() if line.startswith("| val + test")]
    assert [(row[0], row[1]) for row in rows] == [("| val + test (2 clips)", "the job's")]
    assert 0.0 < float(rows[0][2]) < 1.0  # one perfect clip, one random
    with pytest.raises(SystemExit, match="must differ"):
        main([str(teacher), str(cached), str(make_clip(tmp_path / "b" / "val" / "clip_0000", frames=2).parent)])
