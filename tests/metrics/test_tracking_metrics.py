"""HOTA / CLEAR-MOT / IDF1 of perception.metrics.tracking equal TrackEval 1.3's to 1e-6: through TrackEval's
MOTChallenge reader on the MOT15 TUD sequences (tracker = perturbed ground truth: drops, jitter, id switches, false
positives), and through its metric classes on random sequences with empty frames and empty sequences."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from perception.metrics.tracking import (
    HOTA_ALPHAS,
    box_similarity,
    combine_tracking_scores,
    tracking_scores,
)

SHARED = Path(__file__).resolve().parents[2] / "../shared/data"


def _trackeval():
    """TrackEval, the reference ('make install' puts it in, --no-deps): under CI=true its absence is a failure."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        import trackeval

        return trackeval
    return pytest.importorskip("trackeval", reason="TrackEval absent (make install installs it, --no-deps)")


HOTA_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "HOTA_TP", "HOTA_FN", "HOTA_FP")
CLEAR_FIELDS = ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "CLR_TP", "CLR_FN", "CLR_FP")
CLEAR_FIELDS += ("IDSW", "MT", "PT", "ML", "Frag")
IDENTITY_FIELDS = ("IDF1", "IDP", "IDR", "IDTP", "IDFN", "IDFP")


def _assert_equal_to_trackeval(ours, theirs: dict) -> None:
    for field in HOTA_FIELDS:
        np.testing.assert_allclose(ours.hota[field], theirs["HOTA"][field], atol=1e-6, rtol=0, err_msg=field)
    for field in CLEAR_FIELDS:
        np.testing.assert_allclose(ours.clear[field], theirs["CLEAR"][field], atol=1e-6, rtol=0, err_msg=field)
    for field in IDENTITY_FIELDS:
        np.testing.assert_allclose(ours.identity[field], theirs["Identity"][field], atol=1e-6, rtol=0, err_msg=field)


def _perturbed_tracker(gt: np.ndarray, seed: int) -> np.ndarray:
    """MOT rows frame,id,x,y,w,h,conf from ground-truth rows: 12% dropped, boxes jittered, some tracks switch id
    half-way, two ids swapped, one false-positive track."""
    rng = np.random.default_rng(seed)
    rows = gt[rng.random(len(gt)) > 0.12, :6].copy()
    rows[:, 2:6] += rng.normal(0.0, 3.0, (len(rows), 4))
    rows[:, 4:6] = np.maximum(rows[:, 4:6], 2.0)
    ids = np.unique(rows[:, 1])
    middle = np.median(rows[:, 0])
    for track in ids[::4]:  # every 4th track gets a new id in the second half
        rows[(rows[:, 1] == track) & (rows[:, 0] > middle), 1] += 1000
    a, b = ids[1], ids[2]
    late = rows[:, 0] > middle / 2
    swap_a, swap_b = late & (rows[:, 1] == a), late & (rows[:, 1] == b)
    rows[swap_a, 1], rows[swap_b, 1] = b, a
    frames = np.unique(rows[:, 0])
    ghost = np.c_[
        frames, np.full(len(frames), 5000), 20 + frames, np.full(len(frames), 30.0), np.full((len(frames), 2), 40)
    ]
    rows = np.r_[rows, ghost]
    return np.c_[rows, rng.uniform(0.3, 1.0, len(rows))]


def _per_frame(rows: np.ndarray, num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ids, boxes = [], []
    for frame in range(1, num_frames + 1):
        here = rows[rows[:, 0] == frame]
        ids.append(here[:, 1].astype(np.int64))
        boxes.append(np.c_[here[:, 2:4], here[:, 2:4] + here[:, 4:6]])
    return ids, boxes


@pytest.mark.shared_data
@pytest.mark.parametrize("sequence", ["TUD-Campus", "TUD-Stadtmitte"])
def test_equal_to_trackeval_on_mot15(sequence: str, tmp_path: Path) -> None:
    trackeval = _trackeval()
    gt_file = SHARED / "mot15" / sequence / "gt" / "gt.txt"
    gt = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    num_frames = int(gt[:, 0].max())
    tracker = _perturbed_tracker(gt, seed=len(sequence))
    # what TrackEval reads: MOT15 folders, values written with 3 decimals and read back for our side too
    seq_dir = tmp_path / "gt" / sequence
    (seq_dir / "gt").mkdir(parents=True)
    (seq_dir / "gt" / "gt.txt").write_text(gt_file.read_text())
    (seq_dir / "seqinfo.ini").write_text(f"[Sequence]\nname={sequence}\nseqLength={num_frames}\n")
    data_dir = tmp_path / "trackers" / "perturbed" / "data"
    data_dir.mkdir(parents=True)
    lines = [
        f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},{r[6]:.3f},-1,-1,-1" for r in tracker
    ]
    (data_dir / f"{sequence}.txt").write_text("\n".join(lines) + "\n")
    tracker = np.loadtxt(data_dir / f"{sequence}.txt", delimiter=",", ndmin=2)

    dataset = trackeval.datasets.MotChallenge2DBox(
        {
            "GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
            "TRACKERS_TO_EVAL": ["perturbed"], "BENCHMARK": "MOT15", "SPLIT_TO_EVAL": "train",
            "SKIP_SPLIT_FOL": True, "SEQ_INFO": {sequence: num_frames}, "PRINT_CONFIG": False, "DO_PREPROC": False,
        }
    )  # fmt: skip
    config = {**trackeval.Evaluator.get_default_eval_config(), "PRINT_RESULTS": False, "PRINT_CONFIG": False}
    config.update(OUTPUT_SUMMARY=False, OUTPUT_DETAILED=False, PLOT_CURVES=False, USE_PARALLEL=False)
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False})]
    metrics.append(trackeval.metrics.Identity({"PRINT_CONFIG": False}))
    with contextlib.redirect_stdout(io.StringIO()):
        results, _ = trackeval.Evaluator(config).evaluate([dataset], metrics)
    theirs = results["MotChallenge2DBox"]["perturbed"][sequence]["pedestrian"]

    gt_ids, gt_boxes = _per_frame(gt[gt[:, 6] != 0], num_frames)  # flag 0 rows are not scored (MOT15)
    pred_ids, pred_boxes = _per_frame(tracker, num_frames)
    similarity = [box_similarity(g, p) for g, p in zip(gt_boxes, pred_boxes)]
    ours = tracking_scores(gt_ids, pred_ids, similarity)
    _assert_equal_to_trackeval(ours, theirs)
    summary = ours.summary()
    assert 0.3 < summary["HOTA"] < 0.95 and summary["IDSW"] > 0  # the perturbations are visible
    assert summary["HOTA"] == pytest.approx(float(np.mean(theirs["HOTA"]["HOTA"])), abs=1e-6)


def _random_sequence(rng: np.random.Generator, frames: int, empty: str | None = None):
    """Random gt / tracker ids and IoU-like similarities (some frames empty on either side)."""
    gt_ids, pred_ids, similarity = [], [], []
    for _ in range(frames):
        g = rng.choice(12, size=rng.integers(0, 6), replace=False) if empty != "gt" else np.zeros(0, int)
        p = rng.choice(np.arange(100, 115), size=rng.integers(0, 7), replace=False) if empty != "pred" else []
        p = np.asarray(p, int)
        sim = rng.uniform(0, 1, (len(g), len(p))) ** 2
        sim[rng.random(sim.shape) < 0.5] = 0.0
        gt_ids.append(g)
        pred_ids.append(p)
        similarity.append(sim)
    return gt_ids, pred_ids, similarity


def _trackeval_data(gt_ids, pred_ids, similarity) -> dict:
    """TrackEval's per-sequence input (ids relabelled to 0..K-1)."""
    unique_gt = np.unique(np.concatenate(gt_ids + [np.zeros(0, int)]))
    unique_pred = np.unique(np.concatenate(pred_ids + [np.zeros(0, int)]))
    return {
        "gt_ids": [np.searchsorted(unique_gt, g) for g in gt_ids],
        "tracker_ids": [np.searchsorted(unique_pred, p) for p in pred_ids],
        "similarity_scores": similarity,
        "num_gt_ids": len(unique_gt),
        "num_tracker_ids": len(unique_pred),
        "num_gt_dets": sum(len(g) for g in gt_ids),
        "num_tracker_dets": sum(len(p) for p in pred_ids),
        "num_timesteps": len(gt_ids),
    }


def test_equal_to_trackeval_on_random_sequences_and_combined() -> None:
    trackeval = _trackeval()
    hota = trackeval.metrics.HOTA()
    clear = trackeval.metrics.CLEAR({"PRINT_CONFIG": False})
    identity = trackeval.metrics.Identity({"PRINT_CONFIG": False})
    rng = np.random.default_rng(7)
    ours_all, theirs_all = [], {}
    cases = [None] * 6 + ["gt", "pred"]
    for index, empty in enumerate(cases):
        sequence = _random_sequence(rng, frames=int(rng.integers(3, 30)), empty=empty)
        data = _trackeval_data(*sequence)
        with contextlib.redirect_stdout(io.StringIO()):
            theirs = {"HOTA": hota.eval_sequence(data), "CLEAR": clear.eval_sequence(data)}
            theirs["Identity"] = identity.eval_sequence(data)
        ours = tracking_scores(*sequence)
        _assert_equal_to_trackeval(ours, theirs)
        ours_all.append(ours)
        theirs_all[f"seq{index}"] = theirs
    combined = combine_tracking_scores(ours_all)
    reference = {
        name: metric.combine_sequences({k: v[name] for k, v in theirs_all.items()})
        for name, metric in (("HOTA", hota), ("CLEAR", clear), ("Identity", identity))
    }
    _assert_equal_to_trackeval(combined, reference)


def test_hand_computed_cases_and_errors() -> None:
    """One perfect track: every score 1; the same boxes under two predicted ids half-way: one IDSW, AssA 0.5."""
    box = np.array([[0.0, 0, 10, 10]])
    perfect = tracking_scores([np.array([1])] * 4, [np.array([7])] * 4, [box_similarity(box, box)] * 4).summary()
    assert perfect["HOTA"] == pytest.approx(1.0) and perfect["MOTA"] == 1.0 and perfect["IDF1"] == 1.0
    switched = tracking_scores([np.array([1])] * 4, [np.array([7])] * 2 + [np.array([8])] * 2, [np.ones((1, 1))] * 4)
    summary = switched.summary()
    assert summary["IDSW"] == 1 and summary["DetA"] == 1.0 and summary["AssA"] == pytest.approx(0.5)
    assert summary["HOTA"] == pytest.approx(np.sqrt(0.5)) and summary["MOTA"] == pytest.approx(0.75)
    assert len(HOTA_ALPHAS) == 19
    with pytest.raises(ValueError, match="frame 0: similarity"):
        tracking_scores([np.array([1])], [np.array([7])], [np.ones((2, 1))])
    with pytest.raises(ValueError, match="repeat within the frame"):
        tracking_scores([np.array([1, 1])], [np.array([7])], [np.ones((2, 1))])
