"""Property tests of every parser of user files: whatever the bytes, a parser returns a value or raises the one error
type its command turns into a one-line message (an ``InputError``), never anything else.

rig.yaml, frames.csv, poses.csv, labels.json, latency budgets, autolabel job configs, nuScenes info files. Example
counts stay small (the whole suite must stay fast); ``HYPOTHESIS_PROFILE=fuzz`` runs many more.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perception.errors import InputError

EXAMPLES = int(os.environ.get("FLEETVISION_FUZZ_EXAMPLES", "40"))  # e.g. 2000 for a long fuzz run
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=EXAMPLES <= 40,  # the suite: the same examples every run
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


def _paths(document: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys / indices) to a value inside a nested document."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw, document: object) -> object:
    """``document`` with one to three of its values (anywhere, the root included) replaced by arbitrary ones."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(result)
        path = draw(st.sampled_from(paths))
        value = draw(VALUES)
        if not path:
            result = value
            continue
        parent = result
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass
    return result


@pytest.fixture(autouse=True)
def _scratch_root(tmp_path, monkeypatch):
    """Every example's files go below this test's tmp_path (removed with it)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="example_"))


# ------------------------------------------------------------------------------------------------ rig.yaml
GOOD_RIG = None


def _good_rig() -> dict:
    global GOOD_RIG
    if GOOD_RIG is None:
        from workspace import small_rig

        GOOD_RIG = small_rig().to_dict()
    return copy.deepcopy(GOOD_RIG)


@FUZZ
@given(st.data())
def test_rig_from_any_document(data):
    from perception.rig import Rig, RigError

    document = data.draw(mutated(_good_rig()) | VALUES)
    try:
        rig = Rig.from_dict(document, source="rig.yaml")
    except RigError as error:
        assert "rig.yaml" in str(error)
        return
    for camera in rig:  # what is accepted is usable: finite calibration, safe names
        assert np.all(np.isfinite(camera.K)) and np.all(np.isfinite(camera.ego_from_camera))
        assert "/" not in camera.name and camera.name not in (".", "..")


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_rig_from_any_bytes(content):
    from perception.rig import Rig, RigError

    path = _scratch() / "rig.yaml"
    path.write_bytes(content)
    with pytest.raises(RigError, match="rig.yaml"):
        Rig.load(path)


# ----------------------------------------------------------------------------------------- frames.csv / poses.csv
CSV_ALPHABET = st.sampled_from(list("0123456789.,-+e\n") + ["nan", "inf", '"', "\x00", " ", "x", "1e999", ",,"])
FRAMES_HEADER = "index,timestamp,x,y,z,qw,qx,qy,qz,t_front,t_left\n"
GOOD_ROW = "{i},{t},0.0,0.0,0.0,1.0,0.0,0.0,0.0,{t},{t}\n"


@st.composite
def csv_text(draw, header: str) -> str:
    rows = "".join(GOOD_ROW.format(i=i, t=0.1 * i) for i in range(draw(st.integers(0, 3))))
    noise = "".join(draw(st.lists(CSV_ALPHABET, max_size=40)))
    where = draw(st.sampled_from(["header", "rows", "append", "replace"]))
    if where == "header":
        return noise + rows
    if where == "replace":
        return noise
    if where == "rows":
        return header + noise
    return header + rows + noise


def _clip_with(table: str, text: str) -> Path:
    """A clip folder holding rig.yaml, a good frames.csv (unless ``table`` is it) and ``text`` as ``table``."""
    from workspace import small_rig

    folder = _scratch()
    small_rig().save(folder / "rig.yaml")
    (folder / "frames.csv").write_text(FRAMES_HEADER + "".join(GOOD_ROW.format(i=i, t=0.1 * i) for i in range(4)))
    (folder / table).write_text(text, encoding="utf-8", errors="surrogatepass")
    return folder


@FUZZ
@given(csv_text(FRAMES_HEADER))
def test_frames_csv_any_text(text):
    from perception.clip import ClipError, DriveClip

    with pytest.raises(ClipError):  # a clip without camera videos never opens: but the table is parsed first
        DriveClip.open(_clip_with("frames.csv", text))


@FUZZ
@given(csv_text("timestamp,x,y,z,qw,qx,qy,qz\n"))
def test_poses_csv_any_text(text):
    from perception.clip import ClipError, DriveClip

    with pytest.raises(ClipError):
        DriveClip.open(_clip_with("poses.csv", text))


@FUZZ
@given(csv_text(FRAMES_HEADER))
def test_read_table_accepts_only_finite_numbers(text):
    from perception.clip import ClipError, _read_table

    path = _scratch() / "frames.csv"
    path.write_text(text)
    try:
        _, table = _read_table(path, ["index", "timestamp"])
    except ClipError as error:
        assert "frames.csv" in str(error)
        return
    assert np.all(np.isfinite(table))


# ------------------------------------------------------------------------------------------------ labels.json
def _good_labels() -> dict:
    return {
        "schema_version": 1,
        "classes": ["car", "pedestrian"],
        "provenance": {"source": "test"},
        "frames": [
            {
                "boxes3d": {
                    "center": [[8.0, 0.5, 0.8]],
                    "size": [[4.0, 1.8, 1.6]],
                    "yaw": [0.1],
                    "velocity": [[0.0, 0.0]],
                    "class_id": [0],
                    "score": [1.0],
                    "track_id": [3],
                },
                "boxes2d": {
                    "front": {
                        "xyxy": [[10.0, 10.0, 30.0, 30.0]],
                        "class_id": [1],
                        "score": [0.9],
                        "track_id": [3],
                        "visibility": [None],
                        "truncation": [0.0],
                    }
                },
                "uncertainty": 0.2,
            }
        ],
    }


@FUZZ
@given(st.data())
def test_labels_from_any_document(data):
    from perception.labels import ClipLabels, LabelsError

    document = data.draw(mutated(_good_labels()) | VALUES)
    path = _scratch() / "labels.json"
    path.write_text(json.dumps(document))
    try:
        labels = ClipLabels.load(path, camera_names=["front", "left"])
    except LabelsError as error:
        assert "labels.json" in str(error)
        return
    for frame in labels.frames:  # what is accepted is usable
        assert np.all(np.isfinite(frame.boxes3d.center)) and np.all(np.isfinite(frame.boxes3d.yaw))
        assert np.all((frame.boxes3d.class_id >= 0) & (frame.boxes3d.class_id < len(labels.classes)))


@FUZZ
@given(st.binary(max_size=200))
def test_labels_from_any_bytes(content):
    from perception.labels import ClipLabels, LabelsError

    path = _scratch() / "labels.json"
    path.write_bytes(content)
    try:
        ClipLabels.load(path)
    except LabelsError as error:
        assert "labels.json" in str(error)


# ------------------------------------------------------------------------------------------------ budgets
BUDGET_KEYS = st.sampled_from(
    [
        "name",
        "rate_hz",
        "deadline_ms",
        "p99_ms",
        "max_ms",
        "mean_ms",
        "max_miss_rate",
        "provider",
        "intra_op_threads",
        "inter_op_threads",
        "description",
        "bogus",
    ]
)


@FUZZ
@given(st.dictionaries(BUDGET_KEYS, VALUES, max_size=6) | VALUES)
def test_budget_from_any_document(document):
    from deploy.budget import Budget, BudgetError

    try:
        budget = Budget.from_dict(document, source="budget.yaml")
    except BudgetError as error:
        assert "budget.yaml" in str(error)
        return
    limits = [budget.rate_hz, budget.deadline_ms, budget.p99_ms, budget.max_ms, budget.mean_ms]
    assert any(v is not None for v in limits)
    assert all(v is None or (math.isfinite(v) and v > 0) for v in limits)


@FUZZ
@given(st.binary(max_size=200))
def test_budget_from_any_bytes(content):
    from deploy.budget import Budget, BudgetError

    path = _scratch() / "budget.yaml"
    path.write_bytes(content)
    try:
        Budget.load(path)
    except BudgetError as error:
        assert "budget.yaml" in str(error)


# ------------------------------------------------------------------------------------------------ job configs
JOB_KEYS = st.sampled_from(
    [
        "teacher",
        "classes",
        "refine",
        "tracking3d",
        "export",
        "preview",
        "batch_size",
        "queue_frames",
        "window_frames",
        "window_overlap",
        "bogus",
    ]
)
GOOD_JOB = {"teacher": {"class_path": "autolabel_fakes.BlobTeacher"}, "classes": ["car", "pedestrian"]}


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(st.data())
def test_job_config_any_document(data):
    """``autolabel`` with any job config over an empty input folder: exit 2 (bad config, or no inputs), one line,
    never an internal error."""
    from harness import run_tool

    document = data.draw(mutated(GOOD_JOB) | st.dictionaries(JOB_KEYS, VALUES, max_size=4))
    folder = _scratch()
    (folder / "inputs").mkdir()
    (folder / "job.yaml").write_text(yaml.safe_dump(document))
    outcome = run_tool(
        "autolabel", [str(folder / "inputs"), "--out", str(folder / "out"), "-c", str(folder / "job.yaml")]
    )
    assert outcome.escaped is None and "internal error" not in outcome.output, outcome.output
    assert outcome.code == 2, outcome.output


# ------------------------------------------------------------------------------------------------ nuScenes info files
@FUZZ
@given(st.data())
def test_info_file_any_document(data):
    from scenarios import write_info

    from perception.importers.nuscenes_info import import_nuscenes_info

    folder = _scratch()
    good = json.loads(write_info(folder / "nuscenes").read_text())
    document = data.draw(mutated(good))
    info = folder / "nuscenes" / "infos.json"
    info.write_text(json.dumps(document))
    try:
        import_nuscenes_info(info, folder / "out", progress=False)
    except InputError as error:
        assert "infos.json" in str(error) or "out" in str(error), str(error)
        assert not (folder / "out").exists()
