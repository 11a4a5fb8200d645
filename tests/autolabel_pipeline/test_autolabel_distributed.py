"""Lightning DDP (2 CPU processes, gloo) shards clips and writes exactly the single-process outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from autolabel_fakes import write_blob_clip, write_blob_video

from autolabel.distributed import ShardSampler

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_shard_sampler_covers_every_clip_once() -> None:
    shards = [list(ShardSampler(7, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(7))
    assert [len(s) for s in shards] == [3, 2, 2]  # no padding duplicates


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow  # two Lightning processes start in ~15-30 s on 2 shared cores
def test_two_process_ddp_equals_single_process(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    for k in range(3):
        write_blob_video(inputs / f"v{k}.mp4", frames=16, offset=4 * k)
    write_blob_clip(inputs / "clips" / "clip_0", frames=8)
    (inputs / "broken.mp4").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]), "SOURCE_DATE_EPOCH": "1700000000"}
    base = [
        sys.executable,
        "-m",
        "autolabel",
        str(inputs),
        "--teacher",
        "class_path:autolabel_fakes.BlobTeacher",
        "--no-progress",
    ]
    single = subprocess.run(base + ["--out", str(tmp_path / "single")], env=env, capture_output=True, timeout=300)
    ddp = subprocess.run(
        base + ["--out", str(tmp_path / "ddp"), "--workers", "2"],
        env=env,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert single.returncode == 3 and ddp.returncode == 3, ddp.stderr.decode()[-2000:]
    expected, found = _tree_bytes(tmp_path / "single"), _tree_bytes(tmp_path / "ddp")
    assert sorted(found) == sorted(expected)
    assert [name for name in expected if expected[name] != found[name]] == []
    assert b"all distributed processes registered" in ddp.stderr.lower() + ddp.stdout.lower()
