"""Fixtures for the viewer exports: the tiny exactly-known clip of tests/data/clip_factory.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
