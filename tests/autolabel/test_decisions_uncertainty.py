import numpy as np

from autolabel.decisions import decide_tracks, majority_class, observed_fraction, track_score
from autolabel.tracking import Tracklet
from autolabel.uncertainty import box_uncertainty, frame_uncertainty, rank_frames_for_review, temporal_inconsistency
from perception.labels import Boxes2D


def _track(track_id, scores, classes=None, observed=None) -> Tracklet:
    n = len(scores)
    xyxy = np.tile([0.0, 0.0, 10.0, 20.0], (n, 1)) + np.arange(n)[:, None]
    return Tracklet(
        track_id,
        np.arange(n),
        xyxy,
        scores,
        np.zeros(n) if classes is None else classes,
        np.ones(n, bool) if observed is None else observed,
        np.arange(n),
    )


def test_decisions_length_score_class():
    good = _track(1, [0.9, 0.8, 0.3, 0.9], classes=[2, 2, 1, 2])
    short = _track(2, [0.9, 0.9])
    weak = _track(3, [0.2, 0.3, 0.2, 0.25, 0.6])
    kept = decide_tracks([good, short, weak], min_length=3, min_track_score=0.3, max_low_fraction=0.7)
    assert [t.track_id for t in kept] == [1]
    assert kept[0].track_class == 2 and abs(kept[0].track_score - 0.9) < 1e-6
    assert majority_class(_track(4, [0.9, 0.1, 0.1], classes=[0, 1, 1])) == 0  # score-weighted
    assert track_score(_track(5, [0.5])) == 0.5


def test_observed_fraction_counts_only_the_gaps_that_would_be_filled():
    def seen_at(frames) -> Tracklet:
        n = len(frames)
        xyxy = np.tile([0.0, 0.0, 10.0, 20.0], (n, 1))
        return Tracklet(1, frames, xyxy, np.full(n, 0.9), np.zeros(n), np.ones(n, bool), np.arange(n))

    assert observed_fraction(seen_at(np.arange(10)), max_fill_gap=30) == 1.0
    assert observed_fraction(seen_at(np.arange(0, 30, 3)), max_fill_gap=30) == 10 / 28  # every third frame
    # hidden for 40 frames (not filled at max_fill_gap 30): only the 2-frame gaps count
    assert observed_fraction(seen_at(np.r_[0, 1, 2, 43, 44, 46]), max_fill_gap=30) == 6 / 7
    assert observed_fraction(seen_at(np.r_[0, 1, 2, 43]), max_fill_gap=50) == 4 / 44


def test_uncertainty_and_review_ranking():
    raw = _track(1, [0.9] * 5)
    smoothed = _track(1, [0.9] * 5)
    smoothed.xyxy[2] += 5.0
    temporal = temporal_inconsistency(raw, smoothed)
    assert temporal[2] > 0.3 and temporal[[0, 1, 3, 4]].max() < 1e-9
    smoothed.track_score = 0.9
    box = box_uncertainty(smoothed, temporal=temporal, ensemble=np.array([0, 0, 0, np.nan, 0.8]))
    assert box[4] == 0.8 and box[2] == temporal[2] and abs(box[0] - 0.1) < 1e-6
    tracks = Boxes2D(
        xyxy=smoothed.xyxy, score=[0.9] * 5, class_id=[0] * 5, frame=np.arange(5), track_id=[1] * 5, uncertainty=box
    )
    unexplained = [Boxes2D.empty()] * 5
    unexplained[0] = Boxes2D(xyxy=[[50, 50, 60, 70]], score=[0.99], class_id=[0])
    per_frame = frame_uncertainty(tracks, 6, unexplained=unexplained)
    assert per_frame[5] == 0.0 and abs(per_frame[0] - 0.495) < 1e-6
    order = rank_frames_for_review(per_frame)
    assert order[0] == 4 and order[-1] == 5
    assert rank_frames_for_review(per_frame, top_k=2, min_separation=1).tolist() == [4, 2]
