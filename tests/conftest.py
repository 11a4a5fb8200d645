"""Suite-wide rules. ``shared_data``: a test that reads ``../shared/data`` (real third-party data, present in the
project setup, never copied into the repository) is skipped when the data is absent, except under ``CI=true``:
there a missing folder, or any skip of such a test, is a failure, so CI cannot pass without running them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


def in_ci() -> bool:
    """True when the environment variable CI is set to true/1/yes (GitHub Actions, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("shared_data") is None or SHARED_DATA.is_dir():
        return
    message = f"shared test data not found at {SHARED_DATA} (see its README.md in the project setup)"
    if in_ci():
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and item.get_closest_marker("shared_data") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a shared_data test may not skip under CI=true: {reason}"
