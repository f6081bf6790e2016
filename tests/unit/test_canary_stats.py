"""The sequential canary judge (`commands/canary/stats.py`): verdicts on hand-built windows,
its error rates under many looks, detection at low traffic, interval coverage."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.platforms.sandbox_traffic import Traffic, draw_window
from commands.canary.stats import (
    ERROR_MARGIN,
    LATENCY_GUARD,
    LATENCY_RATIO,
    CanaryWindow,
    Evidence,
    Judgement,
    JudgeSettings,
    Verdict,
    WindowSample,
    judge,
    msprt_halfwidth,
    msprt_p,
    quantile,
    share_above,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
BOUNDS = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
# 1,000 requests: P95 exactly 800 ms (rank 950 ends the [400, 800) bucket)
STABLE = (0, 100, 700, 150, 50, 0, 0)
# the same distribution one bucket up: every latency × 2, P95 1,600 ms
DOUBLED = (0, 0, 100, 700, 150, 50, 0)


def sample(k: int, counts: tuple[int, ...], errors: int = 0, scale: int = 1) -> WindowSample:
    scaled = tuple(c * scale for c in counts)
    return WindowSample(T0 + k * STEP, T0 + (k + 1) * STEP, sum(scaled), errors, BOUNDS, scaled)


def window(
    k: int,
    canary: tuple[int, ...] = STABLE,
    canary_errors: int = 0,
    stable_errors: int = 1,
    stable: tuple[int, ...] = STABLE,
) -> CanaryWindow:
    return CanaryWindow(sample(k, canary, canary_errors), sample(k, stable, stable_errors))


def run(windows: list[CanaryWindow], settings: JudgeSettings | None = None) -> list[Judgement]:
    settings = settings or JudgeSettings()
    ev, out = Evidence(), []
    for w in windows:
        j = judge(settings, ev, [w])
        ev = j.evidence
        out.append(j)
    return out


# --- hand-built windows ------------------------------------------------------------------


def test_histogram_reading_matches_the_monitoring_adapter() -> None:
    assert quantile(BOUNDS, STABLE, 0.95) == pytest.approx(800.0)
    assert quantile(BOUNDS, DOUBLED, 0.95) == pytest.approx(1600.0)
    # 50 of 1,000 above 800; a line in the middle of [800, 1600) takes half that bucket
    assert share_above(BOUNDS, STABLE, 800.0) == pytest.approx(0.05)
    assert share_above(BOUNDS, STABLE, 1200.0) == pytest.approx(0.025)
    assert share_above(BOUNDS, STABLE, 5000.0) is None  # beyond the last bound: unknown
    assert quantile(BOUNDS, (0, 0, 0, 0, 0, 0, 10), 0.95, open_top=True) == math.inf


def test_a_clear_regression_is_called_with_its_figure() -> None:
    results = run([window(k, canary=DOUBLED) for k in range(12)])
    verdicts = [j.verdict for j in results]
    assert Verdict.REGRESSION in verdicts
    first = verdicts.index(Verdict.REGRESSION)
    assert all(v is Verdict.UNDECIDED for v in verdicts[:first])
    j = results[first]
    latency = j.tests[LATENCY_RATIO]
    assert latency.worse and not latency.within
    assert latency.estimate == pytest.approx(2.0)
    assert latency.lower is not None and latency.lower > 1.5
    assert not j.tests[ERROR_MARGIN].worse
    text = j.text()
    assert text.startswith("regression")
    assert "canary P95 +100 %" in text and "above the +50 % limit" in text
    assert "≤ +50 % ruled out" in text
    # once called it stays called while the evidence holds
    assert all(r.verdict is Verdict.REGRESSION for r in results[first:])


def test_identical_versions_end_within_tolerance() -> None:
    results = run([window(k, canary=STABLE, canary_errors=1) for k in range(40)])
    verdicts = [j.verdict for j in results]
    assert Verdict.REGRESSION not in verdicts
    assert verdicts[-1] is Verdict.NO_REGRESSION
    first = verdicts.index(Verdict.NO_REGRESSION)
    assert first >= 2  # a few windows are not enough to rule the tolerances out
    j = results[first]
    assert j.tests[LATENCY_RATIO].within and j.tests[ERROR_MARGIN].within
    assert j.tests[LATENCY_RATIO].upper is not None and j.tests[LATENCY_RATIO].upper < 1.5
    assert "> +50 % ruled out" in j.text() and "> +0.50 pts ruled out" in j.text()


def test_error_regression_and_the_absolute_guard() -> None:
    # 3 % canary errors against 0.1 %: beyond the margin and beyond the 1 % guard
    results = run([window(k, canary_errors=30) for k in range(10)])
    j = next(r for r in results if r.verdict is Verdict.REGRESSION)
    assert j.tests[ERROR_MARGIN].worse
    assert j.tests[ERROR_MARGIN].lower is not None and j.tests[ERROR_MARGIN].lower > 0.005
    # P95 3,000 ms on both: the comparison is fine, the 2,000 ms guard is not
    slow = (0, 0, 0, 0, 0, 1000, 0)
    results = run([window(k, canary=slow, stable=slow) for k in range(10)])
    j = next(r for r in results if r.verdict is Verdict.REGRESSION)
    assert j.tests[LATENCY_GUARD].worse and not j.tests[LATENCY_RATIO].worse
    assert "above the 2000 ms limit" in j.text()


def test_no_stable_requests_is_never_a_pass() -> None:
    silent = (0, 0, 0, 0, 0, 0, 0)
    windows = [
        CanaryWindow(sample(k, STABLE), WindowSample(T0 + k * STEP, T0 + (k + 1) * STEP, 0, 0))
        for k in range(50)
    ] + [CanaryWindow(sample(k, STABLE), sample(k, silent, errors=0)) for k in range(50, 60)]
    results = run(windows)
    assert {j.verdict for j in results} == {Verdict.UNDECIDED}
    last = results[-1]
    assert last.tests[LATENCY_RATIO].missing == "no stable requests"
    assert "no stable requests" in last.text()
    assert last.figures.stable_requests == 0 and last.figures.canary_requests == 60_000


def test_missing_latency_or_too_few_samples_is_undecided() -> None:
    no_latency = [
        CanaryWindow(
            WindowSample(T0 + k * STEP, T0 + (k + 1) * STEP, 1000, 0),
            sample(k, STABLE, errors=1),
        )
        for k in range(40)
    ]
    results = run(no_latency)
    assert {j.verdict for j in results} == {Verdict.UNDECIDED}
    assert results[-1].tests[LATENCY_RATIO].missing == "0 canary latency figures < 30"
    # 20 canary requests an hour for an hour: fewer than the 30 a test needs
    few = (0, 0, 2, 0, 0, 0, 0)
    results = run([window(k, canary=few, canary_errors=2) for k in range(12)])
    assert {j.verdict for j in results} == {Verdict.UNDECIDED}
    assert results[-1].tests[ERROR_MARGIN].missing == "24 canary requests < 30"


def test_a_window_counts_once() -> None:
    settings = JudgeSettings()
    w = window(0, canary=DOUBLED)
    first = judge(settings, Evidence(), [w])
    again = judge(settings, first.evidence, [w])
    assert again.evidence == first.evidence
    assert (again.counted, again.ignored) == (0, 1)
    # the same window twice in one batch, and a window overlapping a counted one
    shifted = CanaryWindow(
        WindowSample(T0 + STEP / 2, T0 + STEP * 3 / 2, 10, 10),
        WindowSample(T0 + STEP / 2, T0 + STEP * 3 / 2, 10, 0),
    )
    batch = judge(settings, first.evidence, [w, w, shifted, window(1)])
    assert (batch.counted, batch.ignored) == (1, 3)
    assert batch.evidence.canary.errors == 0  # the overlapping window's errors are not in
    # a long window, then a short one inside it and one after it
    long = CanaryWindow(
        WindowSample(T0, T0 + 12 * STEP, 10, 0), WindowSample(T0, T0 + 12 * STEP, 10, 0)
    )
    state = judge(settings, Evidence(), [long, window(1)]).evidence
    later = judge(settings, state, [window(3), window(12)])
    assert (later.counted, later.ignored) == (1, 1)
    # order of arrival does not matter; neither does batching
    ws = [window(k, canary=DOUBLED) for k in range(6)]
    one_by_one = run(ws)[-1].evidence
    reversed_batch = judge(settings, Evidence(), list(reversed(ws))).evidence
    assert reversed_batch.canary == one_by_one.canary
    assert reversed_batch.windows == one_by_one.windows


def test_evidence_round_trips_through_json() -> None:
    import json

    j = run([window(k, canary=DOUBLED, canary_errors=3) for k in range(5)])[-1]
    data = json.loads(json.dumps(j.evidence.to_json()))
    back = Evidence.from_json(data)
    assert back == j.evidence
    assert judge(JudgeSettings(), back, []).verdict is j.verdict


def test_a_different_bucket_layout_is_not_summed() -> None:
    other = WindowSample(T0 + STEP, T0 + 2 * STEP, 1000, 0, (10.0, 20.0), (0, 0, 1000))
    j1 = judge(JudgeSettings(), Evidence(), [window(0)])
    j2 = judge(JudgeSettings(), j1.evidence, [CanaryWindow(other, sample(1, STABLE))])
    assert j2.evidence.canary.requests == 2000
    assert j2.evidence.canary.latency_n == 1000
    assert j2.notes and "latency is not counted" in j2.notes[0]


def test_window_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="same window"):
        CanaryWindow(sample(0, STABLE), sample(1, STABLE))
    with pytest.raises(ValueError, match="errors"):
        WindowSample(T0, T0 + STEP, 1, 2)
    with pytest.raises(ValueError, match="one more bucket"):
        WindowSample(T0, T0 + STEP, 1, 0, (1.0, 2.0), (1, 0))
    with pytest.raises(ValueError, match="alpha"):
        JudgeSettings(alpha=0.0)


# --- the sequential design ------------------------------------------------------------------


def test_the_mixture_bound_and_p_value_agree() -> None:
    for v, tau, alpha in [(1e-4, 0.1, 0.004), (1e-2, 0.1, 0.05), (4e-6, 0.02, 0.001)]:
        h = msprt_halfwidth(v, tau, alpha)
        assert msprt_p(h * 1.001, v, tau) <= alpha < msprt_p(h * 0.999, v, tau)
    assert msprt_p(-0.5, 1e-4, 0.1) == 1.0  # evidence in the other direction is none


def test_many_looks_keep_the_false_alarm_rate_below_alpha() -> None:
    """Gaussian increments, 300 looks: the mSPRT crosses at most α of the time, while the
    same data read with a fixed-sample one-sided z-test at every look crosses far more."""
    rng = np.random.default_rng(20260302)
    paths, looks, alpha, tau = 1000, 300, 0.05, 0.3
    sums = np.cumsum(rng.standard_normal((paths, looks)), axis=1)
    n = np.arange(1, looks + 1)
    means = sums / n  # estimate of θ − θ₀ = 0 after n unit-variance observations
    msprt_alarms = naive_alarms = 0
    for path in range(paths):
        crossed = naive = False
        for k in range(0, looks, 3):  # every third look: 100 looks a path
            d, v = float(means[path, k]), 1.0 / n[k]
            crossed = crossed or msprt_p(d, v, tau) <= alpha
            naive = naive or d / math.sqrt(v) > 1.6449
        msprt_alarms += crossed
        naive_alarms += naive
    assert msprt_alarms / paths <= alpha
    assert naive_alarms / paths > 3 * alpha  # peeking breaks a fixed-sample test


def sim(
    settings: JudgeSettings,
    rate: float,
    factor: float,
    points: float,
    runs: int,
    windows: int,
    seed: int,
) -> list[tuple[Verdict, int, Judgement]]:
    """Each run: judge window by window until a verdict; (verdict, windows used, last)."""
    out = []
    stable = Traffic()
    canary = stable.regressed(factor, points)
    for r in range(runs):
        rng = np.random.default_rng(seed + r)
        ev = Evidence()
        for k in range(windows):
            j = judge(settings, ev, [draw_window(rng, stable, canary, rate, 0.1, T0 + k * STEP)])
            ev = j.evidence
            if j.verdict is not Verdict.UNDECIDED:
                break
        out.append((j.verdict, k + 1, j))
    return out


def test_a_a_and_the_tolerance_boundary_stay_below_alpha() -> None:
    """A generous α (20 %) so that an anti-conservative design would show within a few runs;
    identical versions never roll back, and a canary exactly at both tolerances (the least
    favourable null) is rolled back at most α of the time."""
    settings = JudgeSettings(alpha=0.2, alpha_pass=0.2)
    aa = sim(settings, 5000, 1.0, 0.0, 16, 48, seed=100)
    assert sum(v is Verdict.REGRESSION for v, _, _ in aa) == 0
    assert sum(v is Verdict.NO_REGRESSION for v, _, _ in aa) >= 8  # and they do pass
    for factor, points, seed in [(1.5, 0.0, 200), (1.0, 0.005, 300)]:
        edge = sim(settings, 5000, factor, points, 20, 36, seed=seed)
        assert sum(v is Verdict.REGRESSION for v, _, _ in edge) <= 0.2 * 20
        assert sum(v is Verdict.NO_REGRESSION for v, _, _ in edge) <= 0.2 * 20


def test_a_clear_regression_is_caught_at_500_requests_an_hour() -> None:
    """10 % of 500 requests an hour is ~4 canary requests a window."""
    latency = sim(JudgeSettings(), 500, 3.0, 0.0, 12, 24, seed=400)
    assert all(v is Verdict.REGRESSION for v, _, _ in latency)
    assert max(k for _, k, _ in latency) <= 18  # 90 minutes
    errors = sim(JudgeSettings(), 500, 1.0, 0.10, 12, 30, seed=500)
    assert all(v is Verdict.REGRESSION for v, _, _ in errors)
    assert all(j.tests[ERROR_MARGIN].worse for _, _, j in errors)


def test_the_interval_covers_the_true_effect() -> None:
    """After an hour at 5,000 requests an hour the P95-ratio interval holds the true ratio
    and the error interval the true difference in at least 90 % of runs."""
    settings = JudgeSettings()
    stable = Traffic()
    covered_ratio = covered_errors = 0
    runs = 30
    for r in range(runs):
        rng = np.random.default_rng(600 + r)
        factor = random.Random(r).choice([1.0, 1.3, 2.0])
        canary = stable.regressed(factor, 0.01)
        ws = [draw_window(rng, stable, canary, 5000, 0.1, T0 + k * STEP) for k in range(12)]
        j = judge(settings, Evidence(), ws)
        lat, err = j.tests[LATENCY_RATIO], j.tests[ERROR_MARGIN]
        assert lat.lower is not None and lat.upper is not None
        covered_ratio += lat.lower <= factor <= lat.upper
        assert err.lower is not None and err.upper is not None
        covered_errors += err.lower <= 0.01 <= err.upper
    assert covered_ratio >= 0.9 * runs
    assert covered_errors >= 0.9 * runs
