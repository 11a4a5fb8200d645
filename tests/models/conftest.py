"""Shared fixtures for model tests: keep torch to 2 threads."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(2)
