"""benchmarks/bench_refine_grid.py reads its grid as a Tracker3DConfig field and YAML values, and refuses others."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("bench_refine_grid", ROOT / "benchmarks/bench_refine_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_values_are_yaml_and_keys_are_tracker_fields() -> None:
    grid = _module().parse_grid
    assert grid("stationary_max_speed=null,0.5,1") == ("stationary_max_speed", [None, 0.5, 1])
    assert grid("class_vote=false,true") == ("class_vote", [False, True])
    with pytest.raises(SystemExit, match="stationary_max_speed"):
        grid("stationary_max_sped=0.5")  # a typo names the fields it could have meant
    with pytest.raises(SystemExit, match="expected KEY=V1,V2"):
        grid("min_length=")
