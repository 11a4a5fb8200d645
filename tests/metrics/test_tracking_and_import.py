"""Video AP50 helper and the torch-free import guarantee of perception.metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perception.metrics import video_box_ap

REPO = Path(__file__).resolve().parents[2]


def test_video_box_ap50_hand_computed() -> None:
    """Frame 0: GT hit (score .9). Frame 1: FP (score .8), GT hit (score .7): same curve as det2d's hand case."""
    gt = [{"xyxy": [[0, 0, 10, 10]], "class_id": [0]}, {"xyxy": [[100, 100, 120, 120]], "class_id": [0]}]
    pred = [
        {"xyxy": [[0, 0, 10, 10]], "class_id": [0], "score": [0.9]},
        {"xyxy": [[50, 50, 60, 60], [101, 100, 121, 120]], "class_id": [0, 0], "score": [0.8, 0.7]},
    ]
    result = video_box_ap(pred, gt, ["person"])
    assert result["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-12)
    assert result["AR"] == pytest.approx(1.0)
    assert result["num_frames"] == 2
    strict = video_box_ap(pred, gt, ["person"], iou_threshold=0.95)  # the shifted box (IoU 19/21) no longer hits
    assert strict["AP"] < result["AP"]
    with pytest.raises(ValueError, match="frames"):
        video_box_ap(pred[:1], gt, ["person"])


def test_import_does_not_pull_torch() -> None:
    """`import perception.metrics` works with torch made unimportable."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import perception.metrics\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
