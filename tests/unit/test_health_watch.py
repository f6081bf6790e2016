"""The health watch's judge: hysteresis on [thresholds], one notice per opening and closing,
its state kept as JSON between windows (as a scheduler keeps it in the database)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.config import Thresholds
from commands.incidents.health_watch import (
    EndpointWatch,
    WatchSettings,
    alert_key,
    judge,
    watch_settings,
)
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.model import EndpointHealth
from tests.support.harness import endpoint_health, example_config

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
TH = Thresholds()  # P95 2,000 ms, errors 1 %, drift 0.1
OK = 700.0  # P95 well under 90 % of 2,000 ms
NEAR = 1900.0  # under the threshold, above the clear level (1,800 ms)
HIGH = 2600.0


class Run:
    """Feeds windows one after another, keeping the state only as JSON text."""

    def __init__(self, settings: WatchSettings | None = None, endpoint: str = "loan-assessor"):
        self.settings = settings or WatchSettings()
        self.endpoint = endpoint
        self.state: str = json.dumps(None)
        self.end = T0
        self.notices: list[tuple[int, AlertNotice]] = []
        self.windows = 0

    def window(self, health: EndpointHealth | None) -> list[AlertNotice]:
        self.end += self.settings.interval
        self.windows += 1
        out = judge(
            self.endpoint,
            health,
            TH,
            json.loads(self.state),
            window_end=self.end,
            settings=self.settings,
            environment="prod",
        )
        self.state = json.dumps(out.state)  # must survive JSON, as in the database
        self.notices += [(self.windows, n) for n in out.notices]
        return out.notices

    def p95(self, values: Iterable[float | None]) -> None:
        for v in values:
            self.window(endpoint_health(self.endpoint, p95_latency_ms=v))

    def opened(self) -> list[int]:
        return [i for i, n in self.notices if n.state is AlertState.OPEN]

    def closed(self) -> list[int]:
        return [i for i, n in self.notices if n.state is AlertState.CLOSED]


def test_one_noisy_window_does_not_flap() -> None:
    run = Run()
    run.p95([OK, HIGH, OK, OK, HIGH, OK, HIGH, NEAR, HIGH, OK])
    assert run.notices == []
    # once open, one clear window between breaches does not close it either
    run.p95([HIGH, HIGH])
    assert run.opened() == [12]
    run.p95([OK, HIGH, OK, OK, HIGH, OK, OK, HIGH])
    assert run.closed() == []


def test_a_sustained_breach_opens_once() -> None:
    run = Run()
    run.p95([OK, HIGH, HIGH, HIGH, HIGH, HIGH, HIGH])
    assert run.opened() == [3] and run.closed() == []
    (_, notice), *_ = run.notices
    assert notice.key == alert_key("loan-assessor", "p95_latency_ms", T0 + STEP)
    assert notice.key == "health-watch:loan-assessor:p95_latency_ms:20261201T0005Z"
    assert notice.source is AlertSource.HEALTH_WATCH
    assert notice.policy == "health watch: P95 latency"
    assert notice.endpoint == "loan-assessor" and notice.environment == "prod"
    # the breach began with the first breaching window (window 2 starts at T0 + 5 min)
    assert notice.started_at == T0 + STEP and notice.ended_at is None
    assert notice.observed == "P95 latency 2,600 ms > 2,000 ms"
    assert "for 2 window(s) (10m)" in notice.summary


def test_recovery_closes_once_after_the_clear_run() -> None:
    run = Run()
    run.p95([HIGH, HIGH])
    assert run.opened() == [2]
    run.p95([OK, OK])
    assert run.closed() == []
    run.p95([OK, OK, OK, OK])
    assert run.closed() == [5]
    closed = next(n for _, n in run.notices if n.state is AlertState.CLOSED)
    assert closed.key == run.notices[0][1].key
    assert closed.started_at == T0  # the open notice's start, carried through the state
    assert closed.ended_at == T0 + 2 * STEP  # back under the clear level from window 3
    assert closed.observed == "P95 latency 700 ms ≤ 1,800 ms"
    # and it can open again later, once, as a new alert (its own key: a closed alert stays
    # closed under its key in the store)
    run.p95([HIGH, HIGH, HIGH])
    assert run.opened() == [2, 10]
    assert len({n.key for _, n in run.notices}) == 2


def test_a_figure_near_the_threshold_neither_clears_nor_breaches() -> None:
    run = Run()
    run.p95([HIGH, NEAR, HIGH, NEAR, HIGH])  # never two breaching windows in a row
    assert run.notices == []
    run.p95([HIGH])
    assert run.opened() == [6]
    run.p95([OK, OK, NEAR, OK, OK, NEAR])  # the near windows break the clear runs
    assert run.closed() == []
    run.p95([OK, OK, OK])
    assert run.closed() == [15]


def test_missing_figures_neither_open_nor_close() -> None:
    run = Run()
    run.p95([HIGH, None, None, None])
    run.window(None)  # the platform gave nothing at all
    assert run.notices == []
    run.p95([HIGH])  # a gap does not break the run: the second breaching window opens it
    assert run.opened() == [6]
    run.p95([None] * 10)
    run.window(None)
    assert run.closed() == []
    watch = EndpointWatch.from_dict("loan-assessor", json.loads(run.state))
    assert watch.open_metrics == ["p95_latency_ms"]


def test_each_metric_is_judged_on_its_own() -> None:
    run = Run()
    bad_errors = endpoint_health("loan-assessor", error_rate=0.05)
    run.window(bad_errors)
    run.window(bad_errors)
    assert [n.key for _, n in run.notices] == [
        "health-watch:loan-assessor:error_rate:20261201T0000Z"
    ]
    assert run.notices[0][1].observed == "error rate 5.00% > 1.00%"
    drifting = endpoint_health("loan-assessor", error_rate=0.05, drift=0.4)
    run.window(drifting)
    run.window(drifting)
    assert [n.key for _, n in run.notices][-1] == "health-watch:loan-assessor:drift:20261201T0010Z"
    assert len(run.notices) == 2


def test_a_window_is_judged_once() -> None:
    state: dict[str, Any] | None = None
    high = endpoint_health("loan-assessor", p95_latency_ms=HIGH)
    end = T0 + STEP
    first = judge("loan-assessor", high, TH, state, window_end=end)
    again = judge("loan-assessor", high, TH, first.state, window_end=end)  # a retry
    assert again.state == first.state and again.notices == []
    older = judge("loan-assessor", high, TH, first.state, window_end=end - STEP)
    assert older.state == first.state and older.notices == []
    second = judge("loan-assessor", high, TH, first.state, window_end=end + STEP)
    assert [n.state for n in second.notices] == [AlertState.OPEN]


def test_another_endpoints_state_is_never_applied() -> None:
    high = endpoint_health("loan-assessor", p95_latency_ms=HIGH)
    first = judge("loan-assessor", high, TH, None, window_end=T0 + STEP)
    other = judge(
        "loan-assessor-stg",
        endpoint_health("loan-assessor-stg", p95_latency_ms=HIGH),
        TH,
        first.state,
        window_end=T0 + 2 * STEP,
    )
    assert other.notices == [] and other.state["endpoint"] == "loan-assessor-stg"


@pytest.mark.parametrize(("open_after", "close_after"), [(1, 1), (3, 5)])
def test_the_runs_are_the_configured_ones(open_after: int, close_after: int) -> None:
    run = Run(
        WatchSettings(interval=timedelta(minutes=1), open_after=open_after, close_after=close_after)
    )
    run.p95([HIGH] * open_after)
    assert run.opened() == [open_after]
    run.p95([OK] * close_after)
    assert run.closed() == [open_after + close_after]


def test_the_settings_come_from_the_alerts_table() -> None:
    assert watch_settings(example_config()) == WatchSettings(
        interval=timedelta(minutes=5), open_after=2, close_after=3, clear_ratio=0.9
    )
