"""Fixtures for importer tests: the shared real-data folder and the nuScenes sample imported once per session."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "../shared/data"
NUSCENES_SAMPLE = SHARED_DATA / "nuscenes_sample"
INFO_JSON = NUSCENES_SAMPLE / "n015-2018-07-24-11-22-45+0800.json"
INFO_PKL = NUSCENES_SAMPLE / "n015-2018-07-24-11-22-45+0800.pkl"


@pytest.fixture(scope="session")
def nuscenes_info_json() -> Path:
    if not INFO_JSON.is_file():
        pytest.skip(f"real nuScenes sample not found at {NUSCENES_SAMPLE} (shared data folder absent)")
    return INFO_JSON


@pytest.fixture(scope="session")
def nuscenes_clip(nuscenes_info_json, tmp_path_factory) -> Path:
    from perception.importers.nuscenes_info import import_nuscenes_info

    out = tmp_path_factory.mktemp("nuscenes") / "clip"
    return import_nuscenes_info(nuscenes_info_json, out, progress=False)[0]
