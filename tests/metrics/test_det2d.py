"""COCO 2D AP: our numpy evaluator equals pycocotools on seeded fixtures and on the nuScenes sample's 2D GT."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from perception.geometry import box_iou
from perception.metrics import CocoDetectionEvaluator

SHARED_DATA = Path(__file__).resolve().parents[2] / "../shared/data"
STAT_KEYS = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
]


def _random_boxes(rng: np.random.Generator, n: int, image_wh: tuple[int, int]) -> np.ndarray:
    """Boxes spanning small (< 32^2), medium and large areas, inside the image."""
    side = np.exp(rng.uniform(np.log(6), np.log(300), size=(n, 2)))
    x1 = rng.uniform(0, image_wh[0] - side[:, 0])
    y1 = rng.uniform(0, image_wh[1] - side[:, 1])
    return np.stack([x1, y1, x1 + side[:, 0], y1 + side[:, 1]], axis=1)


def _perturb(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    """Jitter box corners by a fraction of the box size."""
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    out = boxes + rng.normal(0, scale, size=boxes.shape) * wh
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2] + 1.0)
    return out


def make_fixture(seed: int, num_images: int = 40, num_classes: int = 4, with_crowd: bool = True) -> list[dict]:
    """Seeded images: GT of several classes/sizes; preds = noisy copies (some missed), false positives, duplicates."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        n_gt = int(rng.integers(0, 9))
        gt = _random_boxes(rng, n_gt, (640, 480))
        gt_cls = rng.integers(0, num_classes, n_gt)
        crowd = (rng.random(n_gt) < 0.08) if with_crowd else np.zeros(n_gt, bool)
        keep = rng.random(n_gt) > 0.2  # ~20 % missed
        tp_boxes = _perturb(rng, gt[keep], 0.08)
        tp_cls = np.where(rng.random(keep.sum()) < 0.1, rng.integers(0, num_classes, keep.sum()), gt_cls[keep])
        n_dup = int(rng.integers(0, 3))
        dup_idx = rng.integers(0, max(len(tp_boxes), 1), n_dup) if len(tp_boxes) else np.zeros(0, int)
        dup_boxes = _perturb(rng, tp_boxes[dup_idx], 0.15) if len(dup_idx) else np.zeros((0, 4))
        n_fp = int(rng.integers(0, 5))
        fp_boxes = _random_boxes(rng, n_fp, (640, 480))
        pred = np.concatenate([tp_boxes, dup_boxes, fp_boxes]).reshape(-1, 4)
        pred_cls = np.concatenate([tp_cls, tp_cls[dup_idx] if len(dup_idx) else [], rng.integers(0, num_classes, n_fp)])
        scores = np.concatenate(
            [rng.uniform(0.3, 1.0, len(tp_boxes)), rng.uniform(0.05, 0.8, n_dup), rng.uniform(0.0, 0.7, n_fp)]
        )
        order = rng.permutation(len(pred))
        images.append(
            {
                "pred": pred[order],
                "scores": scores[order],
                "pred_cls": pred_cls[order].astype(int),
                "gt": gt,
                "gt_cls": gt_cls,
                "crowd": crowd,
            }
        )
    return images


def pycocotools_eval(images: list[dict], num_classes: int, gt_area: list | None = None) -> tuple[np.ndarray, object]:
    """Run pycocotools COCOeval (bbox) on the same data; returns (stats, evaluator)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    gt_json = {"images": [], "annotations": [], "categories": categories}
    dets = []
    for image_id, image in enumerate(images, start=1):
        gt_json["images"].append({"id": image_id, "width": 1600, "height": 900})
        for j, (box, cls, crowd) in enumerate(zip(image["gt"], image["gt_cls"], image["crowd"])):
            w, h = box[2] - box[0], box[3] - box[1]
            area = float(w * h) if gt_area is None else gt_area[image_id - 1][j]
            gt_json["annotations"].append(
                {
                    "id": len(gt_json["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": area,
                    "iscrowd": int(crowd),
                }
            )
        for box, score, cls in zip(image["pred"], image["scores"], image["pred_cls"]):
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "score": float(score),
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.array(evaluator.stats), evaluator


def ours(images: list[dict], num_classes: int, gt_area: list | None = None) -> dict:
    """Run our evaluator on the fixture."""
    evaluator = CocoDetectionEvaluator(num_classes)
    for i, image in enumerate(images):
        evaluator.add_image(
            image["pred"],
            image["scores"],
            image["pred_cls"],
            image["gt"],
            image["gt_cls"],
            image["crowd"],
            gt_area=None if gt_area is None else gt_area[i],
        )
    return evaluator.compute()


def _assert_equal_to_pycocotools(result: dict, stats: np.ndarray, coco_eval: object, num_classes: int) -> None:
    mine = np.array([result[k] for k in STAT_KEYS])
    expected = np.where(stats == -1, np.nan, stats)
    np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-9, equal_nan=True)
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]  # (T, R, K) area all, maxDets 100
    for k in range(num_classes):
        p = precision[:, :, k]
        want = np.nan if (p == -1).all() else p.mean()
        assert result["per_class"][str(k)]["AP"] == pytest.approx(want, abs=1e-9, nan_ok=True)
        want50 = np.nan if (p == -1).all() else p[0].mean()
        assert result["per_class"][str(k)]["AP50"] == pytest.approx(want50, abs=1e-9, nan_ok=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_pycocotools_on_seeded_fixture(seed: int) -> None:
    images = make_fixture(seed)
    stats, coco_eval = pycocotools_eval(images, 4)
    result = ours(images, 4)
    assert 0.05 < result["AP"] < 0.95  # a non-trivial fixture
    _assert_equal_to_pycocotools(result, stats, coco_eval, 4)


def test_equals_pycocotools_with_many_detections_per_image() -> None:
    """maxDets truncation (1, 10, 100) must follow pycocotools: 150 predictions on one class in some images."""
    rng = np.random.default_rng(7)
    images = make_fixture(11, num_images=6, num_classes=2, with_crowd=False)
    for image in images[:3]:
        extra = _random_boxes(rng, 150, (640, 480))
        image["pred"] = np.concatenate([image["pred"], extra])
        image["scores"] = np.concatenate([image["scores"], rng.uniform(0, 1, 150)])
        image["pred_cls"] = np.concatenate([image["pred_cls"], np.zeros(150, int)])
    stats, coco_eval = pycocotools_eval(images, 2)
    _assert_equal_to_pycocotools(ours(images, 2), stats, coco_eval, 2)


@pytest.mark.shared_data
def test_equals_pycocotools_on_nuscenes_sample_gt() -> None:
    """Real 2D GT (6 nuScenes cameras, 84 boxes, 10 classes) with seeded perturbed predictions and the file's areas."""
    path = SHARED_DATA / "nuscenes_sample" / "coco_gt_2d.json"
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    coco = json.loads(path.read_text())
    rng = np.random.default_rng(3)
    image_ids = [im["id"] for im in coco["images"]]
    images, areas = [], []
    for image_id in image_ids:
        anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
        gt = np.array(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        ).reshape(-1, 4)
        gt_cls = np.array([a["category_id"] - 1 for a in anns], dtype=int)
        keep = rng.random(len(gt)) > 0.15
        pred = np.concatenate([_perturb(rng, gt[keep], 0.06), _random_boxes(rng, 3, (1600, 900))])
        pred_cls = np.concatenate([gt_cls[keep], rng.integers(0, 10, 3)])
        scores = np.concatenate([rng.uniform(0.2, 1.0, keep.sum()), rng.uniform(0.0, 0.6, 3)])
        images.append(
            {
                "pred": pred,
                "scores": scores,
                "pred_cls": pred_cls,
                "gt": gt,
                "gt_cls": gt_cls,
                "crowd": np.zeros(len(gt), bool),
            }
        )
        areas.append([a["area"] for a in anns])
    stats, coco_eval = pycocotools_eval(images, 10, gt_area=areas)
    result = ours(images, 10, gt_area=areas)
    assert result["AP50"] > 0.5
    _assert_equal_to_pycocotools(result, stats, coco_eval, 10)


def test_perfect_predictions_give_ap_one() -> None:
    images = make_fixture(5, with_crowd=False)
    evaluator = CocoDetectionEvaluator(["a", "b", "c", "d"])
    for image in images:
        evaluator.add_image(image["gt"], np.ones(len(image["gt"])), image["gt_cls"], image["gt"], image["gt_cls"])
    result = evaluator.compute()
    assert result["AP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    assert result["AR100"] == pytest.approx(1.0)


def test_hand_computed_ap50() -> None:
    """2 GT, 3 preds (scores .9 TP, .8 FP, .7 TP): envelope precision 1 up to recall .5, 2/3 up to 1 at IoU .5.

    Recall points 0..0.50 (51 of 101) read precision 1; 0.51..1.00 (50) read 2/3: AP50 = (51 + 50 * 2/3) / 101.
    """
    evaluator = CocoDetectionEvaluator(1, iou_thresholds=(0.5,))
    gt = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], float)
    pred = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120]], float)
    evaluator.add_image(pred, [0.9, 0.8, 0.7], [0, 0, 0], gt, [0, 0])
    assert evaluator.compute()["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-12)


def test_box_iou_values() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 10, 10], [2, 2, 4, 4]], float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0, 4 / 100]])
    crowd = box_iou(a, b, b_iscrowd=[True, False, False, True])  # crowd: intersection / prediction area
    np.testing.assert_allclose(crowd, [[50 / 100, 0.0, 1.0, 4 / 100]])


def test_input_validation_names_field() -> None:
    evaluator = CocoDetectionEvaluator(2)
    with pytest.raises(ValueError, match="pred_scores"):
        evaluator.add_image(np.zeros((2, 4)), [0.5], [0, 1], np.zeros((0, 4)), [])
