import dataclasses
from pathlib import Path

import numpy as np
import pytest

from autolabel.offline import OfflineLabelConfig, label_video_detections
from autolabel.uncertainty import rank_frames_for_review
from perception.geometry import box_iou
from perception.labels import Boxes2D

REPO = Path(__file__).resolve().parents[2]


def _scene(num_frames: int = 60, occluded=range(25, 37)):
    """Two coloured people-sized boxes on a textured background; box A is undetected while `occluded`."""
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (240, 320, 3), dtype=np.uint8)
    frames, per_frame, truth = [], [], {1: [], 2: []}
    for f in range(num_frames):
        a = np.array([20 + 3.0 * f, 60, 50 + 3.0 * f, 140])
        b = np.array([200 - 1.0 * f, 90, 230 - 1.0 * f, 170])
        frame = background.copy()
        for box, colour in ((b, (30, 200, 30)), (a, (30, 30, 220))):
            x1, y1, x2, y2 = box.astype(int)
            frame[y1:y2, x1:x2] = colour
        frames.append(frame)
        truth[1].append(a)
        truth[2].append(b)
        boxes = [b + rng.normal(0, 1.5, 4)]
        scores = [0.85]
        if f not in occluded:
            boxes.append(a + rng.normal(0, 1.5, 4))
            scores.append(0.9 if f % 7 else 0.35)
        boxes.append(rng.uniform(0, 200, 2).repeat(2) + [0, 0, 15, 15])  # clutter at low score
        scores.append(0.12)
        per_frame.append(Boxes2D(xyxy=np.array(boxes), score=scores, class_id=np.zeros(len(boxes), int)))
    return frames, per_frame, {k: np.array(v) for k, v in truth.items()}


def test_offline_chain_fills_occlusion_and_keeps_identity():
    frames, per_frame, truth = _scene()
    result = label_video_detections(
        iter(frames), per_frame, OfflineLabelConfig(min_length=5, smoothing="rts", box_min_score=0.0)
    )
    tracks = result.tracks
    assert sorted(set(tracks.track_id.tolist())) == [1, 2]
    for track_id in (1, 2):
        boxes = tracks[tracks.track_id == track_id]
        assert boxes.frame.tolist() == list(range(60))  # including the 12 occluded frames
        best = max((1, 2), key=lambda k: box_iou(boxes.xyxy[:1], truth[k][:1])[0, 0])
        ious = np.diag(box_iou(boxes.xyxy, truth[best]))
        assert ious.min() > 0.7, ious.min()
    assert result.frame_uncertainty.shape == (60,)
    review_order = rank_frames_for_review(result.frame_uncertainty, min_separation=5)  # what autolabel review does
    assert sorted(review_order.tolist()) == sorted(set(review_order.tolist()))
    first = tracks[tracks.frame == 0]
    occluded_id = first.track_id[np.argmax(box_iou(truth[1][:1], first.xyxy)[0])]
    in_gap = (tracks.track_id == occluded_id) & (tracks.frame >= 25) & (tracks.frame < 37)
    assert tracks.uncertainty[in_gap].min() >= 0.5  # filled boxes are flagged for review
    assert tracks.uncertainty[(tracks.track_id != occluded_id)].max() < 0.5


def test_offline_without_frames_and_config_io(tmp_path):
    _, per_frame, _ = _scene(num_frames=30, occluded=())
    result = label_video_detections(None, per_frame, OfflineLabelConfig(smoothing="linear", link=False))
    assert len(set(result.tracks.track_id.tolist())) == 2
    preset = OfflineLabelConfig.from_yaml(REPO / "configs/autolabel/default.yaml")
    assert preset.smoothing == "linear" and preset.backward_pass
    assert preset == OfflineLabelConfig()  # the dataclass defaults are the preset
    bad = tmp_path / "bad.yaml"
    bad.write_text("high_scor: 0.4\n")
    with pytest.raises(ValueError, match="bad.yaml.*high_scor"):
        OfflineLabelConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="smoothing"):
        OfflineLabelConfig(smoothing="spline")


@pytest.mark.shared_data
def test_end_to_end_on_real_video_with_video_reader(shared_data):
    """YOLOX teacher -> offline chain over the first 30 frames of TUD-Campus read by perception's VideoReader."""
    from autolabel.teachers.onnx_yolox import OnnxYoloxTeacher
    from perception.video import VideoReader

    model = shared_data / "models/yolox_nano_coco/yolox_nano.onnx"
    video = shared_data / "mot15/TUD-Campus/TUD-Campus.mp4"
    if not model.is_file() or not video.is_file():
        pytest.skip(f"YOLOX model or TUD-Campus video absent under {shared_data}")
    teacher = OnnxYoloxTeacher(model, class_map={"person": "person"})
    num_frames = 30
    with VideoReader(video) as reader:
        frames = [frame for _, frame in zip(range(num_frames), reader)]
    per_frame = teacher.predict_batch(frames)
    with VideoReader(video) as reader:
        result = label_video_detections(reader, per_frame, OfflineLabelConfig(), class_names=("person",))
    gt = np.loadtxt(video.parent / "gt/gt.txt", delimiter=",", ndmin=2)
    gt = gt[gt[:, 0] <= num_frames]
    gt_boxes = np.c_[gt[:, 2:4], gt[:, 2:4] + gt[:, 4:6]]
    matched = 0
    for frame in range(num_frames):
        iou = box_iou(gt_boxes[gt[:, 0] == frame + 1], result.tracks.xyxy[result.tracks.frame == frame])
        matched += int((iou.max(axis=1, initial=0.0) >= 0.5).sum())
    assert matched / len(gt) > 0.6
    assert 3 <= len(result.tracklets) <= 15 and len(result.warps) == num_frames
    assert np.abs(np.stack(result.warps)[:, :, 2]).max() < 3.0  # static camera: near-identity compensation


def test_weak_boxes_inside_a_track_are_replaced_by_interpolation():
    """box_min_score: a shrunken low-score box (a partly hidden object) is replaced by the interpolated whole box,
    a low-score box at the track's end is dropped."""
    per_frame = []
    for f in range(20):
        box = np.array([10 + 2.0 * f, 40, 40 + 2.0 * f, 120])
        score = 0.9
        if f == 10:
            box = np.array([10 + 2.0 * f, 40, 40 + 2.0 * f, 100])  # lower quarter hidden: a shrunken box
            score = 0.2
        if f == 19:
            score = 0.25
        per_frame.append(Boxes2D(xyxy=box[None], score=[score], class_id=[0]))
    config = OfflineLabelConfig(camera_motion=False, appearance=False, backward_pass=False, box_min_score=0.0)
    kept = label_video_detections(None, per_frame, config).tracks
    trusted = label_video_detections(None, per_frame, dataclasses.replace(config, box_min_score=0.3)).tracks
    assert kept.frame.tolist() == list(range(20))
    assert kept.xyxy[kept.frame == 10][0, 3] == pytest.approx(100, abs=1)  # the detector's shrunken box
    assert trusted.frame.tolist() == list(range(19))  # the weak last box is gone
    assert trusted.xyxy[trusted.frame == 10][0, 3] == pytest.approx(120, abs=1)  # interpolated whole box


def test_a_flickering_clutter_site_is_dropped_and_an_occluded_object_kept():
    """min_observed_fraction: a false positive seen at one place in a third of the frames becomes, linked and filled,
    a whole track of mostly invented boxes; it is dropped, while an object hidden for 12 frames (observed 80 % of its
    output) and the object seen throughout are kept. Off (0), all three are output."""
    _, per_frame, _ = _scene(num_frames=60)  # A hidden in frames 25-36, B seen throughout, clutter at score 0.12
    rng = np.random.default_rng(1)
    site = np.array([260.0, 20, 290, 80])
    shown = [0, 1, 4, 5, 9, 10, 14, 17, 18, 22, 23, 27, 31, 32, 36, 40, 41, 45, 49, 50, 54, 58, 59]  # 23 of 60
    for f in shown:
        clutter = Boxes2D(xyxy=(site + rng.normal(0, 1.0, 4))[None], score=[0.8], class_id=[0])
        per_frame[f] = Boxes2D.concat([per_frame[f], clutter])
    config = OfflineLabelConfig(camera_motion=False, appearance=False, min_observed_fraction=0.0)
    everything = label_video_detections(None, per_frame, config).tracks
    checked = label_video_detections(None, per_frame, dataclasses.replace(config, min_observed_fraction=0.5)).tracks
    assert OfflineLabelConfig().min_observed_fraction == 0.5  # on in the preset

    def on_site(tracks: Boxes2D) -> int:
        return int((box_iou(tracks.xyxy, site[None])[:, 0] > 0.5).sum())

    assert on_site(everything) >= 50  # the site's 23 detections linked and filled into a track of about 60 boxes
    assert on_site(checked) == 0
    assert len(set(checked.track_id.tolist())) == 2 and len(checked) == len(everything) - on_site(everything)


def test_durations_follow_the_frame_rate():
    config = OfflineLabelConfig(reference_frame_rate=25.0)  # durations read as frames at 25 fps
    slow = config.at_frame_rate(10.0)
    assert (slow.max_fill_gap, slow.max_lost_frames, slow.link_max_gap) == (12, 12, 20)
    assert slow.link_max_speed == pytest.approx(config.link_max_speed * 2.5)
    assert slow.min_length == config.min_length and slow.reference_frame_rate == 10.0
    assert config.at_frame_rate(25.0) is config and config.at_frame_rate(None) is config
    fixed = OfflineLabelConfig()  # the default: frame counts as given
    assert fixed.reference_frame_rate is None and fixed.at_frame_rate(10.0) is fixed
    with pytest.raises(ValueError, match="frame rate"):
        config.at_frame_rate(0.0)
    # a gap of 15 frames at 10 fps (1.5 s) is longer than 30 frames at 25 fps allow once scaled: not filled
    per_frame = [
        Boxes2D(xyxy=np.array([[10.0 + f, 40, 40 + f, 120]]), score=[0.9], class_id=[0]) if not 10 <= f < 25
        else Boxes2D.empty()
        for f in range(40)
    ]  # fmt: skip
    config = OfflineLabelConfig(camera_motion=False, appearance=False, reference_frame_rate=25.0)
    at_25 = label_video_detections(None, per_frame, config, frame_rate=25.0).tracks
    at_10 = label_video_detections(None, per_frame, config, frame_rate=10.0).tracks
    assert len(set(at_25.track_id.tolist())) == 1 and at_25.frame.tolist() == list(range(40))
    assert 20 not in at_10.frame.tolist()


def test_track_scores_written_per_box_are_what_min_track_score_decides_on():
    """output_score track: every box of a track carries the track's score, so keeping the boxes scoring >= t is
    exactly what min_track_score t keeps (what ``autolabel calibrate --track-score`` relies on); the boxes are the
    same as with the default per-box scores."""
    _, per_frame, _ = _scene(num_frames=30, occluded=())
    for f, boxes in enumerate(per_frame):  # a third, weaker object (scores 0.72-0.78) that must be decided on
        ghost = Boxes2D(xyxy=np.array([[250.0, 20 + f, 280, 80 + f]]), score=[0.72 + 0.06 * (f % 2)], class_id=[0])
        per_frame[f] = Boxes2D.concat([boxes, ghost])
    config = OfflineLabelConfig(camera_motion=False, appearance=False, min_track_score=0.0, output_score="track")
    result = label_video_detections(None, per_frame, config)
    scores = {t.track_id: t.track_score for t in result.tracklets}
    assert len(scores) == 3 and min(scores.values()) < 0.8 < max(scores.values())
    for track_id, score in scores.items():
        assert np.allclose(result.tracks.score[result.tracks.track_id == track_id], score)
    per_box = label_video_detections(None, per_frame, dataclasses.replace(config, output_score="box")).tracks
    assert np.array_equal(per_box.xyxy, result.tracks.xyxy) and not np.allclose(per_box.score, result.tracks.score)

    def boxes(tracks: Boxes2D) -> set:
        return {(int(f), *np.round(b, 6)) for f, b in zip(tracks.frame, tracks.xyxy)}

    for threshold in sorted(scores.values()):
        kept = label_video_detections(None, per_frame, dataclasses.replace(config, min_track_score=threshold)).tracks
        assert boxes(kept) == boxes(result.tracks[result.tracks.score >= np.float32(threshold)])
    with pytest.raises(ValueError, match="output_score"):
        OfflineLabelConfig(output_score="mean")
