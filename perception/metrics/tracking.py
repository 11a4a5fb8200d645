"""Tracking metrics: HOTA / CLEAR-MOT / IDF1 (as TrackEval computes them, checked against it in the tests) and
per-video 2D box AP (frames as COCO images)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.metrics.det2d import CocoDetectionEvaluator


def _column(boxes: Any, name: str, default: Any = None) -> Any:
    """A field of a Boxes2D-like object or dict (None if absent and no default)."""
    value = boxes.get(name) if isinstance(boxes, dict) else getattr(boxes, name, None)
    return default if value is None else value


def video_box_ap(
    pred_frames: Iterable[Any], gt_frames: Iterable[Any], classes: int | Sequence[str], *, iou_threshold: float = 0.5
) -> dict[str, Any]:
    """AP at one IoU threshold (default AP50) over a video: frame i of ``pred_frames`` vs frame i of ``gt_frames``.

    Frames are Boxes2D-like (``xyxy`` pixels, ``class_id``, ``score``; preds need score) or dicts with those keys.
    Returns ``{"AP": ..., "AR": ..., "per_class": {...}, "num_frames": n}`` under the COCO rules of det2d
    (area range "all", at most 100 boxes per frame and class).
    """
    evaluator = CocoDetectionEvaluator(
        classes, iou_thresholds=(iou_threshold,), max_dets=(100,), area_ranges={"all": (0.0, 1e10)}
    )
    preds, gts = list(pred_frames), list(gt_frames)
    if len(preds) != len(gts):
        raise ValueError(f"video_box_ap: {len(preds)} prediction frames but {len(gts)} ground-truth frames")
    for pred, gt in zip(preds, gts):
        pred_xyxy = np.asarray(_column(pred, "xyxy"), dtype=np.float64).reshape(-1, 4)
        gt_xyxy = np.asarray(_column(gt, "xyxy"), dtype=np.float64).reshape(-1, 4)
        score = _column(pred, "score")
        if score is None:
            raise ValueError("video_box_ap: prediction frames need a 'score' field")
        evaluator.add_image(
            pred_xyxy,
            score,
            _column(pred, "class_id", np.zeros(len(pred_xyxy), np.int64)),
            gt_xyxy,
            _column(gt, "class_id", np.zeros(len(gt_xyxy), np.int64)),
        )
    summary = evaluator.compute()
    return {
        "AP": summary["AP"],
        "AR": summary["AR100"],
        "iou_threshold": float(iou_threshold),
        "per_class": {k: {"AP": v["AP"], "AR": v["AR"]} for k, v in summary["per_class"].items()},
        "num_frames": summary["num_images"],
    }


# ---------------------------------------------------------------------------------------------------- tracking
# HOTA (Luiten et al., IJCV 2021), CLEAR-MOT (MOTA, MOTP, IDSW, MT/PT/ML, Frag) and the identity metrics (IDF1),
# computed as TrackEval 1.3 computes them (its MOT15 convention: IoU similarity, alphas 0.05..0.95, CLEAR/Identity
# threshold 0.5, no preprocessing). tests/metrics/test_tracking_metrics.py checks every field against TrackEval to
# 1e-6 on the MOT15 TUD sequences and on random sequences, so a plain install needs neither TrackEval nor motmetrics.

HOTA_ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's array_labels
_EPS = np.finfo("float").eps
_HOTA_ARRAYS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA")
_CLEAR_COUNTS = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
_ID_COUNTS = ("IDTP", "IDFN", "IDFP")


def _contiguous_ids(ids: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids of every frame relabelled 0..K-1 in sorted order of the original ids (TrackEval's relabelling)."""
    unique = np.unique(np.concatenate([np.asarray(i, np.int64).ravel() for i in ids] + [np.zeros(0, np.int64)]))
    return [np.searchsorted(unique, np.asarray(i, np.int64).ravel()) for i in ids], len(unique)


def _hota_sequence(gt_ids, pred_ids, similarity, num_gt_ids, num_pred_ids, num_gt, num_pred) -> dict[str, Any]:
    alphas = HOTA_ALPHAS
    res: dict[str, Any] = {k: np.zeros(len(alphas)) for k in ("HOTA_TP", "HOTA_FN", "HOTA_FP", *_HOTA_ARRAYS)}
    if num_pred == 0 or num_gt == 0:
        res["HOTA_FN" if num_pred == 0 else "HOTA_FP"] = float(num_gt if num_pred == 0 else num_pred) * np.ones(
            len(alphas)
        )
        res["LocA"] = np.ones(len(alphas))
        return _hota_final(res)
    potential = np.zeros((num_gt_ids, num_pred_ids))
    gt_count = np.zeros((num_gt_ids, 1))
    pred_count = np.zeros((1, num_pred_ids))
    for g, p, sim in zip(gt_ids, pred_ids, similarity):
        denominator = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denominator > 0 + _EPS
        sim_iou[mask] = sim[mask] / denominator[mask]
        potential[g[:, None], p[None, :]] += sim_iou
        gt_count[g] += 1
        pred_count[0, p] += 1
    alignment = potential / (gt_count + pred_count - potential)
    matches = [np.zeros_like(potential) for _ in alphas]
    for g, p, sim in zip(gt_ids, pred_ids, similarity):
        if len(g) == 0 or len(p) == 0:
            res["HOTA_FP" if len(g) == 0 else "HOTA_FN"] += len(p) if len(g) == 0 else len(g)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], p[None, :]] * sim))
        for a, alpha in enumerate(alphas):
            ok = sim[rows, cols] >= alpha - _EPS
            count = int(ok.sum())
            res["HOTA_TP"][a] += count
            res["HOTA_FN"][a] += len(g) - count
            res["HOTA_FP"][a] += len(p) - count
            if count:
                res["LocA"][a] += sum(sim[rows[ok], cols[ok]])
                matches[a][g[rows[ok]], p[cols[ok]]] += 1
    for a in range(len(alphas)):
        count = matches[a]
        tp = np.maximum(1, res["HOTA_TP"][a])
        res["AssA"][a] = np.sum(count * (count / np.maximum(1, gt_count + pred_count - count))) / tp
        res["AssRe"][a] = np.sum(count * (count / np.maximum(1, gt_count))) / tp
        res["AssPr"][a] = np.sum(count * (count / np.maximum(1, pred_count))) / tp
    res["LocA"] = np.maximum(1e-10, res["LocA"]) / np.maximum(1e-10, res["HOTA_TP"])
    return _hota_final(res)


def _hota_final(res: dict[str, Any]) -> dict[str, Any]:
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    return res


def _clear_sequence(gt_ids, pred_ids, similarity, num_gt_ids, num_gt, num_pred, threshold) -> dict[str, Any]:
    res: dict[str, Any] = {k: 0 for k in _CLEAR_COUNTS}
    res["MOTP_sum"] = 0.0
    res["CLR_Frames"] = len(gt_ids)
    if num_pred == 0 or num_gt == 0:  # as TrackEval: counts only, every ratio 0 but MLR 1
        res["CLR_FN"], res["CLR_FP"] = num_gt, num_pred
        res["ML"] = num_gt_ids if num_pred == 0 else 0
        res["CLR_Frames"] = 0
        res.update({k: 0.0 for k in ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR")}, MLR=1.0)
        return res
    gt_frames = np.zeros(num_gt_ids)
    gt_matched = np.zeros(num_gt_ids)
    gt_fragments = np.zeros(num_gt_ids)
    previous_id = np.full(num_gt_ids, np.nan)  # the last prediction each gt was matched to (for IDSW)
    previous_step_id = np.full(num_gt_ids, np.nan)  # matched on the previous frame (kept when possible)
    for g, p, sim in zip(gt_ids, pred_ids, similarity):
        if len(g) == 0:
            res["CLR_FP"] += len(p)
            continue
        if len(p) == 0:
            res["CLR_FN"] += len(g)
            gt_frames[g] += 1
            continue
        score = 1000 * (p[None, :] == previous_step_id[g[:, None]]) + sim
        score[sim < threshold - _EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > 0 + _EPS
        rows, cols = rows[ok], cols[ok]
        matched_gt, matched_pred = g[rows], p[cols]
        before = previous_id[matched_gt]
        res["IDSW"] += int(np.sum(~np.isnan(before) & (matched_pred != before)))
        gt_frames[g] += 1
        gt_matched[matched_gt] += 1
        untracked = np.isnan(previous_step_id)
        previous_id[matched_gt] = matched_pred
        previous_step_id[:] = np.nan
        previous_step_id[matched_gt] = matched_pred
        gt_fragments += untracked & ~np.isnan(previous_step_id)
        res["CLR_TP"] += len(matched_gt)
        res["CLR_FN"] += len(g) - len(matched_gt)
        res["CLR_FP"] += len(p) - len(matched_gt)
        if len(matched_gt):
            res["MOTP_sum"] += sum(sim[rows, cols])
    ratio = gt_matched[gt_frames > 0] / gt_frames[gt_frames > 0]
    res["MT"] = int(np.sum(ratio > 0.8))
    res["PT"] = int(np.sum(ratio >= 0.2)) - res["MT"]
    res["ML"] = num_gt_ids - res["MT"] - res["PT"]
    res["Frag"] = int(np.sum(gt_fragments[gt_fragments > 0] - 1))
    return _clear_final(res)


def _clear_final(res: dict[str, Any]) -> dict[str, Any]:
    tp, fn, fp = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"]
    gt_tracks = max(1.0, res["MT"] + res["PT"] + res["ML"])
    res["MOTA"] = (tp - fp - res["IDSW"]) / max(1.0, tp + fn)
    res["MOTP"] = res["MOTP_sum"] / max(1.0, tp)
    res["MODA"] = (tp - fp) / max(1.0, tp + fn)
    res["CLR_Re"] = tp / max(1.0, tp + fn)
    res["CLR_Pr"] = tp / max(1.0, tp + fp)
    res["MTR"], res["PTR"], res["MLR"] = res["MT"] / gt_tracks, res["PT"] / gt_tracks, res["ML"] / gt_tracks
    return res


def _identity_sequence(gt_ids, pred_ids, similarity, num_gt_ids, num_pred_ids, num_gt, num_pred, threshold):
    res: dict[str, Any] = {"IDTP": 0, "IDFN": 0, "IDFP": 0}
    if num_pred == 0 or num_gt == 0:
        res["IDFN"], res["IDFP"] = num_gt if num_pred == 0 else 0, num_pred if num_gt == 0 else 0
        return _identity_final(res)
    potential = np.zeros((num_gt_ids, num_pred_ids))
    gt_count = np.zeros(num_gt_ids)
    pred_count = np.zeros(num_pred_ids)
    for g, p, sim in zip(gt_ids, pred_ids, similarity):
        rows, cols = np.nonzero(sim >= threshold)
        potential[g[rows], p[cols]] += 1
        gt_count[g] += 1
        pred_count[p] += 1
    size = num_gt_ids + num_pred_ids
    fp = np.zeros((size, size))
    fn = np.zeros((size, size))
    fp[num_gt_ids:, :num_pred_ids] = 1e10
    fn[:num_gt_ids, num_pred_ids:] = 1e10
    for k in range(num_gt_ids):
        fn[k, :num_pred_ids] = gt_count[k]
        fn[k, num_pred_ids + k] = gt_count[k]
    for k in range(num_pred_ids):
        fp[:num_gt_ids, k] = pred_count[k]
        fp[k + num_gt_ids, k] = pred_count[k]
    fn[:num_gt_ids, :num_pred_ids] -= potential
    fp[:num_gt_ids, :num_pred_ids] -= potential
    rows, cols = linear_sum_assignment(fn + fp)
    res["IDFN"] = int(fn[rows, cols].sum())
    res["IDFP"] = int(fp[rows, cols].sum())
    res["IDTP"] = int(gt_count.sum() - res["IDFN"])
    return _identity_final(res)


def _identity_final(res: dict[str, Any]) -> dict[str, Any]:
    tp, fn, fp = res["IDTP"], res["IDFN"], res["IDFP"]
    res["IDR"] = tp / max(1.0, tp + fn)
    res["IDP"] = tp / max(1.0, tp + fp)
    res["IDF1"] = tp / max(1.0, tp + 0.5 * fp + 0.5 * fn)
    return res


@dataclass
class TrackingScores:
    """HOTA / CLEAR / Identity results of one sequence (or a combination), in TrackEval's fields.

    ``hota``: arrays over ``HOTA_ALPHAS`` (HOTA, DetA, AssA, DetRe, DetPr, AssRe, AssPr, LocA, HOTA_TP/FN/FP);
    ``clear``: MOTA, MOTP (mean IoU of matches), IDSW, MT/PT/ML, Frag, CLR_TP/FN/FP...; ``identity``: IDF1, IDP,
    IDR, IDTP/IDFN/IDFP. ``summary()`` gives the usual single numbers (HOTA etc. averaged over alphas).
    """

    hota: dict[str, Any]
    clear: dict[str, Any]
    identity: dict[str, Any]
    num_gt_dets: int
    num_pred_dets: int

    def summary(self) -> dict[str, float]:
        """HOTA, DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr (means over alpha), MOTA, MOTP, IDF1, IDP, IDR,
        IDSW, MT, PT, ML, Frag, TP/FN/FP at IoU 0.5 and the box counts."""
        out = {name: float(np.mean(self.hota[name])) for name in _HOTA_ARRAYS}
        out.update({name: float(self.clear[name]) for name in ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr")})
        out.update({name: int(self.clear[name]) for name in ("IDSW", "MT", "PT", "ML", "Frag")})
        out.update({"TP": int(self.clear["CLR_TP"]), "FN": int(self.clear["CLR_FN"]), "FP": int(self.clear["CLR_FP"])})
        out.update({name: float(self.identity[name]) for name in ("IDF1", "IDP", "IDR")})
        out.update({"num_gt_dets": self.num_gt_dets, "num_pred_dets": self.num_pred_dets})
        return out


def tracking_scores(
    gt_ids: Sequence[np.ndarray],
    pred_ids: Sequence[np.ndarray],
    similarity: Sequence[np.ndarray],
    *,
    threshold: float = 0.5,
) -> TrackingScores:
    """HOTA, CLEAR-MOT and identity metrics of one sequence (one class).

    Per frame t: ``gt_ids[t]`` (G,), ``pred_ids[t]`` (P,) track ids (any integers, unique within the frame) and
    ``similarity[t]`` (G, P) in 0..1 (IoU for boxes: ``box_similarity``). ``threshold``: CLEAR/Identity match
    similarity (TrackEval's 0.5)."""
    if not len(gt_ids) == len(pred_ids) == len(similarity):
        raise ValueError(
            f"tracking_scores: expected as many frames of gt ids, predicted ids and similarities, found "
            f"{len(gt_ids)}, {len(pred_ids)}, {len(similarity)}"
        )
    for t, (g, p, s) in enumerate(zip(gt_ids, pred_ids, similarity)):
        if np.shape(s) != (len(g), len(p)):
            raise ValueError(f"tracking_scores: frame {t}: similarity {np.shape(s)}, expected ({len(g)}, {len(p)})")
        for side, ids in (("ground-truth", g), ("predicted", p)):
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"tracking_scores: frame {t}: {side} track ids repeat within the frame: {list(ids)}")
    g_ids, num_gt_ids = _contiguous_ids(gt_ids)
    p_ids, num_pred_ids = _contiguous_ids(pred_ids)
    sims = [np.asarray(s, np.float64).reshape(len(g), len(p)) for g, p, s in zip(g_ids, p_ids, similarity)]
    num_gt, num_pred = sum(len(g) for g in g_ids), sum(len(p) for p in p_ids)
    return TrackingScores(
        _hota_sequence(g_ids, p_ids, sims, num_gt_ids, num_pred_ids, num_gt, num_pred),
        _clear_sequence(g_ids, p_ids, sims, num_gt_ids, num_gt, num_pred, threshold),
        _identity_sequence(g_ids, p_ids, sims, num_gt_ids, num_pred_ids, num_gt, num_pred, threshold),
        num_gt,
        num_pred,
    )


def box_similarity(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """(G, P) IoU of 2D boxes (pixels x1, y1, x2, y2), the similarity TrackEval uses for MOTChallenge boxes."""
    from perception.geometry import box_iou

    return box_iou(gt_xyxy, pred_xyxy)


def combine_tracking_scores(scores: Sequence[TrackingScores]) -> TrackingScores:
    """Several sequences (or classes, detection-weighted) as one: counts summed, association scores weighted by
    true positives (TrackEval's ``combine_sequences`` / ``combine_classes_det_averaged``)."""
    if not scores:
        raise ValueError("combine_tracking_scores: no scores to combine")
    hota: dict[str, Any] = {k: sum(s.hota[k] for s in scores) for k in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    tp = hota["HOTA_TP"]
    for name in ("AssRe", "AssPr", "AssA"):
        hota[name] = sum(s.hota[name] * s.hota["HOTA_TP"] for s in scores) / np.maximum(1.0, tp)
    hota["LocA"] = np.maximum(1e-10, sum(s.hota["LocA"] * s.hota["HOTA_TP"] for s in scores)) / np.maximum(1e-10, tp)
    clear = {k: sum(s.clear[k] for s in scores) for k in (*_CLEAR_COUNTS, "MOTP_sum")}
    identity = {k: sum(s.identity[k] for s in scores) for k in _ID_COUNTS}
    return TrackingScores(
        _hota_final(hota),
        _clear_final(clear),
        _identity_final(identity),
        sum(s.num_gt_dets for s in scores),
        sum(s.num_pred_dets for s in scores),
    )


def _greedy_iou_match(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(pred row, gt row) pairs, highest IoU first, each row used once, IoU >= threshold."""
    from perception.geometry import box_iou

    if not len(pred_xyxy) or not len(gt_xyxy):
        return []
    iou = box_iou(pred_xyxy, gt_xyxy)
    pairs: list[tuple[int, int]] = []
    used_pred, used_gt = set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        p, g = (int(v) for v in np.unravel_index(flat, iou.shape))
        if iou[p, g] < threshold:
            break
        if p not in used_pred and g not in used_gt:
            pairs.append((p, g))
            used_pred.add(p)
            used_gt.add(g)
    return pairs


def camera_handover_ids(
    pred_frames: Sequence[dict[str, Any]],
    gt_frames: Sequence[dict[str, Any]],
    *,
    iou_threshold: float = 0.5,
    window: int = 10,
) -> dict[str, Any]:
    """Identity across the cameras of a rig: does an object that passes from one camera's view into another's keep
    one predicted id?

    Frames are {camera: Boxes2D-like (``xyxy``, ``track_id``)}; ground-truth ids are global (one per object over all
    cameras). Predictions are matched to ground truth per frame and camera (IoU >= ``iou_threshold``, highest first).
    A handover is a match of object g in camera B with no match of g in B in the ``window`` previous frames while g
    was matched in another camera in those frames (or this one); it is an id switch when B's predicted id is none of
    the predicted ids of g's latest matches in the other cameras. Returns handovers, handover_switches, objects seen
    (matched) in two or more cameras and how many of them carry a single predicted id everywhere, and false_merges:
    predicted ids whose most-matched object differs between two cameras (two objects given one id).
    """
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"camera_handover_ids: {len(pred_frames)} prediction frames but {len(gt_frames)} ground truth")
    seen: dict[int, dict[str, list[tuple[int, int]]]] = {}  # gt id -> camera -> [(frame, predicted id)]
    for frame, (pred, gt) in enumerate(zip(pred_frames, gt_frames)):
        for camera, gt_boxes in gt.items():
            pred_boxes = pred.get(camera)
            if pred_boxes is None:
                continue
            gt_xyxy = np.asarray(_column(gt_boxes, "xyxy"), dtype=np.float64).reshape(-1, 4)
            pred_xyxy = np.asarray(_column(pred_boxes, "xyxy"), dtype=np.float64).reshape(-1, 4)
            gt_ids = np.asarray(_column(gt_boxes, "track_id"))
            pred_ids = np.asarray(_column(pred_boxes, "track_id"))
            for p, g in _greedy_iou_match(pred_xyxy, gt_xyxy, iou_threshold):
                seen.setdefault(int(gt_ids[g]), {}).setdefault(camera, []).append((frame, int(pred_ids[p])))
    handovers = switches = multi = single = 0
    majority: dict[int, dict[str, list[int]]] = {}  # predicted id -> camera -> ground-truth ids it matched
    for gt_id, cameras in seen.items():
        for camera, matches in cameras.items():
            for _, pid in matches:
                majority.setdefault(pid, {}).setdefault(camera, []).append(gt_id)
    false_merges = sum(
        len({int(np.bincount(ids).argmax()) for ids in cameras.values()}) > 1
        for pid, cameras in majority.items()
        if pid >= 0
    )
    for cameras in seen.values():
        if len(cameras) >= 2:
            multi += 1
            single += len({pid for matches in cameras.values() for _, pid in matches}) == 1
        for camera, matches in cameras.items():
            previous_frame = None
            for frame, pid in matches:
                entry = previous_frame is None or frame - previous_frame > window
                previous_frame = frame
                if not entry:
                    continue
                latest: dict[str, tuple[int, set[int]]] = {}
                for other, other_matches in cameras.items():
                    if other == camera:
                        continue
                    recent = [(f, q) for f, q in other_matches if frame - window <= f <= frame]
                    if recent:
                        last = max(f for f, _ in recent)
                        latest[other] = (last, {q for f, q in recent if f == last})
                if not latest:
                    continue
                handovers += 1
                switches += pid not in set().union(*(ids for _, ids in latest.values()))
    return {
        "handovers": handovers,
        "handover_switches": switches,
        "objects_multi_camera": multi,
        "objects_single_id": single,
        "false_merges": false_merges,
    }
