"""Fault injection for replays: a camera that dies mid-clip, frames that never arrive, frames that arrive late.

A ``FaultPlan`` is consulted by each replay camera thread (``ReplayCameraSource``) for every frame before it is
delivered; every decision is a pure function of (seed, camera, frame index, time), so a faulted replay is the same
in every run. Faults are given as strings (``deploy run --fault ...``):

  ``dead:CAMERA@SECONDS``          the camera stops delivering at that time after the replay start and stays
                                   silent (a hung camera: no end-of-stream, the runtime only sees frames stop)
  ``lost:PROB[:CAMERA]``           each frame (of CAMERA, default every camera) never arrives with probability PROB
  ``late:PROB:MS[:CAMERA]``        each frame arrives MS milliseconds after its capture time with probability PROB

What the runtime does about them is its own business (``deploy.runtime.engine``: a set is not held beyond the
deadline for a missing camera, and a camera that missed several sets in a row is no longer waited for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from perception.corruptions import seeded_rng

ALL_CAMERAS = "*"


class FaultSpecError(ValueError):
    """A ``--fault`` string that cannot be parsed; the message names it and the expected forms."""


@dataclass(frozen=True)
class FrameFate:
    """What happens to one camera frame: dropped for good (``dead`` or ``lost``), or delivered ``delay_s`` late."""

    dead: bool = False
    lost: bool = False
    delay_s: float = 0.0

    @property
    def delivered(self) -> bool:
        return not (self.dead or self.lost)


@dataclass(frozen=True)
class FaultPlan:
    """Camera deaths ({camera: seconds after the replay start}), loss and lateness rules, and the seed."""

    dead: dict[str, float] = field(default_factory=dict)
    lost: tuple[tuple[str, float], ...] = ()
    late: tuple[tuple[str, float, float], ...] = ()  # (camera or "*", probability, delay in seconds)
    seed: int = 0

    @classmethod
    def parse(cls, specs: Sequence[str], *, seed: int = 0) -> FaultPlan:
        """A plan from ``--fault`` strings (see the module doc); ``FaultSpecError`` names a bad one."""
        dead: dict[str, float] = {}
        lost: list[tuple[str, float]] = []
        late: list[tuple[str, float, float]] = []
        forms = "dead:CAMERA@SECONDS, lost:PROB[:CAMERA], late:PROB:MS[:CAMERA]"
        for spec in specs:
            kind, _, rest = spec.partition(":")
            try:
                if kind == "dead":
                    camera, _, at = rest.partition("@")
                    if not camera or not at:
                        raise ValueError("missing camera or time")
                    dead[camera] = _non_negative(float(at), "time")
                elif kind == "lost":
                    parts = rest.split(":")
                    if len(parts) not in (1, 2):
                        raise ValueError("expected PROB[:CAMERA]")
                    lost.append((parts[1] if len(parts) == 2 else ALL_CAMERAS, _probability(float(parts[0]))))
                elif kind == "late":
                    parts = rest.split(":")
                    if len(parts) not in (2, 3):
                        raise ValueError("expected PROB:MS[:CAMERA]")
                    camera = parts[2] if len(parts) == 3 else ALL_CAMERAS
                    late.append((camera, _probability(float(parts[0])), _non_negative(float(parts[1]), "MS") / 1e3))
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            except ValueError as error:
                raise FaultSpecError(f"--fault {spec!r}: {error}; expected one of {forms}") from None
        return cls(dead=dead, lost=tuple(lost), late=tuple(late), seed=seed)

    def cameras(self) -> set[str]:
        """Cameras named by the plan (not counting '*')."""
        named = set(self.dead) | {c for c, _ in self.lost} | {c for c, _, _ in self.late}
        return named - {ALL_CAMERAS}

    def check_cameras(self, cameras: Sequence[str]) -> None:
        """Raise ``FaultSpecError`` if the plan names a camera the model does not have."""
        unknown = sorted(self.cameras() - set(cameras))
        if unknown:
            raise FaultSpecError(f"--fault names cameras {unknown} that the model does not have ({list(cameras)})")

    def fate(self, camera: str, index: int, elapsed_s: float) -> FrameFate:
        """The fate of ``camera``'s frame ``index`` captured ``elapsed_s`` seconds after the replay start."""
        if camera in self.dead and elapsed_s >= self.dead[camera]:
            return FrameFate(dead=True)
        rng = seeded_rng(self.seed, "fault", camera, index)
        draws = rng.random(len(self.lost) + len(self.late))
        for k, (who, probability) in enumerate(self.lost):
            if who in (ALL_CAMERAS, camera) and draws[k] < probability:
                return FrameFate(lost=True)
        delay = 0.0
        for k, (who, probability, seconds) in enumerate(self.late):
            if who in (ALL_CAMERAS, camera) and draws[len(self.lost) + k] < probability:
                delay = max(delay, seconds)
        return FrameFate(delay_s=delay)

    def describe(self) -> list[str]:
        """One line per fault, for summaries."""
        lines = [f"camera {c} dies at {t:g} s" for c, t in sorted(self.dead.items())]
        lines += [f"{'every camera' if c == ALL_CAMERAS else c}: frames lost with p={p:g}" for c, p in self.lost]
        lines += [
            f"{'every camera' if c == ALL_CAMERAS else c}: frames {1e3 * s:g} ms late with p={p:g}"
            for c, p, s in self.late
        ]
        return lines


def _probability(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"probability {value} outside [0, 1]")
    return value


def _non_negative(value: float, name: str) -> float:
    if value < 0:
        raise ValueError(f"{name} {value} is negative")
    return value
