"""The reliability suite: every reader fed corrupt files, every CLI run in-process through its error boundary."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "autolabel_pipeline"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from workspace import Templates  # noqa: E402


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Templates:
    """Good inputs built once per session (clips, label folder, models, configs); cases copy and break them."""
    return Templates.build(tmp_path_factory.mktemp("reliability_templates"))
