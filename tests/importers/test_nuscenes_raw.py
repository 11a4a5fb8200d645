"""Raw nuScenes tables (a fixture derived from the real sample) give the same ego-frame boxes as the info file."""

import numpy as np
import pytest
from make_raw_nuscenes_fixture import VERSION, write_raw_fixture

from perception.clip import ClipError, DriveClip
from perception.geometry import wrap_angle
from perception.importers.nuscenes_raw import import_nuscenes_raw

pytestmark = pytest.mark.shared_data  # every test builds its fixture from the real nuScenes sample


@pytest.fixture(scope="module")
def raw_clip(nuscenes_info_json, tmp_path_factory):
    root = write_raw_fixture(nuscenes_info_json, tmp_path_factory.mktemp("raw_nuscenes"))
    return DriveClip.open(import_nuscenes_raw(root, root / "clips", version=VERSION, progress=False)[0])


def test_frames_are_camera_sweeps_between_keyframes(raw_clip):
    raw_clip.validate(deep=True)
    assert raw_clip.num_frames == 7  # keyframe, 5 sweeps, keyframe
    assert raw_clip.labels.provenance["keyframe_indices"] == [0, 6]
    assert np.all(np.diff(raw_clip.timestamps) > 0)
    for name in raw_clip.rig.names:  # every camera's image is within half a sweep period of the frame time
        assert np.all(np.abs(raw_clip.camera_timestamps[name] - raw_clip.timestamps) < 0.05)


def test_keyframe_matches_info_import(raw_clip, nuscenes_clip):
    info = DriveClip.open(nuscenes_clip)
    raw_boxes, info_boxes = raw_clip.labels.frames[0].boxes3d, info.labels.frames[0].boxes3d
    assert len(raw_boxes) == len(info_boxes) == 68
    order = np.lexsort(raw_boxes.center.T), np.lexsort(info_boxes.center.T)
    raw_boxes, info_boxes = raw_boxes[order[0]], info_boxes[order[1]]
    np.testing.assert_allclose(raw_boxes.center, info_boxes.center, atol=1e-3)
    np.testing.assert_allclose(raw_boxes.size, info_boxes.size, atol=1e-4)
    assert np.abs(wrap_angle(raw_boxes.yaw - info_boxes.yaw)).max() < 1e-3
    np.testing.assert_allclose(raw_boxes.velocity, info_boxes.velocity, atol=1e-2)
    np.testing.assert_array_equal(raw_boxes.class_id, info_boxes.class_id)
    assert len(set(raw_boxes.track_id.tolist())) == 68
    np.testing.assert_allclose(raw_clip.world_from_ego[0], info.world_from_ego[0], atol=1e-6)
    for name in info.rig.names:
        assert raw_clip.camera_timestamps[name][0] == pytest.approx(info.camera_timestamps[name][0], abs=1e-6)
        np.testing.assert_allclose(raw_clip.camera_from_ego(0, name), info.camera_from_ego(0, name), atol=1e-5)


def test_sweeps_are_interpolated_by_instance(raw_clip):
    frames = raw_clip.labels.frames
    assert all(len(f.boxes3d) == 68 for f in frames)

    # world position of each track at frame i lies on the segment between the two keyframes
    def world_centres(i):
        boxes = frames[i].boxes3d
        pose = raw_clip.world_from_ego[i]
        return {int(t): pose[:3, :3] @ c + pose[:3, 3] for t, c in zip(boxes.track_id, boxes.center)}

    first, last = world_centres(0), world_centres(6)
    alpha = (raw_clip.timestamps[3] - raw_clip.timestamps[0]) / (raw_clip.timestamps[6] - raw_clip.timestamps[0])
    for track, centre in world_centres(3).items():
        np.testing.assert_allclose(centre, (1 - alpha) * first[track] + alpha * last[track], atol=1e-3)
    moving = [t for t in first if np.linalg.norm(last[t] - first[t]) > 1.0]
    assert moving, "the fixture should hold moving objects"


def test_other_class_and_missing_version(nuscenes_info_json, tmp_path):
    root = write_raw_fixture(nuscenes_info_json, tmp_path / "raw", sweeps_per_interval=1)
    clip = DriveClip.open(
        import_nuscenes_raw(root, tmp_path / "clips", version=VERSION, keep_other=True, progress=False)[0]
    )
    assert clip.num_frames == 3 and len(clip.labels.frames[0].boxes3d) == 69 and clip.labels.classes[-1] == "other"
    with pytest.raises(ClipError, match=r"v1.0-trainval: nuScenes table folder not found.*v1.0-fixture"):
        import_nuscenes_raw(root, tmp_path / "x", version="v1.0-trainval")


def test_dropped_camera_frames_skip_frames_instead_of_repeating_images(nuscenes_info_json, tmp_path):
    import json

    root = write_raw_fixture(nuscenes_info_json, tmp_path / "raw")
    path = root / VERSION / "sample_data.json"
    rows = json.loads(path.read_text())
    by_token = {r["token"]: r for r in rows}
    back = sorted(
        (r for r in rows if "CAM_BACK__" in r["filename"] and not r["is_key_frame"]), key=lambda r: r["timestamp"]
    )
    dropped = back[2]  # CAM_BACK loses one sweep: relink its neighbours
    by_token[dropped["prev"]]["next"], by_token[dropped["next"]]["prev"] = dropped["next"], dropped["prev"]
    path.write_text(json.dumps([r for r in rows if r["token"] != dropped["token"]]))
    clip = DriveClip.open(import_nuscenes_raw(root, tmp_path / "clips", version=VERSION, progress=False)[0])
    assert clip.num_frames == 6 and clip.labels.provenance["skipped_frames"] == 1
    for name in clip.rig.names:
        assert np.all(np.diff(clip.camera_timestamps[name]) > 0)
