"""Frame-drop accounting at a fixed rate: an exponentially filtered drop fraction and an alert above a threshold
(openpilot's driving model raises an alert when more than 20% of frames are dropped)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DropFilter:
    """First-order low-pass of the per-step drop fraction ``dropped / (1 + dropped)``; time constant ``tau_s``."""

    period_s: float
    tau_s: float = 10.0
    alert_threshold: float = 0.2
    value: float = 0.0
    peak: float = 0.0
    alerts: int = 0

    def update(self, dropped: int) -> float:
        """Feed the number of frames dropped before this processed frame; returns the filtered fraction (0..1)."""
        fraction = dropped / (1.0 + dropped) if dropped > 0 else 0.0
        gain = self.period_s / (self.tau_s + self.period_s) if self.tau_s > 0 else 1.0
        self.value += gain * (fraction - self.value)
        self.peak = max(self.peak, self.value)
        if self.alerting:
            self.alerts += 1
        return self.value

    @property
    def alerting(self) -> bool:
        """True while the filtered drop fraction is above the alert threshold."""
        return self.value > self.alert_threshold
