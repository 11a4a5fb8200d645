"""benchmarks/bench_offline_teacher.py times both teacher variants on the same clips and checks their boxes agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from clip_factory import load_benchmark


def test_times_reuse_against_every_pass_with_identical_boxes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from clip_factory import make_clip, save_tiny_checkpoint

    clips = make_clip(tmp_path / "clips" / "clip_0000", frames=4).parent
    teacher = save_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "speed.md"
    assert (
        load_benchmark("bench_offline_teacher").main(
            [str(teacher), str(clips), "--repeats", "2", "--markdown", str(out)]
        )
        == 0
    )
    text = out.read_text()
    assert "Boxes identical in all 2 pairs" in text and "| reused |" in text and "| every pass |" in text
    with pytest.raises(SystemExit, match="no drive clips"):
        load_benchmark("bench_offline_teacher").main([str(teacher), str(tmp_path / "empty")])
