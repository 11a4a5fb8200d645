"""predict_step carries the temporal state across consecutive windows of a clip (batch size 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from clip_factory import make_clip
from conftest import TINY_OVERRIDES
from torch.utils.data import default_collate

from perception.clip import DriveClip
from perception.data.cache import FrameCache
from perception.data.dataset import ClipWindowDataset
from perception.training.module import PerceptionModule


def test_predict_state_flows_across_windows(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PerceptionModule(model_name="bev_tiny", model_overrides=TINY_OVERRIDES, ema_decay=None).eval()
    clip = DriveClip.open(make_clip(tmp_path / "clip", frames=4))
    dataset = ClipWindowDataset(
        [clip],
        cameras=["front", "left"],
        spec=module.spec,
        window=2,
        stride=2,
        cache=FrameCache(tmp_path / "cache"),
        with_targets=False,
    )
    assert dataset.windows == [(0, 0), (0, 2)]
    first, second = (default_collate([dataset[i]]) for i in range(2))
    # the window starting at frame 2 still knows the ego motion from frame 1
    np.testing.assert_allclose(second["prev_from_curr"][0, 0, 0, 3].item(), 0.5, atol=1e-5)
    assert second["state_valid"][0].tolist() == [0.0, 1.0]
    module.on_predict_epoch_start()
    with torch.no_grad():
        module.predict_step(first, 0)
        assert module._predict_chain is not None and module._predict_chain[1] == 1
        chained = module.run_window(module.eval_model, second, module._predict_chain[2])
        fresh = module.run_window(module.eval_model, second)
        records = module.predict_step(second, 1)
    assert not torch.allclose(chained["segmentation"][:, 0], fresh["segmentation"][:, 0])
    assert [r["frame_index"] for r in records] == [2, 3]
    assert records[0]["bev"].shape == (2, 24, 24)
