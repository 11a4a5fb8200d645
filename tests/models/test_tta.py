"""BEV test-time augmentation: mirrored geometry, outputs mapped back, fusion."""

import numpy as np
import pytest
import torch

from perception.models.decode import decode_bev_detections
from perception.models.targets import encode_bev_targets
from perception.models.tta import average_outputs, mirror_inputs, unmirror_outputs, unreverse_outputs

GRID = {"x_min": -20.0, "x_max": 20.0, "y_min": -16.0, "y_max": 16.0, "resolution": 0.5}


def _boxes(rng: np.random.Generator, count: int = 6) -> dict[str, np.ndarray]:
    return {
        "center": np.column_stack([rng.uniform(-18, 18, count), rng.uniform(-14, 14, count), rng.uniform(0, 2, count)]),
        "size": rng.uniform(0.5, 5, (count, 3)),
        "yaw": rng.uniform(-3, 3, count),
        "velocity": rng.uniform(-8, 8, (count, 2)),
        "class_id": rng.integers(0, 3, count),
    }


def _as_outputs(targets: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Targets laid out as model outputs (heatmap as logits)."""
    out = {k: torch.from_numpy(targets[k])[None] for k in ("offset", "z", "size", "yaw", "velocity")}
    out["heatmap"] = torch.logit(torch.from_numpy(targets["heatmap"])[None].clamp(1e-4, 1 - 1e-4))
    return out


def _decoded(outputs: dict[str, torch.Tensor], count: int) -> np.ndarray:
    result = decode_bev_detections(outputs, grid=GRID, k=count, score_threshold=0.5)[0]
    rows = np.column_stack([result["center"][:, :2], result["yaw"], result["velocity"], result["class_id"]])
    return rows[np.lexsort(rows[:, :2].T)]


def test_unmirror_maps_a_mirrored_scene_back_onto_the_real_one() -> None:
    rng = np.random.default_rng(0)
    boxes = _boxes(rng)
    mirrored = {
        **boxes,
        "center": boxes["center"] * [1, -1, 1],
        "yaw": -boxes["yaw"],
        "velocity": boxes["velocity"] * [1, -1],
    }
    real = _as_outputs(encode_bev_targets(**boxes, num_classes=3, grid=GRID))
    back = unmirror_outputs(_as_outputs(encode_bev_targets(**mirrored, num_classes=3, grid=GRID)), bev_grid=GRID)
    expected, found = _decoded(real, 6), _decoded(back, 6)
    assert len(expected) == 6
    np.testing.assert_allclose(found[:, :2], expected[:, :2], atol=1e-4)  # centre x, y
    np.testing.assert_allclose(np.cos(found[:, 2] - expected[:, 2]), 1.0, atol=1e-6)  # yaw
    np.testing.assert_allclose(found[:, 3:], expected[:, 3:], atol=1e-5)  # velocity, class
    with pytest.raises(ValueError, match="symmetric"):
        unmirror_outputs(real, bev_grid={**GRID, "y_min": -10.0})


def test_mirrored_geometry_sees_the_mirrored_point_where_the_real_one_was() -> None:
    rng = np.random.default_rng(1)
    camera_from_ego = torch.eye(4).repeat(1, 2, 1, 1)
    camera_from_ego[..., :3, 3] = torch.tensor(rng.normal(size=(1, 2, 3)), dtype=torch.float32)
    angle = 0.3
    camera_from_ego[0, 1, :2, :2] = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    prev_from_curr = torch.eye(4)[None].clone()
    prev_from_curr[0, :3, 3] = torch.tensor([1.0, 0.5, 0.0])
    inputs = {"camera_from_ego": camera_from_ego, "prev_from_curr": prev_from_curr, "images": torch.zeros(1)}
    mirrored = mirror_inputs(inputs)
    point = torch.tensor([4.0, -2.5, 1.0, 1.0])
    point_mirrored = point * torch.tensor([1.0, -1.0, 1.0, 1.0])
    torch.testing.assert_close(mirrored["camera_from_ego"] @ point_mirrored, camera_from_ego @ point)
    assert mirrored["images"] is inputs["images"]
    # ego motion: the previous frame's position of a point, mirrored, equals the mirrored computation
    torch.testing.assert_close(
        mirrored["prev_from_curr"][0] @ point_mirrored, (prev_from_curr[0] @ point) * torch.tensor([1.0, -1, 1, 1])
    )


def test_average_fuses_probabilities_and_reverse_negates_velocity() -> None:
    a = {"heatmap": torch.logit(torch.tensor([0.2, 0.8])), "velocity": torch.tensor([[1.0], [2.0]]), "state": 1}
    b = {"heatmap": torch.logit(torch.tensor([0.4, 0.4])), "velocity": torch.tensor([[3.0], [4.0]]), "state": 2}
    fused = average_outputs([a, b])
    torch.testing.assert_close(torch.sigmoid(fused["heatmap"]), torch.tensor([0.3, 0.6]))
    torch.testing.assert_close(fused["velocity"], torch.tensor([[2.0], [3.0]]))
    assert "state" not in fused
    torch.testing.assert_close(unreverse_outputs(a)["velocity"], -a["velocity"])
    with pytest.raises(ValueError, match="no views"):
        average_outputs([])
