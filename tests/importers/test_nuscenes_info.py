"""nuScenes info-file import against the real sample: boxes, timing, and the dataset's own 2D boxes."""

import os
import pickle

import numpy as np
import pytest

from perception.clip import DriveClip
from perception.geometry import invert_se3
from perception.importers.common import NUSCENES_CLASSES
from perception.importers.nuscenes_info import import_nuscenes_info, load_info_file
from perception.importers.reprojection import reference_box_ious
from perception.importers.safe_pickle import UnsafePickleError, safe_load_bytes


def _median_iou(clip: DriveClip, honour_camera_time: bool) -> tuple[float, int]:
    labels = clip.labels.frames[0]
    ious = []
    for name in clip.rig.names:
        camera_from_ego = clip.camera_from_ego(0, name) if honour_camera_time else clip.rig[name].camera_from_ego
        boxes = labels.boxes2d[name]
        ious.append(reference_box_ious(labels.boxes3d, clip.rig[name], camera_from_ego, boxes.xyxy, boxes.class_id))
    ious = np.concatenate(ious)
    return float(np.median(ious)), len(ious)


@pytest.mark.shared_data
def test_imported_clip_structure(nuscenes_clip):
    clip = DriveClip.open(nuscenes_clip)
    clip.validate(deep=True)
    assert len(clip.rig) == 6 and clip.num_frames == 1
    assert clip.labels.classes == list(NUSCENES_CLASSES)
    frame = clip.labels.frames[0]
    assert len(frame.boxes3d) == 68  # 69 instances, one labelled -1 (outside the 10 classes) is dropped
    assert sum(len(b) for b in frame.boxes2d.values()) == 84
    assert {c.width for c in clip.rig} == {1600} and {c.height for c in clip.rig} == {900}
    times = [clip.camera_timestamps[n][0] for n in clip.rig.names]
    assert 0.03 < max(times) - min(times) < 0.05  # the six exposures span ~43 ms
    image = clip.read_frame(0).images["CAM_FRONT"]
    assert image.shape == (900, 1600, 3) and image.std() > 10


@pytest.mark.shared_data
def test_jpeg_bytes_copied_unchanged(nuscenes_clip, nuscenes_info_json):
    info = load_info_file(nuscenes_info_json)
    original = nuscenes_info_json.parent / info["data_list"][0]["images"]["CAM_BACK"]["img_path"]
    assert (nuscenes_clip / "cameras" / "CAM_BACK" / "000000.jpg").read_bytes() == original.read_bytes()


@pytest.mark.shared_data
def test_keep_other_keeps_all_69_boxes(nuscenes_info_json, tmp_path):
    clip = DriveClip.open(import_nuscenes_info(nuscenes_info_json, tmp_path / "c", keep_other=True, progress=False)[0])
    assert len(clip.labels.frames[0].boxes3d) == 69
    assert clip.labels.classes[-1] == "other" and (clip.labels.frames[0].boxes3d.class_id == 10).sum() == 1


@pytest.mark.shared_data
def test_projected_3d_boxes_reproduce_dataset_2d_boxes(nuscenes_clip):
    clip = DriveClip.open(nuscenes_clip)
    timed, count = _median_iou(clip, honour_camera_time=True)
    static, _ = _median_iou(clip, honour_camera_time=False)
    assert count == 84
    assert timed >= 0.9, f"median IoU {timed:.3f} honouring per-camera time"
    assert static < timed - 0.05  # ignoring the capture times is measurably worse on this sample


@pytest.mark.shared_data
def test_camera_from_ego_reproduces_lidar2cam(nuscenes_clip, nuscenes_info_json):
    info = load_info_file(nuscenes_info_json)["data_list"][0]
    clip = DriveClip.open(nuscenes_clip)
    lidar2ego = np.asarray(info["lidar_points"]["lidar2ego"])
    for name in clip.rig.names:
        lidar2cam = np.asarray(info["images"][name]["lidar2cam"])
        np.testing.assert_allclose(clip.camera_from_ego(0, name) @ lidar2ego, lidar2cam, atol=2e-3)


@pytest.mark.shared_data
def test_box_centre_and_velocity_in_ego_frame(nuscenes_clip, nuscenes_info_json):
    info = load_info_file(nuscenes_info_json)["data_list"][0]
    kept = [i for i in info["instances"] if i["bbox_label_3d"] >= 0]
    boxes = DriveClip.open(nuscenes_clip).labels.frames[0].boxes3d
    lidar2ego = np.asarray(info["lidar_points"]["lidar2ego"])
    centre_lidar = np.array([i["bbox_3d"][:3] for i in kept])
    centre_back = (invert_se3(lidar2ego)[:3, :3] @ boxes.center.T).T + invert_se3(lidar2ego)[:3, 3]
    np.testing.assert_allclose(centre_back, centre_lidar, atol=1e-3)
    speed_lidar = np.linalg.norm(
        np.nan_to_num([i["velocity"] for i in kept]), axis=1
    )  # nan = unknown -> 0 (as mmdet3d)
    np.testing.assert_allclose(np.linalg.norm(boxes.velocity, axis=1), speed_lidar, atol=1e-2)
    # lidar x right / y forward: a box ahead of the car in lidar +y is ahead in ego +x
    ahead = centre_lidar[:, 1] > 5
    assert np.all(boxes.center[ahead, 0] > 4)


@pytest.mark.shared_data
def test_pkl_and_json_give_same_clip(nuscenes_info_json, nuscenes_clip, tmp_path):
    pkl = nuscenes_info_json.with_suffix(".pkl")
    clip = DriveClip.open(import_nuscenes_info(pkl, tmp_path / "from_pkl", progress=False)[0])
    reference = DriveClip.open(nuscenes_clip)
    np.testing.assert_allclose(
        clip.labels.frames[0].boxes3d.center, reference.labels.frames[0].boxes3d.center, atol=1e-6
    )
    np.testing.assert_allclose(clip.world_from_ego, reference.world_from_ego, atol=1e-9)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    payload = pickle.dumps({"data_list": [_Exploit()]})
    with pytest.raises(UnsafePickleError, match=r"refused to load global '(posix|os|nt)\.system'"):
        safe_load_bytes(payload, source="evil.pkl")
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="evil.pkl"):
        load_info_file(path)


def test_restricted_unpickler_loads_numpy_content():
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64(1.5), "c": [np.int64(3)], "d": (1, "x")}
    for protocol in (2, 4, 5):
        loaded = safe_load_bytes(pickle.dumps(data, protocol=protocol))
        np.testing.assert_array_equal(loaded["a"], data["a"])
        assert loaded["b"] == 1.5 and loaded["c"][0] == 3 and loaded["d"] == (1, "x")


@pytest.mark.shared_data
def test_missing_image_error_names_candidates(nuscenes_info_json, tmp_path):
    moved = tmp_path / "info.json"
    moved.write_text(nuscenes_info_json.read_text())
    with pytest.raises(ValueError, match="image for CAM_FRONT not found.*--data-root"):
        import_nuscenes_info(moved, tmp_path / "clip", progress=False)
    clip = import_nuscenes_info(moved, tmp_path / "clip", data_root=nuscenes_info_json.parent, progress=False)[0]
    assert (clip / "labels.json").is_file()
