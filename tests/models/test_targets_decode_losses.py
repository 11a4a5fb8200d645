"""Target encoding -> decoding round trips, exportable top-K decode, and the losses."""

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.models.decode import decode_bev_detections, decode_det2d, decode_det2d_topk, decode_topk
from perception.models.losses import compute_losses, focal_heatmap_loss, segmentation_loss
from perception.models.targets import encode_bev_targets, encode_det2d_targets, gaussian_radius

GRID = {"x_min": -20.0, "x_max": 20.0, "y_min": -16.0, "y_max": 16.0, "resolution": 0.8}


def gt_boxes() -> dict[str, np.ndarray]:
    return {
        "center": np.array(
            [[10.3, 4.1, 0.8], [-7.7, -9.2, 1.1], [2.05, -3.3, 0.4], [18.0, 12.0, 0.9], [30.0, 0.0, 1.0]]
        ),
        "size": np.array([[4.5, 1.9, 1.6], [10.0, 2.5, 3.2], [0.6, 0.7, 1.8], [4.0, 1.8, 1.5], [4.0, 1.8, 1.5]]),
        "yaw": np.array([0.3, -2.9, 3.1, -0.5, 0.0]),
        "velocity": np.array([[5.0, 0.2], [-3.0, 1.0], [np.nan, np.nan], [0.0, 0.0], [1.0, 1.0]]),
        "class_id": np.array([0, 1, 3, 0, 2]),
    }


def perfect_outputs(targets: dict[str, np.ndarray], keys: list[str], heatmap_key: str) -> dict[str, torch.Tensor]:
    """Outputs a perfect model would produce: logits of the target heatmap and the target regressions."""
    out = {k: torch.from_numpy(targets[k]).unsqueeze(0) for k in keys}
    prob = out[heatmap_key].clamp(1e-6, 1 - 1e-6)
    out[heatmap_key] = torch.log(prob / (1 - prob))
    return out


def test_gaussian_radius_grows_with_box_size_and_shrinks_with_overlap() -> None:
    assert gaussian_radius(2, 2) < gaussian_radius(8, 8)
    assert gaussian_radius(8, 8, min_overlap=0.7) < gaussian_radius(8, 8, min_overlap=0.1)


def test_bev_targets_round_trip_through_decode() -> None:
    boxes = gt_boxes()
    targets = encode_bev_targets(**boxes, num_classes=4, grid=GRID)
    assert targets["heatmap"].shape == (4, 50, 40) and targets["reg_mask"].sum() == 4  # the box at x=30 is off-grid
    assert targets["velocity_mask"].sum() == 3  # unknown (NaN) velocity is masked
    outputs = perfect_outputs(targets, ["heatmap", "offset", "z", "size", "yaw", "velocity"], "heatmap")
    (decoded,) = decode_bev_detections(outputs, grid=GRID, k=20, score_threshold=0.5)
    assert len(decoded["score"]) == 4
    order = np.argsort(decoded["center"][:, 0])[::-1]
    expected = [3, 0, 2, 1]  # by decreasing x
    np.testing.assert_allclose(decoded["center"][order], boxes["center"][expected], atol=1e-4)
    np.testing.assert_allclose(decoded["size"][order], boxes["size"][expected], rtol=1e-4)
    yaw_error = np.angle(np.exp(1j * (decoded["yaw"][order] - boxes["yaw"][expected])))
    np.testing.assert_allclose(yaw_error, 0.0, atol=1e-4)
    np.testing.assert_array_equal(decoded["class_id"][order], boxes["class_id"][expected])
    known = np.isfinite(boxes["velocity"][expected]).all(1)
    np.testing.assert_allclose(decoded["velocity"][order][known], boxes["velocity"][expected][known], atol=1e-5)


def test_bev_targets_reject_bad_class_ids() -> None:
    boxes = gt_boxes()
    with pytest.raises(ValueError, match="class_id must be in \\[0, 2\\)"):
        encode_bev_targets(**boxes, num_classes=2, grid=GRID)


def test_det2d_targets_round_trip_through_decode() -> None:
    xyxy = np.array([[10.0, 20.0, 60.0, 70.0], [100.0, 5.0, 118.0, 41.0], [140.0, 60.0, 158.0, 90.0]])
    per_camera = [
        encode_det2d_targets(
            boxes_xyxy=xyxy, class_id=np.array([0, 2, 1]), num_classes=3, image_size=(96, 160), stride=8
        ),
        encode_det2d_targets(
            boxes_xyxy=np.zeros((0, 4)), class_id=np.zeros(0), num_classes=3, image_size=(96, 160), stride=8
        ),
    ]
    targets = {k: np.stack([c[k] for c in per_camera]) for k in per_camera[0]}
    assert targets["det2d_heatmap"].shape == (2, 3, 12, 20) and targets["det2d_mask"].sum() == 3
    outputs = perfect_outputs(targets, ["det2d_heatmap", "det2d_box"], "det2d_heatmap")
    (cameras,) = decode_det2d(outputs, stride=8, k=10, score_threshold=0.5)
    assert len(cameras) == 2 and len(cameras[1]["score"]) == 0
    order = np.argsort(cameras[0]["xyxy"][:, 0])
    np.testing.assert_allclose(cameras[0]["xyxy"][order], xyxy, atol=1e-3)
    np.testing.assert_array_equal(cameras[0]["class_id"][order], [0, 2, 1])


class TopKDecoder(torch.nn.Module):
    """What the deploy side wraps: fixed-K decoding inside the graph."""

    def forward(self, heatmap, offset, z, size, yaw, velocity, det2d_heatmap, det2d_box):
        boxes, scores, class_id = decode_topk(heatmap, offset, z, size, yaw, velocity, grid=GRID, k=10)
        xyxy, scores2d, class2d = decode_det2d_topk(det2d_heatmap, det2d_box, stride=8, k=5)
        return boxes, scores, class_id, xyxy, scores2d, class2d


def test_topk_decoders_export_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    gen = torch.Generator().manual_seed(0)
    inputs = (
        torch.randn(1, 3, 50, 40, generator=gen) * 3,
        torch.rand(1, 2, 50, 40, generator=gen),
        torch.randn(1, 1, 50, 40, generator=gen),
        torch.randn(1, 3, 50, 40, generator=gen),
        torch.randn(1, 2, 50, 40, generator=gen),
        torch.randn(1, 2, 50, 40, generator=gen),
        torch.randn(1, 2, 3, 12, 20, generator=gen) * 3,
        torch.randn(1, 2, 4, 12, 20, generator=gen),
    )
    path = tmp_path / "decode.onnx"
    torch.onnx.export(TopKDecoder().eval(), inputs, str(path), dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
    reference = TopKDecoder()(*inputs)
    for got, want in zip(results, reference):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-5)
    assert results[0].shape == (1, 10, 9) and results[3].shape == (1, 2, 5, 4)


def test_losses_prefer_perfect_predictions_and_name_every_head() -> None:
    bev = encode_bev_targets(**gt_boxes(), num_classes=4, grid=GRID)
    seg = (np.random.default_rng(0).random((2, 50, 40)) > 0.5).astype(np.float32)
    det2d = encode_det2d_targets(
        boxes_xyxy=np.array([[10.0, 20.0, 60.0, 70.0]]),
        class_id=np.array([1]),
        num_classes=3,
        image_size=(96, 160),
        stride=8,
    )
    targets = {
        k: torch.from_numpy(v).unsqueeze(0) for k, v in {**bev, **{k: v[None] for k, v in det2d.items()}}.items()
    }
    targets["segmentation"] = torch.from_numpy(seg).unsqueeze(0)
    perfect = perfect_outputs(
        {k: v[0].numpy() for k, v in targets.items()}, ["heatmap", "offset", "z", "size", "yaw", "velocity"], "heatmap"
    )
    perfect.update(
        perfect_outputs({k: v[0].numpy() for k, v in targets.items()}, ["det2d_heatmap", "det2d_box"], "det2d_heatmap")
    )
    perfect["segmentation"] = (targets["segmentation"] * 2 - 1) * 20
    noisy = {k: (v + torch.randn_like(v)).requires_grad_() for k, v in perfect.items()}
    good = compute_losses(perfect, targets, dice_weight=0.5)
    bad = compute_losses(noisy, targets, dice_weight=0.5)
    expected = {
        "heatmap",
        "offset",
        "z",
        "size",
        "yaw",
        "velocity",
        "segmentation",
        "det2d_heatmap",
        "det2d_box",
        "total",
    }
    assert set(good) == set(bad) == expected
    for key in expected:
        assert good[key].ndim == 0 and torch.isfinite(bad[key])
        assert good[key] < bad[key], key
    assert good["offset"] < 1e-6 and good["det2d_box"] < 1e-6
    bad["total"].backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in noisy.values())
    with pytest.raises(KeyError, match="segmentation"):
        compute_losses({"segmentation": perfect["segmentation"]}, {})


def test_losses_accept_a_time_dimension() -> None:
    logits = torch.randn(2, 3, 4, 8, 8)
    target = torch.zeros(2, 3, 4, 8, 8)
    target[..., 2, 3] = 1.0
    assert torch.isfinite(focal_heatmap_loss(logits, target))
    assert torch.isfinite(segmentation_loss(logits, (target > 0).float(), dice_weight=1.0))
