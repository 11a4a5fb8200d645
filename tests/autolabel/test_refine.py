import numpy as np

from autolabel.refine import (
    extend_tracklets,
    hold_stationary,
    interpolate_linear,
    link_tracklets,
    rts_smooth_series,
    rts_smooth_tracklet,
    unify_rigid_size,
)  # fmt: skip
from autolabel.refine.bidirectional import invert_affine, reconcile_with_backward
from autolabel.tracking import Tracklet
from perception.labels import Boxes2D


def _linear_track(frames, track_id=1, x0=0.0, vx=4.0, y=50.0, w=20.0, h=50.0, embedding=None) -> Tracklet:
    frames = np.asarray(frames)
    x = x0 + vx * frames
    xyxy = np.stack([x, np.full_like(x, y), x + w, np.full_like(x, y + h)], axis=1)
    emb = None if embedding is None else np.repeat(np.asarray(embedding, np.float32)[None], len(frames), axis=0)
    return Tracklet(
        track_id,
        frames,
        xyxy,
        np.full(len(frames), 0.9),
        np.zeros(len(frames)),
        np.ones(len(frames), bool),
        np.arange(len(frames)),
        embedding=emb,
    )


def test_interpolation_fills_gaps_exactly_for_linear_motion():
    frames = np.r_[0:5, 12:20, 50:55]
    filled = interpolate_linear(_linear_track(frames), max_gap=10)
    truth = _linear_track(np.r_[0:20, 50:55])
    assert filled.frames.tolist() == truth.frames.tolist()  # the 30-frame gap stays open
    np.testing.assert_allclose(filled.xyxy, truth.xyxy, atol=1e-9)
    assert (~filled.observed).sum() == 7 and np.isnan(filled.score[~filled.observed]).all()


def test_rts_reduces_noise_on_noisy_trajectory():
    rng = np.random.default_rng(0)
    times = np.arange(200)
    truth = np.stack([100 + 2.0 * times + 0.01 * times**2, 50 - 0.5 * times], axis=1)
    noisy = truth + rng.normal(0, 3.0, truth.shape)
    _, smoothed = rts_smooth_series(times, noisy, process_std=0.05, measurement_std=3.0)
    raw_error = np.sqrt(np.mean((noisy - truth) ** 2))
    smooth_error = np.sqrt(np.mean((smoothed - truth) ** 2))
    assert smooth_error < 0.5 * raw_error


def test_rts_tracklet_fills_short_gap_only():
    track = _linear_track(np.r_[0:10, 14:20, 60:70])
    smoothed = rts_smooth_tracklet(track, max_gap=5)
    assert smoothed.frames.tolist() == list(range(20)) + list(range(60, 70))
    np.testing.assert_allclose(smoothed.xyxy, _linear_track(smoothed.frames).xyxy, atol=0.5)


def test_linking_rejoins_track_broken_by_occlusion():
    red, blue = np.r_[1.0, 0, 0], np.r_[0, 0, 1.0]
    before = _linear_track(np.r_[0:20], track_id=1, embedding=red)
    after = _linear_track(np.r_[32:60], track_id=2, embedding=red)
    # A distractor of another colour starts near where `before` would be, but moves the other way.
    distractor = _linear_track(np.r_[30:60], track_id=3, x0=260.0, vx=-4.0, y=52.0, embedding=blue)
    # A same-colour object far away must not be linked either.
    far = _linear_track(np.r_[25:60], track_id=4, x0=0.0, vx=4.0, y=400.0, embedding=red)
    linked = link_tracklets([before, after, distractor, far], max_gap=15)
    ids = {t.track_id: t for t in linked}
    assert sorted(ids) == [1, 3, 4]
    assert ids[1].frames.tolist() == list(range(20)) + list(range(32, 60))
    assert len(link_tracklets([before, after], max_gap=5)) == 2  # gap of 12 frames exceeds max_gap


def test_extension_rescues_low_score_boxes_at_both_ends():
    num_frames = 30
    per_frame = []
    for f in range(num_frames):
        x = 10 + 3 * f
        score = 0.9 if 8 <= f < 22 else 0.2  # the online tracker only kept the confident middle
        per_frame.append(
            Boxes2D(xyxy=[[x, 40, x + 20, 90], [300, 300, 320, 350]], score=[score, 0.15], class_id=[0, 0])
        )
    offsets = np.arange(num_frames) * 2
    middle = np.arange(8, 22)
    seed = Tracklet(
        1,
        middle,
        np.array([per_frame[f].xyxy[0] for f in middle]),
        np.full(14, 0.9),
        np.zeros(14),
        np.ones(14, bool),
        offsets[middle],
    )
    (grown,) = extend_tracklets([seed], per_frame, min_score=0.1)
    assert grown.frames.tolist() == list(range(num_frames))
    assert set(grown.det_index.tolist()) == set(offsets.tolist())  # never grabbed the static distractor


def test_backward_reconcile_cuts_identity_switch():
    forward = _linear_track(np.arange(10), track_id=1)  # forward pass: one tracklet over boxes 0..9
    backward = [_linear_track(np.arange(5), track_id=7), _linear_track(np.arange(5, 10), track_id=8)]
    backward[1].det_index = np.arange(5, 10)
    pieces = reconcile_with_backward([forward], backward)
    assert [p.frames.tolist() for p in pieces] == [list(range(5)), list(range(5, 10))]
    assert pieces[0].track_id == 1 and pieces[1].track_id == 2
    affine = np.array([[1.0, 0.1, 5.0], [-0.1, 1.0, -3.0]])
    np.testing.assert_allclose(invert_affine(invert_affine(affine)), affine)


def test_rigid_size_and_stationary():
    track = _linear_track(np.arange(10), w=40.0, h=30.0)
    rng = np.random.default_rng(1)
    track.xyxy[:, 2:] += rng.normal(0, 1.0, (10, 2))
    rigid = unify_rigid_size(track)
    sizes = rigid.xyxy[:, 2:] - rigid.xyxy[:, :2]
    assert np.ptp(sizes[:, 0]) < 1e-9 and np.ptp(sizes[:, 1]) < 1e-9
    parked = _linear_track(np.arange(10), vx=0.0)
    parked.xyxy += rng.normal(0, 0.5, parked.xyxy.shape)
    held = hold_stationary(parked)
    assert np.ptp(held.xyxy, axis=0).max() < 1e-9
    moving = hold_stationary(_linear_track(np.arange(10)))
    assert np.ptp(moving.xyxy[:, 0]) > 30
