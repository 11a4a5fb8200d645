"""Chessboard calibration on the real Udacity camera_cal images, and on a synthetic board with known intrinsics."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.importers.calibrate import CalibrationError, calibrate_chessboard, list_images, main, parse_pattern
from perception.rig import Rig

CAMERA_CAL = Path(__file__).resolve().parents[2] / "../shared/data/udacity_dashcam/camera_cal"


@pytest.mark.shared_data
def test_udacity_chessboards(tmp_path, capsys):
    if not CAMERA_CAL.is_dir():
        pytest.skip(f"shared chessboard images not found at {CAMERA_CAL}")
    out = tmp_path / "camera.yaml"
    assert main([str(CAMERA_CAL), "--pattern", "9x6", "--square", "0.025", "--name", "dashcam", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rejected: calibration1.jpg" in printed and "used 17 images" in printed
    document = yaml.safe_load(out.read_text())
    assert document["calibration"]["rms_px"] < 1.5
    camera = Rig.from_dict(document, source=str(out))["dashcam"]
    assert (camera.width, camera.height) == (1280, 720)
    assert 1100 < camera.K[0, 0] < 1220 and -0.35 < camera.distortion[0] < -0.2


def test_synthetic_board_recovers_intrinsics(tmp_path):
    import cv2

    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    square_px = 40
    board = np.full((7 * square_px, 10 * square_px), 255, np.uint8)
    for r in range(7):
        for c in range(10):
            if (r + c) % 2 == 0:
                board[r * square_px : (r + 1) * square_px, c * square_px : (c + 1) * square_px] = 0
    board = cv2.copyMakeBorder(board, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    _h, w = board.shape
    rng = np.random.default_rng(1)
    for i in range(8):  # a plane at ~1.2 m seen from different angles (homography K [r1 r2 t] S)
        angles = rng.uniform(-0.35, 0.35, 3)
        R, _ = cv2.Rodrigues(angles)
        t = np.array([-0.25, -0.18, 1.2]) + rng.uniform(-0.05, 0.05, 3)
        metres_per_px = 0.5 / w
        H = K @ np.column_stack([R[:, 0], R[:, 1], t]) @ np.diag([metres_per_px, metres_per_px, 1.0])
        image = cv2.warpPerspective(board, H, (640, 480), borderValue=128)
        cv2.imwrite(str(tmp_path / f"board{i}.png"), image)
    result = calibrate_chessboard(list_images(tmp_path), (9, 6), 0.025, progress=False)
    assert len(result.per_image_error) >= 6 and result.rms < 0.5
    np.testing.assert_allclose(result.camera.K[0, 0], 500, rtol=0.03)
    np.testing.assert_allclose(result.camera.K[:2, 2], [320, 240], atol=15)


def test_bad_pattern_and_empty_folder(tmp_path):
    with pytest.raises(CalibrationError, match="COLUMNSxROWS"):
        parse_pattern("9by6")
    with pytest.raises(CalibrationError, match="holds no"):
        list_images(tmp_path)
