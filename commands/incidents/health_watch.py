"""The health watch's judge: one endpoint's figures for one window against `[thresholds]`,
with hysteresis, turned into the alert notices to emit (DETECT, issue 17).

Pure: no clock, no store. A scheduler calls `judge` every `[alerts] watch_interval` with
the endpoint's figures for the window that just ended and the state `judge` returned last
time (a JSON-ready dict, so it can be kept in the database), and hands the notices to the
alert path, which stores them by `key` like any other alert.

The rule, per metric (P95 latency, error rate, drift; each against its `[thresholds]`
value, "above" breaching as everywhere in the bot):

- A window *breaches* when the figure is above the threshold, and is *clear* when it is at
  or below `clear_ratio` × the threshold (90 % by default). A figure between the two is
  neither: it ends a run of breaching windows and a run of clear ones alike.
- An alert *opens* after `open_after` breaching windows in a row (2 by default), once: the
  alert is open until it closes, whatever the windows say meanwhile.
- An open alert *closes* after `close_after` clear windows in a row (3 by default), once.
- A window without the figure (no traffic, no drift statistics, the metric not reported
  yet) is skipped: it neither counts nor breaks a run, so a gap in the data neither opens
  nor closes an alert.
- A window is judged once: a call for a window that ends no later than the last one judged
  (a retry, a second replica) changes nothing and emits nothing.

Sources: Prometheus alerting rules' `for:` (a condition must hold for a duration before
the alert fires, pending until then) and `keep_firing_for:` (an alert keeps firing for a
while after its condition clears, against flapping), and Cloud Monitoring alert policies'
condition `duration` (the condition must be met for every point in that window) with the
incident closed only once the condition has stopped being met; the separate, lower clear
level is the classic hysteresis band of threshold alarms (Nagios flap detection
addresses the same problem by counting state changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from commands import config_schema
from commands.config import Config, Thresholds
from commands.durations import format_duration, parse_duration
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.model import EndpointHealth

KEY_PREFIX = AlertSource.HEALTH_WATCH.value  # `health-watch:<endpoint>:<metric>:<start>`
STATE_VERSION = 1


@dataclass(frozen=True)
class Metric:
    """One watched figure: its `[thresholds]` key (also its name in alert keys), how
    people call it, and how its figures are written."""

    name: str
    label: str

    def figure(self, h: EndpointHealth) -> float | None:
        value: float | None = getattr(h, self.name)
        return value

    def threshold(self, th: Thresholds) -> float:
        value: float = getattr(th, self.name)
        return value

    def text(self, value: float) -> str:
        if self.name == "p95_latency_ms":
            return f"{value:,.0f} ms"
        if self.name == "error_rate":
            return f"{value:.2%}"
        return f"{value:.3f}"

    @property
    def policy(self) -> str:
        """The alert policy name of this metric's alerts (what `[runbooks.policies]` keys)."""
        return f"health watch: {self.label}"


METRICS = (
    Metric("p95_latency_ms", "P95 latency"),
    Metric("error_rate", "error rate"),
    Metric("drift", "drift"),
)


@dataclass(frozen=True)
class WatchSettings:
    """`[alerts]`: the window, the runs that open and close an alert, the clear level, and
    the metrics watched."""

    interval: timedelta = timedelta(minutes=5)
    # `[alerts] watch`: the metrics judged (by name); the others are left to Cloud
    # Monitoring's policies, and their state is kept as it was
    metrics: frozenset[str] = frozenset({"p95_latency_ms", "error_rate", "drift"})
    open_after: int = 2
    close_after: int = 3
    clear_ratio: float = 0.9

    @property
    def enabled(self) -> bool:
        """Whether anything is watched (`[alerts] watch` is not `false` or `[]`)."""
        return bool(self.metrics)


def watch_settings(config: Config) -> WatchSettings:
    """`[alerts]`, checked against the schema (a mistake is a `ConfigError` naming the key)."""
    table: config_schema.AlertsTable = config_schema.validate_table(
        config_schema.AlertsTable, config.raw.get("alerts"), ("alerts",), config.source
    )
    return WatchSettings(
        interval=parse_duration(table.watch_interval),
        metrics=frozenset(
            (m.name for m in METRICS)
            if table.watch is True
            else ()
            if table.watch is False
            else table.watch
        ),
        open_after=table.open_after,
        close_after=table.close_after,
        clear_ratio=float(table.clear_ratio),
    )


def alert_key(endpoint: str, metric: str, started_at: datetime) -> str:
    """`health-watch:<endpoint>:<metric>:<start of the breach, UTC, e.g. 20261126T2300Z>`:
    one key per breach, so that the next breach of the same metric is a new alert (the
    store keeps a closed alert closed under its key)."""
    return f"{KEY_PREFIX}:{endpoint}:{metric}:{started_at.astimezone(UTC):%Y%m%dT%H%MZ}"


@dataclass(frozen=True)
class MetricWatch:
    """Where one metric of one endpoint stands.

    `breaching` / `clear`: the windows in the current run of each kind (only one of them
    is non-zero at a time). `run_since`: where that run began (the start of its first
    window, UTC). `opened_at`: when the open alert opened (the end of the window that
    opened it) and `started_at`: the start of its breach (its notice's `started_at`), both
    None while closed. `last`: the last figure seen."""

    open: bool = False
    breaching: int = 0
    clear: int = 0
    run_since: datetime | None = None
    opened_at: datetime | None = None
    started_at: datetime | None = None
    last: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "breaching": self.breaching,
            "clear": self.clear,
            "run_since": self.run_since.isoformat() if self.run_since else None,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricWatch:
        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        last = data.get("last")
        return cls(
            open=bool(data.get("open", False)),
            breaching=int(data.get("breaching", 0)),
            clear=int(data.get("clear", 0)),
            run_since=moment("run_since"),
            opened_at=moment("opened_at"),
            started_at=moment("started_at"),
            last=float(last) if isinstance(last, int | float) else None,
        )


@dataclass(frozen=True)
class EndpointWatch:
    """The watch state of one endpoint: the last window judged and each metric's state.
    `to_dict` / `from_dict` round-trip through JSON (ISO 8601 times with their offset)."""

    endpoint: str
    last_window_end: datetime | None = None
    metrics: dict[str, MetricWatch] = field(default_factory=dict)

    def metric(self, name: str) -> MetricWatch:
        return self.metrics.get(name, MetricWatch())

    @property
    def open_metrics(self) -> list[str]:
        return [name for name, m in self.metrics.items() if m.open]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "endpoint": self.endpoint,
            "last_window_end": self.last_window_end.isoformat() if self.last_window_end else None,
            "metrics": {name: m.to_dict() for name, m in sorted(self.metrics.items())},
        }

    @classmethod
    def from_dict(cls, endpoint: str, data: Mapping[str, Any] | None) -> EndpointWatch:
        """The state kept from last time; a fresh one for None, `{}` or another
        endpoint's state (a state is never applied to the wrong endpoint)."""
        if not data or data.get("endpoint") != endpoint:
            return cls(endpoint)
        end = data.get("last_window_end")
        metrics = data.get("metrics") or {}
        return cls(
            endpoint=endpoint,
            last_window_end=datetime.fromisoformat(end) if isinstance(end, str) else None,
            metrics={str(k): MetricWatch.from_dict(v) for k, v in metrics.items()},
        )


@dataclass(frozen=True)
class Judgement:
    """What `judge` decided: the state to keep (`state`, a JSON-ready dict, and `watch`,
    the same typed) and the notices to emit, opened ones and closed ones, in metric order."""

    watch: EndpointWatch
    notices: list[AlertNotice]

    @property
    def state(self) -> dict[str, Any]:
        return self.watch.to_dict()


def judge(
    endpoint: str,
    health: EndpointHealth | None,
    thresholds: Thresholds,
    previous: Mapping[str, Any] | None,
    *,
    window_end: datetime,
    settings: WatchSettings | None = None,
    environment: str | None = None,
) -> Judgement:
    """Judge one window of `endpoint` (the rule is in the module's docstring).

    `health`: the endpoint's figures over the window that ends at `window_end` (UTC,
    timezone-aware), None when the platform gave none (every metric then skips the
    window). `previous`: the `state` of the last judgement, or None the first time.
    Returns the new state and the notices: `open` with `started_at` = the start of the
    first breaching window of the run, `closed` with `started_at` kept and `ended_at` =
    the start of the first clear window of the run (when the figure came back)."""
    settings = settings or WatchSettings()
    watch = EndpointWatch.from_dict(endpoint, previous)
    if watch.last_window_end is not None and window_end <= watch.last_window_end:
        return Judgement(watch, [])  # judged already: a retry or another replica
    window_start = window_end - settings.interval
    metrics = dict(watch.metrics)
    notices: list[AlertNotice] = []
    for metric in METRICS:
        if metric.name not in settings.metrics:
            continue  # `[alerts] watch` leaves it to Cloud Monitoring
        value = metric.figure(health) if health is not None else None
        before = watch.metric(metric.name)
        after, notice = _step(
            metric,
            before,
            value,
            metric.threshold(thresholds),
            window_start,
            window_end,
            settings,
            endpoint,
            environment,
        )
        metrics[metric.name] = after
        if notice is not None:
            notices.append(notice)
    return Judgement(replace(watch, last_window_end=window_end, metrics=metrics), notices)


def _step(
    metric: Metric,
    m: MetricWatch,
    value: float | None,
    threshold: float,
    window_start: datetime,
    window_end: datetime,
    settings: WatchSettings,
    endpoint: str,
    environment: str | None,
) -> tuple[MetricWatch, AlertNotice | None]:
    if value is None:
        return m, None  # no figure: the window is skipped
    breaching = value > threshold
    clear = value <= settings.clear_ratio * threshold
    if breaching:
        run_since = m.run_since if m.breaching else window_start
        m = replace(m, breaching=m.breaching + 1, clear=0, run_since=run_since, last=value)
    elif clear:
        run_since = m.run_since if m.clear else window_start
        m = replace(m, clear=m.clear + 1, breaching=0, run_since=run_since, last=value)
    else:
        m = replace(m, breaching=0, clear=0, run_since=None, last=value)

    def notice(state: AlertState, started_at: datetime, **kw: Any) -> AlertNotice:
        return AlertNotice(
            key=alert_key(endpoint, metric.name, started_at),
            started_at=started_at,
            source=AlertSource.HEALTH_WATCH,
            state=state,
            policy=metric.policy,
            condition=(
                f"{metric.label} above {metric.text(threshold)} for {settings.open_after}"
                f" window(s) of {format_duration(settings.interval)}"
            ),
            endpoint=endpoint,
            environment=environment,
            labels={"metric": metric.name, "threshold": f"{threshold:g}"},
            **kw,
        )

    if not m.open and m.breaching >= settings.open_after:
        m = replace(m, open=True, opened_at=window_end, started_at=m.run_since or window_start)
        span = format_duration(window_end - (m.run_since or window_start))
        return m, notice(
            AlertState.OPEN,
            started_at=m.started_at or window_start,
            summary=(
                f"{endpoint}: {metric.label} {metric.text(value)} above"
                f" {metric.text(threshold)} for {m.breaching} window(s) ({span})"
            ),
            observed=f"{metric.label} {metric.text(value)} > {metric.text(threshold)}",
        )
    if m.open and m.clear >= settings.close_after:
        clear_level = settings.clear_ratio * threshold
        started = m.started_at
        m = replace(m, open=False, opened_at=None, started_at=None)
        return m, notice(
            AlertState.CLOSED,
            started_at=started or window_start,
            ended_at=m.run_since,
            summary=(
                f"{endpoint}: {metric.label} back to {metric.text(value)}, at or below"
                f" {metric.text(clear_level)} ({settings.clear_ratio:.0%} of the threshold)"
                f" for {m.clear} window(s)"
            ),
            observed=f"{metric.label} {metric.text(value)} ≤ {metric.text(clear_level)}",
        )
    return m, None
