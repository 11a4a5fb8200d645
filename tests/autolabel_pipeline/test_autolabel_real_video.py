"""Real footage with the YOLOX-Nano teacher: MOTChallenge TUD-Campus scored by ``autolabel eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolabel.cli import main

SHARED = Path(__file__).resolve().parents[2] / "../shared/data"
MODEL = SHARED / "models/yolox_nano_coco/yolox_nano.onnx"
SEQUENCE = SHARED / "mot15/TUD-Campus"


@pytest.mark.shared_data
@pytest.mark.skipif(not (MODEL.is_file() and SEQUENCE.is_dir()), reason=f"shared data absent ({SHARED})")
def test_yolox_pseudo_labels_on_tud_campus(tmp_path: Path) -> None:
    inputs = tmp_path / "in" / "TUD-Campus"
    inputs.mkdir(parents=True)
    (inputs / "TUD-Campus.mp4").symlink_to(SEQUENCE / "TUD-Campus.mp4")
    out = tmp_path / "labels"
    assert (
        main([str(tmp_path / "in"), "--out", str(out), "--teacher", str(MODEL), "--batch", "8", "--no-progress"]) == 0
    )
    assert main(["eval", str(out), "--gt", str(SHARED / "mot15")]) == 0
    clip = json.loads((out / "metrics.json").read_text())["clips"]["TUD-Campus/TUD-Campus"]
    assert clip["det2d"]["AP50"] > 0.6  # measured 0.88 (YOLOX-Nano + offline refinement)
    tracking = clip["tracking"]["camera"]
    assert tracking["idf1"] > 0.5 and tracking["mota"] > 0.3  # measured IDF1 0.86, MOTA 0.72
