"""Latency budgets (YAML in configs/deploy/) and the pass/fail verdict for a set of latency samples (ms)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deploy.stats import LatencyStats, miss_rate
from perception.errors import InputError, load_yaml

EXIT_OK = 0
EXIT_BUDGET_EXCEEDED = 3  # distinct from argparse usage errors (2) and crashes (1)

_NUMBER_FIELDS = ("rate_hz", "deadline_ms", "p99_ms", "max_ms", "mean_ms", "max_miss_rate")
_INT_FIELDS = ("intra_op_threads", "inter_op_threads")
_ALLOWED = {"name", "description", "provider", "priority", *_NUMBER_FIELDS, *_INT_FIELDS}
PRIORITIES = ("normal", "high", "realtime")  # deploy.runtime.scheduling


class BudgetError(InputError):
    """A budget file or dict is malformed (message names file, field, expected, found)."""


@dataclass(frozen=True)
class Budget:
    """A latency budget in ms; ``deadline_ms`` defaults to the frame period 1000/rate_hz when only a rate is given."""

    name: str
    rate_hz: float | None = None
    deadline_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    max_miss_rate: float = 0.0
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    provider: str | None = None
    priority: str | None = None  # CPU priority of ``deploy run``'s threads (deploy.runtime.scheduling)
    description: str = ""

    @property
    def effective_deadline_ms(self) -> float | None:
        """Per-run deadline in ms: explicit ``deadline_ms``, else 1000 / rate_hz, else None."""
        if self.deadline_ms is not None:
            return self.deadline_ms
        if self.rate_hz is not None:
            return 1000.0 / self.rate_hz
        return None

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "<dict>") -> Budget:
        """Validate and build a budget; unknown or mistyped fields raise BudgetError naming source and field."""
        if not isinstance(data, Mapping):
            raise BudgetError(f"{source}: expected a mapping of budget fields, found {type(data).__name__}")
        unknown = sorted(set(data) - _ALLOWED)
        if unknown:
            raise BudgetError(f"{source}: unknown field(s) {unknown}; expected a subset of {sorted(_ALLOWED)}")
        if not isinstance(data.get("name"), str) or not data["name"]:
            raise BudgetError(f"{source}: field 'name' expected a non-empty string, found {data.get('name')!r}")
        values: dict = {"name": data["name"]}
        for key in _NUMBER_FIELDS:
            if data.get(key) is None:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise BudgetError(f"{source}: field {key!r} expected a non-negative number, found {value!r}")
            values[key] = float(value)
        for key in _INT_FIELDS:
            if data.get(key) is None:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BudgetError(f"{source}: field {key!r} expected a non-negative integer, found {value!r}")
            values[key] = value
        if values.get("rate_hz") == 0.0:
            raise BudgetError(f"{source}: field 'rate_hz' expected > 0, found 0")
        if values.get("max_miss_rate", 0.0) > 1.0:
            raise BudgetError(
                f"{source}: field 'max_miss_rate' expected a fraction in [0, 1], found {values['max_miss_rate']}"
            )
        for key in ("provider", "description"):
            if data.get(key) is not None:
                if not isinstance(data[key], str):
                    raise BudgetError(f"{source}: field {key!r} expected a string, found {data[key]!r}")
                values[key] = data[key]
        if data.get("priority") is not None:
            if data["priority"] not in PRIORITIES:
                raise BudgetError(
                    f"{source}: field 'priority' expected one of {PRIORITIES}, found {data['priority']!r}"
                )
            values["priority"] = data["priority"]
        budget = cls(**values)
        limits = ("rate_hz", "deadline_ms", "p99_ms", "max_ms", "mean_ms")
        if not any(getattr(budget, key) is not None for key in limits):
            raise BudgetError(
                f"{source}: no limit set; expected at least one of rate_hz, deadline_ms, p99_ms, max_ms, mean_ms"
            )
        return budget

    @classmethod
    def load(cls, path: str | Path) -> Budget:
        """Load a budget YAML file (see configs/deploy/*.yaml)."""
        path = Path(path)
        data = load_yaml(path, "a latency budget YAML (see configs/deploy/*.yaml)", BudgetError)
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        """Plain-JSON dict (None fields dropped)."""
        return {key: value for key, value in asdict(self).items() if value is not None and value != ""}


@dataclass(frozen=True)
class BudgetCheck:
    """One limit compared with one measured value (ms or fraction)."""

    name: str
    limit: float
    measured: float
    passed: bool


@dataclass(frozen=True)
class BudgetVerdict:
    """All checks of one budget on one variant; ``passed`` only if every check passed."""

    budget: str
    passed: bool
    checks: list[BudgetCheck] = field(default_factory=list)
    deadline_ms: float | None = None
    miss_rate: float | None = None

    def failures(self) -> list[str]:
        """Human-readable lines for the failed checks."""
        return [f"{c.name} {c.measured:.4g} > limit {c.limit:.4g}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        """Plain-JSON dict."""
        return asdict(self)


def evaluate_budget(latencies_ms: np.ndarray, budget: Budget, stats: LatencyStats | None = None) -> BudgetVerdict:
    """Check p99, max, mean against the budget and the deadline-miss rate (runs > deadline) against max_miss_rate."""
    stats = stats or LatencyStats.from_samples(latencies_ms)
    checks: list[BudgetCheck] = []
    for name, limit, measured in (
        ("p99_ms", budget.p99_ms, stats.p99_ms),
        ("max_ms", budget.max_ms, stats.max_ms),
        ("mean_ms", budget.mean_ms, stats.mean_ms),
    ):
        if limit is not None:
            checks.append(BudgetCheck(name, limit, measured, measured <= limit))
    deadline = budget.effective_deadline_ms
    rate = None
    if deadline is not None:
        rate = miss_rate(latencies_ms, deadline)
        checks.append(BudgetCheck("miss_rate", budget.max_miss_rate, rate, rate <= budget.max_miss_rate))
    return BudgetVerdict(
        budget=budget.name, passed=all(c.passed for c in checks), checks=checks, deadline_ms=deadline, miss_rate=rate
    )


def budget_exit_code(verdicts: Sequence[BudgetVerdict | None]) -> int:
    """Process exit status: EXIT_BUDGET_EXCEEDED (3) if any judged variant failed its budget, else 0."""
    return EXIT_BUDGET_EXCEEDED if any(v is not None and not v.passed for v in verdicts) else EXIT_OK
