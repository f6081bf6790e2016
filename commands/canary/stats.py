"""A sequential canary judge: is the canary worse than the stable version by more than the
tolerance, within it, or can the data not tell yet? Pure: no I/O, no clock, standard library
only.

Shapes
------
A `WindowSample` is what Cloud Monitoring gives for one deployed model over one window:
`prediction_count` (requests), `error_count` (errors) and `prediction_latencies`, a DELTA
distribution (explicit finite bucket bounds in ms; counts per bucket, one more bucket than
bounds: bucket 0 is below the first bound, the last is above the last bound). A
`CanaryWindow` pairs the canary's and the stable version's samples of the same window.
`judge(settings, evidence, windows)` returns a `Judgement`: the new `Evidence` (the state to
keep), the `Verdict` (`regression`, `no_regression`, `undecided`), the figures and the text.
Evidence is the sum over the windows counted so far (request, error and bucket counts per
version) plus the running minimum of each always-valid p-value. A window is identified by
its start and end; one already counted, or overlapping one that was, is ignored, so feeding
the same window twice never changes the evidence.

Questions asked (two comparisons and two absolute guards)
--------------------------------------------------------
With q = 0.95, tolerance ratio r (`baseline_p95_ratio`), margin m (`baseline_error_margin`):

1. latency: canary P95 ≤ r × stable P95? Equivalently: is the share of canary requests above
   the *tolerance line* L = r × (stable P95) at most 1 − q = 5 %? The statistic is
   d = S_c(L) − (1 − q), S_c the canary's share above L (read from its buckets, linear inside
   a bucket as the Monitoring adapter reads percentiles). Under the boundary hypothesis the
   canary is the stable distribution scaled by r, and by the delta method
   Var d ≈ q(1−q)/n_c + q(1−q)/n_s: the first term is the binomial variance of the canary's
   share, the second the stable P95's own sampling error (Var Q̂_s(q) = q(1−q) / (n_s f_s²),
   the asymptotic variance of a sample quantile; multiplied by the canary density r·f_c(L)
   = f_s(Q_s) at the boundary, the densities cancel). This is the two-sample form of the
   order-statistic (binomial) test of a quantile. Inverting it gives the readable interval of
   the P95 ratio: [Q_c(q − h_reg), Q_c(q + h_pass)] / Q̂_s(q), h the half-widths below, so
   "regression" ⇔ the lower end is above r and "no regression" ⇔ the upper end is below r.
2. errors: canary rate − stable rate ≤ m? d = p̂_c − p̂_s − m with the variance at the margin,
   V = (p̄_s + m)(1 − p̄_s − m)/n_c + p̄_s(1 − p̄_s)/n_s, p̄_s = (x_s + ½)/(n_s + 1) (a score-
   type variance under the null, so a window with no canary error does not make V zero).
3. guard: canary P95 ≤ `max_p95_ms` (2000 ms)? d = S_c(2000 ms) − (1 − q), V = q(1−q)/n_c.
4. guard: canary error rate ≤ `max_error_rate` (1 %)? d = p̂_c − g, V = g(1 − g)/n_c.

Sequential design: mSPRT with a normal mixture (always-valid p-values)
---------------------------------------------------------------------
Chosen over group-sequential alpha spending (O'Brien-Fleming, Lan-DeMets) because a watch
has no planned number of looks or maximum sample size: traffic decides how much data a
window brings, people run `/aiops canary` whenever they like, and a watch may last hours or
days. Each statistic is asymptotically normal, d ~ N(θ − θ₀, V). The mixture likelihood
ratio of Robbins (1970), used for A/B tests by Johari, Koomen, Pekelis & Walsh, "Peeking at
A/B Tests" (KDD 2017, §4; "Always valid inference", Operations Research 70(3), 2022), is
with a N(0, τ²) mixing distribution

    Λ = sqrt(V / (V + τ²)) · exp( τ² d² / (2 V (V + τ²)) ).

Each question here is one-sided, so the judge mixes over one side only (a half-normal,
θ > θ₀; the same integral cut at 0):

    Λ⁺ = 2 sqrt(V / (V + τ²)) · exp( τ² d² / (2 V (V + τ²)) ) · Φ( d τ / sqrt(V (V + τ²)) ).

Λ⁺ is a (super)martingale for every θ ≤ θ₀, so by Ville's inequality P(sup_n Λ⁺_n ≥ 1/α)
≤ α: the always-valid p-value p_n = min_{k ≤ n} 1/Λ⁺_k (kept in the evidence) may be looked
at after every window, for as long as the watch runs, without inflating the error rate.
The "within" side is the same with −d. The bound shown with each figure is the d at which
1/Λ⁺ = α (between the two-sided bounds at 2α and α, d ± sqrt(V (V+τ²)/τ² · (2 ln(1/α) +
ln((V+τ²)/V))), found by bisection).

τ is the effect the test is tuned for (its bound is tightest when V is near τ²):
`mix_latency` = 0.10 in share-above-the-line units (a canary with 15 % of its requests above
the tolerance line instead of 5 %; P95 × 2 with σ = 0.5 puts 14 % there) and `mix_errors` =
0.02 in rate units (two points above the margin). Both were chosen on simulated traffic
(`bench/bench_canary.py`, 30 runs a setting): the time to detect P95 × 2 barely moved for
`mix_latency` from 0.05 to 0.3; errors + 3 points at 500 requests an hour were caught
fastest for `mix_errors` from 0.02 to 0.05 (1.5 × slower at 0.01).

Verdicts
--------
- `regression` when any of the four tests reaches p ≤ its share of `alpha` towards "worse"
  (`alpha` = 1 % is the false-rollback budget of the whole watch; Bonferroni: 10 % of it to
  each absolute guard, 40 % to each comparison) — the figure says which bound was ruled out.
- `no_regression` when both comparisons reach p ≤ `alpha_pass` towards "within" (an
  intersection-union test, Berger 1982: each at `alpha_pass` keeps the chance of passing a
  canary that is beyond either tolerance ≤ `alpha_pass`) and nothing says regression.
- `undecided` otherwise, and always while a test lacks data: a stable version with no
  requests, missing latency figures, fewer than `min_canary` canary or `min_stable` stable
  observations, or a tolerance line beyond the histogram's last bound. At low traffic a
  canary may stay undecided for hours: proving that errors stay within 0.5 points takes
  about a thousand canary requests. What the bot does then is the caller's policy (ask a
  person; the promote gate stays shut); the judge never turns "no evidence yet" into a pass.

The normal approximation is asymptotic (Waudby-Smith et al., "Time-uniform central limit
theory", 2021, give the always-valid version of the CLT); `tests/unit/test_canary_stats.py` and
`bench/bench_canary.py` measure the false-alarm rate on simulated traffic rather than take it
on trust. The interval variance for the latency ratio is exact at the boundary when the
canary is a scaled copy of stable; a canary whose shape differs is judged approximately.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

LATENCY_RATIO = "latency_ratio"
ERROR_MARGIN = "error_margin"
LATENCY_GUARD = "latency_guard"
ERROR_GUARD = "error_guard"
REGRESSION_TESTS = (LATENCY_RATIO, ERROR_MARGIN, LATENCY_GUARD, ERROR_GUARD)
WITHIN_TESTS = (LATENCY_RATIO, ERROR_MARGIN)


class Verdict(StrEnum):
    REGRESSION = "regression"
    NO_REGRESSION = "no_regression"
    UNDECIDED = "undecided"

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class JudgeSettings:
    """Tolerances and error budgets. Rates are fractions (0.005 = 0.5 points), latencies ms."""

    baseline_p95_ratio: float = 1.5  # tolerance: canary P95 ≤ ratio × stable P95
    baseline_error_margin: float = 0.005  # tolerance: canary errors ≤ stable + margin
    max_p95_ms: float = 2000.0  # absolute guard
    max_error_rate: float = 0.01  # absolute guard
    alpha: float = 0.01  # false rollbacks over the whole watch, split over the 4 tests
    guard_share: float = 0.1  # of alpha, for each absolute guard; the rest halved between
    alpha_pass: float = 0.05  # passing a canary beyond a tolerance
    quantile: float = 0.95
    min_canary: int = 30  # canary observations a test needs before it says anything
    min_stable: int = 100  # stable observations a comparison needs
    mix_latency: float = 0.1  # mSPRT mixing sd, in share-above-the-line units
    mix_errors: float = 0.02  # mSPRT mixing sd, in error-rate units

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.alpha_pass < 1:
            raise ValueError("alpha and alpha_pass must lie in (0, 1)")
        if not 0.5 < self.quantile < 1:
            raise ValueError("quantile must lie in (0.5, 1)")
        if self.baseline_p95_ratio < 1 or self.baseline_error_margin < 0:
            raise ValueError("baseline_p95_ratio ≥ 1 and baseline_error_margin ≥ 0")
        if self.mix_latency <= 0 or self.mix_errors <= 0:
            raise ValueError("the mixing sds must be positive")
        if self.min_canary < 1 or self.min_stable < 1:
            raise ValueError("min_canary and min_stable must be at least 1")
        if not 0 < self.guard_share < 0.5:
            raise ValueError("guard_share must lie in (0, 0.5)")

    def alpha_for(self, test: str) -> float:
        """The false-rollback budget of one test (Bonferroni: the four add up to `alpha`)."""
        if test in (LATENCY_GUARD, ERROR_GUARD):
            return self.alpha * self.guard_share
        return self.alpha * (1 - 2 * self.guard_share) / 2


# --- what Monitoring gives ---------------------------------------------------------------


@dataclass(frozen=True)
class WindowSample:
    """One deployed model over one window [start, end), as Cloud Monitoring reports it.

    `requests` and `errors` are counts (`prediction_count`, `error_count`); the latency
    distribution (`prediction_latencies`, DELTA, ms) is `latency_bounds_ms` (N strictly
    increasing finite bounds) and `latency_counts` (N + 1 counts: below the first bound,
    one per interval [b_{i-1}, b_i), above the last). Empty bounds and counts: no latency
    figures for the window. Times should be timezone-aware (UTC).
    """

    start: datetime
    end: datetime
    requests: int
    errors: int
    latency_bounds_ms: tuple[float, ...] = ()
    latency_counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("a window ends after it starts")
        if self.requests < 0 or not 0 <= self.errors <= max(self.requests, 0):
            raise ValueError("0 ≤ errors ≤ requests")
        if self.latency_counts and len(self.latency_counts) != len(self.latency_bounds_ms) + 1:
            raise ValueError("a distribution has one more bucket count than bounds")
        if any(c < 0 for c in self.latency_counts):
            raise ValueError("bucket counts are not negative")
        b = self.latency_bounds_ms
        if any(b[i] >= b[i + 1] for i in range(len(b) - 1)):
            raise ValueError("bucket bounds must rise strictly")

    @property
    def has_latency(self) -> bool:
        return bool(self.latency_counts) and sum(self.latency_counts) > 0


@dataclass(frozen=True)
class CanaryWindow:
    """The canary's and the stable version's samples of the same window."""

    canary: WindowSample
    stable: WindowSample

    def __post_init__(self) -> None:
        if (self.canary.start, self.canary.end) != (self.stable.start, self.stable.end):
            raise ValueError("canary and stable samples must cover the same window")

    @property
    def key(self) -> tuple[datetime, datetime]:
        return (self.canary.start, self.canary.end)


# --- the state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmTotals:
    """One version's sums over the counted windows: requests, errors, latency buckets."""

    requests: int = 0
    errors: int = 0
    bounds_ms: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()

    @property
    def latency_n(self) -> int:
        return sum(self.counts)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def add(self, s: WindowSample) -> tuple[ArmTotals, bool]:
        """These totals with the window added; False when its latency layout differs from
        the one summed so far (its requests and errors count, its latency does not)."""
        bounds, counts, ok = self.bounds_ms, self.counts, True
        if s.has_latency:
            if not counts:
                bounds, counts = s.latency_bounds_ms, s.latency_counts
            elif s.latency_bounds_ms == bounds:
                counts = tuple(a + b for a, b in zip(counts, s.latency_counts, strict=True))
            else:
                ok = False
        return ArmTotals(self.requests + s.requests, self.errors + s.errors, bounds, counts), ok

    def quantile(self, q: float, *, open_top: bool = False) -> float | None:
        return quantile(self.bounds_ms, self.counts, q, open_top=open_top)

    def share_above(self, line_ms: float) -> float | None:
        return share_above(self.bounds_ms, self.counts, line_ms)


@dataclass(frozen=True)
class Evidence:
    """What the judge keeps between looks; `to_json` / `from_json` round-trip it."""

    windows: tuple[tuple[datetime, datetime], ...] = ()  # counted, sorted
    canary: ArmTotals = field(default_factory=ArmTotals)
    stable: ArmTotals = field(default_factory=ArmTotals)
    p_worse: Mapping[str, float] = field(default_factory=dict)  # running minimum, per test
    p_within: Mapping[str, float] = field(default_factory=dict)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True when [start, end) meets a counted window (the same one included)."""
        return any(s < end and start < e for s, e in self.windows)

    def to_json(self) -> dict[str, Any]:
        def arm(a: ArmTotals) -> dict[str, Any]:
            return {
                "requests": a.requests,
                "errors": a.errors,
                "bounds_ms": list(a.bounds_ms),
                "counts": list(a.counts),
            }

        return {
            "windows": [[s.isoformat(), e.isoformat()] for s, e in self.windows],
            "canary": arm(self.canary),
            "stable": arm(self.stable),
            "p_worse": dict(self.p_worse),
            "p_within": dict(self.p_within),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        def arm(d: Mapping[str, Any]) -> ArmTotals:
            return ArmTotals(
                int(d["requests"]),
                int(d["errors"]),
                tuple(float(b) for b in d["bounds_ms"]),
                tuple(int(c) for c in d["counts"]),
            )

        return cls(
            windows=tuple(
                (datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in data["windows"]
            ),
            canary=arm(data["canary"]),
            stable=arm(data["stable"]),
            p_worse={k: float(v) for k, v in data["p_worse"].items()},
            p_within={k: float(v) for k, v in data["p_within"].items()},
        )


# --- the result ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    """One test at this look. `estimate`, `lower`, `upper` are in the metric's own units:
    the P95 ratio (1.62 = +62 %), the error-rate difference, a P95 in ms, an error rate.
    `lower` is the bound at the rollback level (α/4), `upper` at the pass level; None when
    the test lacks data (`missing` says why) or the bound is beyond the histogram."""

    name: str
    tolerance: float
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    p_worse: float = 1.0  # always-valid, running minimum
    p_within: float = 1.0
    worse: bool = False  # the tolerance is ruled out from below: evidence of regression
    within: bool = False  # the tolerance is ruled out from above: evidence within it
    missing: str | None = None


@dataclass(frozen=True)
class Figures:
    canary_requests: int
    stable_requests: int
    canary_p95_ms: float | None
    stable_p95_ms: float | None
    canary_error_rate: float | None
    stable_error_rate: float | None
    windows: int


@dataclass(frozen=True)
class Judgement:
    evidence: Evidence
    verdict: Verdict
    tests: Mapping[str, TestResult]
    figures: Figures
    counted: int  # new windows counted at this look
    ignored: int  # new windows already counted (or overlapping one that was)
    notes: tuple[str, ...] = ()

    @property
    def reasons(self) -> list[str]:
        """Why the verdict is what it is, one phrase per deciding test."""
        if self.verdict is Verdict.REGRESSION:
            return [_phrase(t) for t in self.tests.values() if t.worse]
        if self.verdict is Verdict.NO_REGRESSION:
            return [_phrase(self.tests[n]) for n in WITHIN_TESTS]
        missing = [f"{_LABEL[t.name]}: {t.missing}" for t in self.tests.values() if t.missing]
        return missing or [_phrase(self.tests[n]) for n in WITHIN_TESTS if not self.tests[n].within]

    def text(self) -> str:
        """One line for a Slack thread: the verdict, the two comparisons (and a guard that
        fired), the sample sizes."""
        f = self.figures
        parts = [
            f"{self.verdict.words}",
            _phrase(self.tests[LATENCY_RATIO]),
            _phrase(self.tests[ERROR_MARGIN]),
        ]
        parts += [_phrase(t) for n, t in self.tests.items() if n not in WITHIN_TESTS and t.worse]
        parts.append(
            f"{f.canary_requests:,} canary / {f.stable_requests:,} stable requests"
            f" in {f.windows} windows"
        )
        return " · ".join(parts)


_LABEL = {
    LATENCY_RATIO: "P95 vs stable",
    ERROR_MARGIN: "errors vs stable",
    LATENCY_GUARD: "P95",
    ERROR_GUARD: "errors",
}


def _pct(ratio: float | None) -> str:
    if ratio is None or math.isinf(ratio):
        return "∞"
    return f"{round((ratio - 1) * 100) + 0:+d} %"


def _pts(diff: float | None) -> str:
    return "∞" if diff is None or math.isinf(diff) else f"{round(diff * 100, 2) + 0.0:+.2f} pts"


def _ms(value: float | None) -> str:
    return "∞" if value is None or math.isinf(value) else f"{value:.0f} ms"


def _rate(value: float | None) -> str:
    return "∞" if value is None or math.isinf(value) else f"{value:.2%}"


# test → (what is measured, how its figures read, compared with stable?)
_FORMAT: dict[str, tuple[str, Callable[[float | None], str], bool]] = {
    LATENCY_RATIO: ("canary P95", _pct, True),
    ERROR_MARGIN: ("canary errors", _pts, True),
    LATENCY_GUARD: ("canary P95", _ms, False),
    ERROR_GUARD: ("canary errors", _rate, False),
}


def _phrase(t: TestResult) -> str:
    """'canary P95 +62 % [+40 %, +85 %] vs stable: above the +50 % limit (≤ +50 % ruled
    out)'. The interval is [bound at the rollback level, bound at the pass level]."""
    what, fmt, relative = _FORMAT[t.name]
    if t.estimate is None:
        return f"{what}: {t.missing or 'no data'}"
    lo = "0" if t.lower is None else fmt(t.lower)
    text = f"{what} {fmt(t.estimate)} [{lo}, {fmt(t.upper)}]" + (" vs stable" if relative else "")
    limit = fmt(t.tolerance)
    if t.worse:
        return f"{text}: above the {limit} limit (≤ {limit} ruled out)"
    if t.within:
        return f"{text}: within {limit} (> {limit} ruled out)"
    return f"{text}, limit {limit}: undecided"


# --- histogram arithmetic ------------------------------------------------------------------


def quantile(
    bounds: Sequence[float], counts: Sequence[int], q: float, *, open_top: bool = False
) -> float | None:
    """The q-quantile (q in [0, 1]) of a bucketed distribution, ms; linear inside a bucket,
    as `bot.platforms.monitoring.Histogram.percentile` reads a P95 (the first bucket spans
    0 → first bound). In the bucket above the last bound the answer is the last bound, or
    +∞ with `open_top` (an upper confidence bound must not pretend to know). None if empty."""
    total = sum(counts)
    if total == 0 or not bounds:
        return None
    if q >= 1:
        return math.inf if open_top or counts[-1] else float(bounds[-1])
    rank = max(q, 0.0) * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i == len(bounds):
                return math.inf if open_top else float(bounds[-1])
            lo = 0.0 if i == 0 else float(bounds[i - 1])
            hi = float(bounds[i])
            return lo + (hi - lo) * (rank - seen) / n
        seen += n
    return float(bounds[-1])


def share_above(bounds: Sequence[float], counts: Sequence[int], line_ms: float) -> float | None:
    """The share of observations above `line_ms`, linear inside a bucket (the inverse of
    `quantile`). None when empty or when the line is at or above the last bound (the
    top bucket has no width to interpolate in)."""
    total = sum(counts)
    if total == 0 or not bounds or line_ms >= bounds[-1]:
        return None
    if line_ms <= 0:
        return 1.0
    i = bisect.bisect_right(bounds, line_ms)  # the bucket holding the line
    lo = 0.0 if i == 0 else float(bounds[i - 1])
    hi = float(bounds[i])
    above = sum(counts[i + 1 :]) + counts[i] * (hi - line_ms) / (hi - lo)
    return above / total


# --- the mixture SPRT ----------------------------------------------------------------------


def _log_phi(z: float) -> float:
    """ln Φ(z), the standard normal's log CDF, without underflow for very negative z."""
    if z > -30:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2)))
    return -0.5 * z * z - math.log(-z) - 0.5 * math.log(2 * math.pi)  # Mills' ratio


def msprt_log_lambda(d: float, v: float, tau: float) -> float:
    """ln Λ⁺ of the one-sided (half-normal) mixture for an estimate d − θ₀ = `d` with
    variance `v`: Λ⁺ = 2 sqrt(v/(v+τ²)) · exp(τ² d² / (2 v (v+τ²))) · Φ(d τ / sqrt(v (v+τ²))).
    The two-sided normal mixture of Johari et al. (2017, §4) restricted to θ > θ₀."""
    t2 = tau * tau
    return (
        math.log(2.0)
        + 0.5 * math.log(v / (v + t2))
        + t2 * d * d / (2 * v * (v + t2))
        + _log_phi(d * tau / math.sqrt(v * (v + t2)))
    )


def msprt_p(d: float, v: float, tau: float) -> float:
    """The always-valid one-sided p-value at this look, min(1, 1/Λ⁺): evidence that the true
    value is above θ₀ (pass −d for below). 1 when d ≤ 0 or the variance is unknown."""
    if v <= 0 or d <= 0:
        return 1.0
    log_lambda = msprt_log_lambda(d, v, tau)
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def msprt_halfwidth(v: float, tau: float, alpha: float) -> float:
    """The one-sided always-valid bound's distance h: msprt_p(d, v, τ) ≤ α ⇔ d ≥ h. Found by
    bisection between the two-sided normal-mixture half-widths at 2α and α,
    sqrt(v (v+τ²)/τ² · (2 ln(1/a) + ln((v+τ²)/v))), which bracket it (Λ ≤ Λ⁺ ≤ 2Λ for d ≥ 0)."""
    if v <= 0:
        return math.inf
    t2 = tau * tau

    def two_sided(a: float) -> float:
        return math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / a) + math.log((v + t2) / v)))

    target = math.log(1 / alpha)
    lo, hi = two_sided(min(2 * alpha, 0.999)), two_sided(alpha)
    while hi - lo > 1e-4 * hi:
        mid = 0.5 * (lo + hi)
        if msprt_log_lambda(mid, v, tau) >= target:
            hi = mid
        else:
            lo = mid
    return hi


# --- the judge -----------------------------------------------------------------------------


def judge(
    settings: JudgeSettings, evidence: Evidence, windows: Iterable[CanaryWindow]
) -> Judgement:
    """(settings, evidence so far, new windows) → the new evidence and the verdict.

    Windows already counted (same start and end) or overlapping a counted one are ignored,
    so a retried or repeated look changes nothing. The verdict is a pure function of the
    returned evidence and the settings.
    """
    ev = evidence
    counted = ignored = 0
    notes: list[str] = []
    for w in sorted(windows, key=lambda w: w.key):
        if ev.overlaps(*w.key):
            ignored += 1
            continue
        canary, ok_c = ev.canary.add(w.canary)
        stable, ok_s = ev.stable.add(w.stable)
        if not (ok_c and ok_s):
            notes.append(
                f"window {w.key[0].isoformat()}: latency buckets differ from earlier"
                " windows, its latency is not counted"
            )
        keys = tuple(sorted((*ev.windows, w.key)))
        ev = replace(ev, windows=keys, canary=canary, stable=stable)
        counted += 1

    tests = {
        LATENCY_RATIO: _latency_ratio(settings, ev),
        ERROR_MARGIN: _error_margin(settings, ev),
        LATENCY_GUARD: _latency_guard(settings, ev),
        ERROR_GUARD: _error_guard(settings, ev),
    }
    # always-valid p-values: the running minimum over looks (recomputed only on new data,
    # so an empty look cannot lower them)
    p_worse = dict(ev.p_worse)
    p_within = dict(ev.p_within)
    if counted:
        for name, t in tests.items():
            p_worse[name] = min(p_worse.get(name, 1.0), t.p_worse)
            if name in WITHIN_TESTS:
                p_within[name] = min(p_within.get(name, 1.0), t.p_within)
    ev = replace(ev, p_worse=p_worse, p_within=p_within)
    final: dict[str, TestResult] = {}
    for name, t in tests.items():
        pw = p_worse.get(name, 1.0)
        pi = p_within.get(name, 1.0)
        final[name] = replace(
            t,
            p_worse=pw,
            p_within=pi,
            worse=pw <= settings.alpha_for(name),
            within=name in WITHIN_TESTS and pi <= settings.alpha_pass,
        )
    if any(t.worse for t in final.values()):
        verdict = Verdict.REGRESSION
    elif all(final[n].within for n in WITHIN_TESTS):
        verdict = Verdict.NO_REGRESSION
    else:
        verdict = Verdict.UNDECIDED
    figures = Figures(
        canary_requests=ev.canary.requests,
        stable_requests=ev.stable.requests,
        canary_p95_ms=ev.canary.quantile(settings.quantile),
        stable_p95_ms=ev.stable.quantile(settings.quantile),
        canary_error_rate=ev.canary.error_rate,
        stable_error_rate=ev.stable.error_rate,
        windows=len(ev.windows),
    )
    return Judgement(ev, verdict, final, figures, counted, ignored, tuple(notes))


def _short(settings: JudgeSettings, ev: Evidence, *, latency: bool, compare: bool) -> str | None:
    """Why a test cannot speak yet, or None."""
    if compare and ev.stable.requests == 0:
        return "no stable requests"
    n_c = ev.canary.latency_n if latency else ev.canary.requests
    n_s = ev.stable.latency_n if latency else ev.stable.requests
    what = "latency figures" if latency else "requests"
    if n_c < settings.min_canary:
        return f"{n_c:,} canary {what} < {settings.min_canary:,}"
    if compare and n_s < settings.min_stable:
        return f"{n_s:,} stable {what} < {settings.min_stable:,}"
    return None


def _latency_ratio(s: JudgeSettings, ev: Evidence) -> TestResult:
    tol = s.baseline_p95_ratio
    short = _short(s, ev, latency=True, compare=True)
    if short:
        return TestResult(LATENCY_RATIO, tol, missing=short)
    q = s.quantile
    stable_q = ev.stable.quantile(q)
    canary_q = ev.canary.quantile(q)
    if not stable_q or canary_q is None:
        return TestResult(LATENCY_RATIO, tol, missing="no stable P95 to compare with")
    share = ev.canary.share_above(tol * stable_q)
    if share is None:
        return TestResult(LATENCY_RATIO, tol, missing="the tolerance line is off the buckets")
    v = q * (1 - q) * (1 / ev.canary.latency_n + 1 / ev.stable.latency_n)
    d = share - (1 - q)
    h_worse = msprt_halfwidth(v, s.mix_latency, s.alpha_for(LATENCY_RATIO))
    h_within = msprt_halfwidth(v, s.mix_latency, s.alpha_pass)
    low_q = ev.canary.quantile(q - h_worse) if q - h_worse > 0 else 0.0
    high_q = ev.canary.quantile(q + h_within, open_top=True)
    return TestResult(
        LATENCY_RATIO,
        tol,
        estimate=canary_q / stable_q,
        lower=None if low_q is None else low_q / stable_q,
        upper=None if high_q is None else high_q / stable_q,
        p_worse=msprt_p(d, v, s.mix_latency),
        p_within=msprt_p(-d, v, s.mix_latency),
    )


def _error_margin(s: JudgeSettings, ev: Evidence) -> TestResult:
    m = s.baseline_error_margin
    short = _short(s, ev, latency=False, compare=True)
    if short:
        return TestResult(ERROR_MARGIN, m, missing=short)
    n_c, n_s = ev.canary.requests, ev.stable.requests
    p_c, p_s = ev.canary.errors / n_c, ev.stable.errors / n_s
    p_bar = (ev.stable.errors + 0.5) / (n_s + 1)
    p_null = min(p_bar + m, 1 - 1e-9)
    v = p_null * (1 - p_null) / n_c + p_bar * (1 - p_bar) / n_s
    diff = p_c - p_s
    d = diff - m
    h_worse = msprt_halfwidth(v, s.mix_errors, s.alpha_for(ERROR_MARGIN))
    h_within = msprt_halfwidth(v, s.mix_errors, s.alpha_pass)
    return TestResult(
        ERROR_MARGIN,
        m,
        estimate=diff,
        lower=diff - h_worse,
        upper=diff + h_within,
        p_worse=msprt_p(d, v, s.mix_errors),
        p_within=msprt_p(-d, v, s.mix_errors),
    )


def _latency_guard(s: JudgeSettings, ev: Evidence) -> TestResult:
    limit = s.max_p95_ms
    short = _short(s, ev, latency=True, compare=False)
    if short:
        return TestResult(LATENCY_GUARD, limit, missing=short)
    q = s.quantile
    share = ev.canary.share_above(limit)
    estimate = ev.canary.quantile(q)
    if share is None or estimate is None:
        return TestResult(LATENCY_GUARD, limit, missing="the limit is off the buckets")
    v = q * (1 - q) / ev.canary.latency_n
    d = share - (1 - q)
    h = msprt_halfwidth(v, s.mix_latency, s.alpha_for(LATENCY_GUARD))
    return TestResult(
        LATENCY_GUARD,
        limit,
        estimate=estimate,
        lower=ev.canary.quantile(q - h) if q - h > 0 else 0.0,
        upper=ev.canary.quantile(q + h, open_top=True),
        p_worse=msprt_p(d, v, s.mix_latency),
    )


def _error_guard(s: JudgeSettings, ev: Evidence) -> TestResult:
    g = s.max_error_rate
    short = _short(s, ev, latency=False, compare=False)
    if short:
        return TestResult(ERROR_GUARD, g, missing=short)
    n_c = ev.canary.requests
    p_c = ev.canary.errors / n_c
    v = g * (1 - g) / n_c
    d = p_c - g
    h = msprt_halfwidth(v, s.mix_errors, s.alpha_for(ERROR_GUARD))
    return TestResult(
        ERROR_GUARD,
        g,
        estimate=p_c,
        lower=max(0.0, p_c - h),
        upper=min(1.0, p_c + h),
        p_worse=msprt_p(d, v, s.mix_errors),
    )
