"""Simulated prediction traffic: seeded per-request draws, reported as Cloud Monitoring
reports them (`commands.canary.stats.WindowSample`: request and error counts and a DELTA
latency distribution in exponential buckets).

- Latency per request: lognormal, `exp(N(μ, σ²))` ms, with μ set so that the P95 is
  `p95_ms` (μ = ln p95 − 1.6449 σ). A latency regression multiplies every latency by
  `p95_factor` (a scaled copy: P50, P95 and P99 all move by the same factor).
- Errors: each request fails independently with probability `error_rate` (Bernoulli); a
  regression adds `error_points` (0.01 = one percentage point).
- Requests per window: Poisson with mean `rate_per_hour × window`; each goes to the canary
  with probability `canary_share` (so the canary's count is Poisson too).
- Buckets: `exponential_bounds()` — scale 1 ms, growth 1.4, 66 finite buckets, the layout
  Google uses for load-balancer latencies (Vertex's own layout is read from each point,
  never assumed, by the Monitoring adapter).

Used by `bench/bench_canary.py` and the tests of the judge; the sandbox platform can draw
its canary figures from the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from commands.canary.stats import CanaryWindow, WindowSample

if TYPE_CHECKING:
    import numpy as np

Z95 = 1.6448536269514722  # the standard normal's 95th percentile


def exponential_bounds(
    scale: float = 1.0, growth: float = 1.4, finite: int = 66
) -> tuple[float, ...]:
    """Cloud Monitoring's exponential bucket bounds: scale × growth^i, i = 0..finite."""
    return tuple(scale * growth**i for i in range(finite + 1))


BOUNDS_MS = exponential_bounds()


@dataclass(frozen=True)
class Traffic:
    """One version's behaviour: its P95 (ms), the log-sd of its latency, its error rate."""

    p95_ms: float = 800.0
    sigma: float = 0.5
    error_rate: float = 0.001

    def regressed(self, p95_factor: float = 1.0, error_points: float = 0.0) -> Traffic:
        """The same version made worse: every latency × `p95_factor`, errors + points."""
        return replace(
            self,
            p95_ms=self.p95_ms * p95_factor,
            error_rate=min(1.0, self.error_rate + error_points),
        )

    @property
    def mu(self) -> float:
        return math.log(self.p95_ms) - Z95 * self.sigma


def draw_sample(
    rng: np.random.Generator,
    traffic: Traffic,
    requests: int,
    start: datetime,
    end: datetime,
    bounds: tuple[float, ...] = BOUNDS_MS,
) -> WindowSample:
    """`requests` per-request draws of one version over [start, end), binned."""
    import numpy as np

    latencies = rng.lognormal(traffic.mu, traffic.sigma, size=requests)
    errors = int(np.count_nonzero(rng.random(requests) < traffic.error_rate))
    buckets = np.searchsorted(np.asarray(bounds), latencies, side="right")
    counts = np.bincount(buckets, minlength=len(bounds) + 1)
    return WindowSample(
        start=start,
        end=end,
        requests=requests,
        errors=errors,
        latency_bounds_ms=bounds,
        latency_counts=tuple(int(c) for c in counts),
    )


def draw_window(
    rng: np.random.Generator,
    stable: Traffic,
    canary: Traffic,
    rate_per_hour: float,
    canary_share: float,
    start: datetime,
    length: timedelta = timedelta(minutes=5),
    bounds: tuple[float, ...] = BOUNDS_MS,
) -> CanaryWindow:
    """One window of endpoint traffic split between the stable version and the canary."""
    total = int(rng.poisson(rate_per_hour * length.total_seconds() / 3600))
    n_canary = int(rng.binomial(total, canary_share))
    end = start + length
    return CanaryWindow(
        canary=draw_sample(rng, canary, n_canary, start, end, bounds),
        stable=draw_sample(rng, stable, total - n_canary, start, end, bounds),
    )
