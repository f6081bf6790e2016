"""The morning and end-of-day digests: content, ordering, Slack's limits, the chart and
the audit row, on a real database with the sandbox (or figures set by the test)."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block as SdkBlock
from sqlalchemy import Engine

from bot.charts import COLOURS, THRESHOLD_COLOUR
from bot.charts import render as render_chart
from bot.slack.blocks import render_message
from bot.slack.notifier import SlackNotifier
from commands.config import Config, ConfigError, Endpoint, parse_config
from commands.digests.post import post
from commands.digests.render import compose
from commands.digests.schedule import DigestKind, digest_settings, parse_days
from commands.model import SCHEDULER, EndpointHealth
from commands.ports import Alert, AuditQuery, Chart, SeriesPoint
from commands.runtime import NullNotifier, Runtime
from tests.support.harness import (
    ALICE,
    BOB,
    Bot,
    FakeClock,
    SlackStub,
    example_config,
    make_runtime,
)
from tests.support.harness import endpoint_health as healthy

# Tuesday 1 December 2026, 08:30 in Sydney (AEDT, UTC+11)
MORNING = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
EOD = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)


def with_endpoints(n: int, env: str = "prod", **digest: Any) -> Config:
    raw = copy.deepcopy(example_config().raw)
    for i in range(n):
        raw["endpoints"][f"ep-{i:04d}"] = {
            "environment": env,
            "model": "gemma-3-1b-it",
            "min_replicas": 1,
            "max_replicas": 3,
        }
    raw.setdefault("digests", {}).update(digest)
    return parse_config(raw, source="test")


class Figures:
    """The sandbox for everything but the figures, which the test sets; counts calls."""

    name = "figures"

    def __init__(
        self,
        inner: Any,
        health: dict[str, EndpointHealth],
        alerts: Sequence[Alert] = (),
        costs: dict[str, list[float]] | None = None,
    ) -> None:
        self.inner = inner
        self._health = health
        self._alerts = list(alerts)
        self._costs = costs or {}
        self.calls = 0
        self.alerts_since: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        self.calls += 1
        return {e.slug: self._health[e.slug] for e in endpoints if e.slug in self._health}

    def alerts(self, since: datetime) -> list[Alert]:
        self.calls += 1
        self.alerts_since = since
        return list(self._alerts)

    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        self.calls += 1
        return {e.slug: self._costs.get(e.slug, [10.0] * days)[-days:] for e in endpoints}

    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        self.calls += 1
        out = {}
        for e in endpoints:
            h = self._health[e.slug]
            n = int((until - since) / step)
            out[e.slug] = [
                SeriesPoint(since + i * step, (h.p95_latency_ms or 0) * (0.5 + i / n), h.error_rate)
                for i in range(n + 1)
            ]
        return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MORNING)


def runtime(
    engine: Engine, clock: FakeClock, config: Config | None = None, notifier: Any = None
) -> Runtime:
    return make_runtime(engine, clock, notifier or NullNotifier(), config=config)


def texts(reply: Any) -> str:
    return json.dumps(render_message(reply), ensure_ascii=False)


def check_limits(message: dict[str, Any]) -> None:
    """Slack's limits, checked by hand and by slack_sdk's own block models."""
    blocks = message["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if "fields" in block:
            assert len(block["fields"]) <= 10
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        SdkBlock.parse(block).validate_json()  # type: ignore[union-attr]
    assert not any(
        "left out to fit Slack's limit" in e.get("text", "")
        for b in blocks
        if b["type"] == "context"
        for e in b["elements"]
        if b is blocks[-1]
    ), "the digest must fit by itself, not be cut by the renderer"


def test_morning_digest_on_the_sandbox_covers_the_checklist(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    rt = runtime(sqlite_engine, clock)
    digest = compose(rt, DigestKind.MORNING, "prod")
    out = texts(digest.reply)
    for words in (
        "Morning digest · prod · Tue 01 Dec",
        "Alerts since Mon 17:30",
        "Approvals waiting",
        "Canaries in flight",
        "Changes scheduled today",
        "yesterday / $100.00 budget",
        "replicas",
        "loan-assessor",
        "Overnight alerts",
        "Model health (worst first)",
    ):
        assert words in out, words
    assert "loan-assessor-stg" not in out  # staging has its own digest
    check_limits(render_message(digest.reply))
    assert digest.chart is None  # nothing breached: no chart


def test_breaching_first_worst_first_against_thresholds(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    config = with_endpoints(6)
    rt = runtime(sqlite_engine, clock, config)
    th = config.thresholds
    figures = {s: healthy(s) for s in config.endpoints}
    figures["ep-0001"] = healthy("ep-0001", p95_latency_ms=th.p95_latency_ms + 1)  # just over
    figures["ep-0002"] = healthy("ep-0002", error_rate=0.05)  # 5× the error threshold
    figures["ep-0003"] = healthy("ep-0003", p95_latency_ms=th.p95_latency_ms)  # at: not over
    figures["ep-0004"] = healthy("ep-0004", drift=0.1)  # at: not over
    rt.platform = Figures(rt.platform, figures)  # type: ignore[assignment]
    digest = compose(rt, DigestKind.MORNING, "prod")
    assert digest.counts["breaching"] == 2
    health = next(
        b for b in render_message(digest.reply)["blocks"] if "Model health" in json.dumps(b)
    )["text"]["text"]
    lines = health.splitlines()[1:]
    assert lines[0].startswith(":red_circle: *ep-0002*")  # worst first
    assert lines[1].startswith(":red_circle: *ep-0001*")
    assert all(":large_green_circle:" in line for line in lines[2:])
    assert "ep-0003" in health and "ep-0004" in health  # few endpoints: healthy ones listed
    assert "2 of 7 endpoints breaching" in texts(digest.reply)
    assert digest.chart is not None and list(digest.chart.series) == ["ep-0002", "ep-0001"]


@pytest.mark.parametrize("breaching", [3, 300])
def test_300_endpoints_fit_slack_limits(
    sqlite_engine: Engine, clock: FakeClock, breaching: int
) -> None:
    config = with_endpoints(299)  # + loan-assessor = 300 in prod
    rt = runtime(sqlite_engine, clock, config)
    slugs = sorted(e.slug for e in config.endpoints.values() if e.environment == "prod")
    figures = {s: healthy(s) for s in slugs}
    for i, s in enumerate(slugs[:breaching]):
        figures[s] = healthy(s, p95_latency_ms=2100.0 + i, error_rate=0.02)
    alerts = [
        Alert("P95 latency > 2 s", "P1", "open", MORNING - timedelta(hours=3), None, s, "slow")
        for s in slugs[:breaching]
    ]
    pending = [  # plenty of everything else, too
        f"ep-{i:04d}" for i in range(15)
    ]
    rt.platform = Figures(rt.platform, figures, alerts)  # type: ignore[assignment]
    for slug in pending:
        Bot(rt, clock).run(ALICE, f'/deploy {slug} gemma-3-1b-it@1.2.1 reason="batch"')
    digest = compose(rt, DigestKind.MORNING, "prod")
    message = render_message(digest.reply)
    check_limits(message)
    out = json.dumps(message)
    assert digest.counts["breaching"] == breaching
    assert digest.counts["pending_approvals"] == 15
    if breaching == 3:
        assert f"*{300 - breaching} healthy*" in out
        assert out.index("ep-0002") < out.index("healthy*")  # breaching first
    else:
        assert "more breaching" in out and "/aiops status" in out
    assert "and 3 more" in out  # approvals beyond the first 12 are summarised


def test_alerts_since_last_eod_p1_p2_first_open_or_resolved(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    rt = runtime(sqlite_engine, clock)
    t = MORNING - timedelta(hours=6)
    alerts = [
        Alert("Drift > 0.1", "P3", "open", t, None, "loan-assessor", "drift 0.13"),
        Alert(
            "Error rate > 1 %",
            "P2",
            "closed",
            t,
            t + timedelta(hours=1),
            "loan-assessor",
            "errors 1.4%",
        ),
        Alert(
            "P95 latency > 2 s",
            "P1",
            "open",
            t,
            None,
            "loan-assessor",
            "P95 2400 ms for jane.doe@example.com",
        ),
        Alert("Staging thing", "P1", "open", t, None, "loan-assessor-stg", "not prod"),
    ]
    fig = Figures(rt.platform, {"loan-assessor": healthy("loan-assessor")}, alerts)
    rt.platform = fig  # type: ignore[assignment]
    digest = compose(rt, DigestKind.MORNING, "prod")
    # Tuesday morning: since Monday's end-of-day digest (17:30 Sydney = 06:30 UTC)
    assert fig.alerts_since == datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    out = texts(digest.reply)
    assert out.index("P1 `loan-assessor`") < out.index("P2 `loan-assessor`") < out.index("P3")
    assert "*open*" in out and "resolved" in out
    assert "not prod" not in out  # another environment's alert
    assert "jane.doe@example.com" not in out  # PII masked on the way out
    assert digest.counts["p1_p2"] == 2


def test_monday_morning_looks_back_to_friday_evening(sqlite_engine: Engine) -> None:
    monday = FakeClock(datetime(2026, 11, 29, 21, 30, tzinfo=UTC))  # Mon 30 Nov 08:30
    rt = runtime(sqlite_engine, monday)
    fig = Figures(rt.platform, {})
    rt.platform = fig  # type: ignore[assignment]
    compose(rt, DigestKind.MORNING, "prod")
    assert fig.alerts_since == datetime(2026, 11, 27, 6, 30, tzinfo=UTC)  # Fri 17:30


def test_cost_budget_and_spike(sqlite_engine: Engine, clock: FakeClock) -> None:
    """Idle capacity has its own tests (tests/flows/test_cost.py)."""
    config = with_endpoints(3)
    rt = runtime(sqlite_engine, clock, config)
    figures = {s: healthy(s) for s in config.endpoints}
    costs = {
        "loan-assessor": [20.0] * 8,
        "ep-0000": [10.0] * 7 + [40.0],  # 4× its 7-day average
        "ep-0001": [30.0] * 8,
        "ep-0002": [25.0] * 8,
    }
    rt.platform = Figures(rt.platform, figures, costs=costs)  # type: ignore[assignment]
    out = texts(compose(rt, DigestKind.MORNING, "prod").reply)
    assert "$115.00 yesterday / $100.00 budget :warning:" in out
    assert "over the daily budget by $15.00" in out
    assert "*ep-0000* $40.00 vs 7-day average $10.00 (4.0×)" in out
    assert "ep-0001* $30.00 vs" not in out


def test_eod_interventions_by_person_and_next_days_changes(
    sqlite_engine: Engine,
) -> None:
    friday = FakeClock(datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # Fri 27 Nov 10:00
    bot = Bot(runtime(sqlite_engine, friday), friday)
    reply = bot.run(
        ALICE,
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="monday release" at="2026-11-30 11:00"',
    )
    assert reply.ok, texts(reply)
    change_id = bot.rt.store.open_change("loan-assessor").id
    bot.run(BOB, f"/aiops approve {change_id}")
    bot.run(BOB, "/aiops status")  # a read: not an intervention
    friday.advance(hours=7, minutes=30)  # 17:30
    digest = compose(bot.rt, DigestKind.EOD, "prod")
    out = texts(digest.reply)
    assert "End-of-day digest · prod · Fri 27 Nov" in out
    assert "Changes scheduled Mon 30 Nov" in out  # the next digest day, not Saturday
    assert f"*{change_id}* deploy gemma-3-1b-it@1.2.1 `loan-assessor` at Mon 11:00" in out
    assert "Manual interventions today" in out
    assert "<@U0ALICE> (" in out and "plan loan-assessor" in out and "monday release" in out
    assert "<@U0BOB> (1): `10:00` approve loan-assessor" in out
    assert "status" not in out.split("Manual interventions today")[1].split("Thresholds")[0]


def test_post_writes_one_audit_row_as_scheduler(sqlite_engine: Engine, clock: FakeClock) -> None:
    notifier = NullNotifier()
    rt = runtime(sqlite_engine, clock, notifier=notifier)
    due = MORNING - timedelta(minutes=5)
    digest = post(rt, DigestKind.MORNING, "prod", scheduled_for=due, late=True)
    assert notifier.posts[-1].channel == rt.config.channels.ops
    assert "late" in notifier.posts[-1].reply.blocks[0].text  # type: ignore[union-attr]
    assert "Posted late" in texts(digest.reply)
    rows = [
        e for e in rt.store.audit(AuditQuery(actor_id=SCHEDULER.id)) if e.action == "digest_posted"
    ]
    assert len(rows) == 1
    row = rows[0]
    assert row.environment == "prod" and row.outcome == "posted late"
    assert row.parameters["kind"] == "morning" and row.parameters["late"] is True
    assert row.parameters["scheduled_for"] == due.isoformat()


def test_slash_digest_posts_on_demand_and_refuses_bad_input(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = Bot(runtime(sqlite_engine, clock), clock)
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    reply = bot.run(ALICE, "/aiops digest eod prod")
    assert reply.ok and reply.ephemeral and "prod in <#C0OPS>" in reply.text
    assert "End-of-day digest · prod" in texts(notifier.posts[-1].reply)
    rows = [
        e for e in bot.rt.store.audit(AuditQuery(actor_id=ALICE.id)) if e.action == "digest_posted"
    ]
    assert len(rows) == 1
    for bad, words in (
        ("/aiops digest", "which digest?"),
        ("/aiops digest lunch", "`lunch` is not one"),
        ("/aiops digest morning nowhere", "unknown environment `nowhere`"),
    ):
        reply = bot.run(ALICE, bad)
        assert not reply.ok and words in reply.text, reply.text


def test_platform_calls_do_not_grow_with_endpoints(sqlite_engine: Engine, clock: FakeClock) -> None:
    counts = []
    for n in (5, 120):
        config = with_endpoints(n)
        rt = runtime(sqlite_engine, clock, config)
        figures = {s: healthy(s, p95_latency_ms=2500.0) for s in config.endpoints}
        fig = Figures(rt.platform, figures)
        rt.platform = fig  # type: ignore[assignment]
        compose(rt, DigestKind.MORNING, "prod")
        counts.append(fig.calls)
    assert counts[0] == counts[1] == 4  # health, alerts, costs, history


def png_image(data: bytes) -> Any:
    """The PNG's pixels as matplotlib reads them (rows × columns × RGBA, 0–1)."""
    from matplotlib.image import imread

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(data), format="png")


def has_colour(image: Any, hex_colour: str) -> bool:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return bool((abs(image[:, :, :3] - rgb) < 0.05).all(axis=2).any())


def test_chart_is_uploaded_to_the_digests_thread(
    sqlite_engine: Engine, clock: FakeClock, stub: SlackStub
) -> None:
    notifier = SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url))
    rt = runtime(sqlite_engine, clock, notifier=notifier)
    bot = Bot(rt, clock)
    # A faulty canary breaches latency and errors on the sandbox: a real chart to draw.
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.3.0-rc1 canary=50")
    digest = post(rt, DigestKind.MORNING, "staging")
    assert digest.counts["breaching"] == 1 and digest.chart is not None
    posted = [c for c in stub.of("chat.postMessage") if "Morning digest" in json.dumps(c.body)]
    assert len(posted) == 1
    upload = stub.of("file_upload")
    assert len(upload) == 1
    image = png_image(upload[0].body["data"])
    assert image.shape[:2] == (550, 900)
    assert has_colour(image, COLOURS[0])  # the first series
    assert has_colour(image, THRESHOLD_COLOUR)  # a threshold line
    complete = stub.of("files.completeUploadExternal")
    assert len(complete) == 1
    body = complete[0].body
    assert body["channel_id"] == "C0OPS"
    assert "for loan-assessor-stg" in body["initial_comment"]
    audit = [
        e for e in rt.store.audit(AuditQuery(actor_id="scheduler")) if e.action == "digest_posted"
    ]
    assert audit[-1].parameters["chart"] is True
    assert body["thread_ts"] == audit[-1].parameters["ts"]  # in the digest's own thread


def test_chart_png_without_figures_in_the_window() -> None:
    since = datetime(2026, 12, 1, tzinfo=UTC)
    chart = Chart(
        "t",
        "t.png",
        since,
        since + timedelta(hours=24),
        {"a": [SeriesPoint(since, None, None)]},
        2000.0,
        0.01,
    )
    image = png_image(render_chart(chart))
    assert image.shape[:2] == (550, 900) and has_colour(image, THRESHOLD_COLOUR)


def test_digest_config_is_checked() -> None:
    assert parse_days("mon-fri", "k") == (0, 1, 2, 3, 4)
    assert parse_days("fri-mon", "k") == (0, 4, 5, 6)
    assert parse_days(["sat", "sun"], "k") == (5, 6)
    assert parse_days("daily", "k") == tuple(range(7))
    settings = digest_settings(example_config())
    assert settings.schedules["staging"].eod is None
    assert settings.schedules["staging"].morning is not None
    assert settings.schedules["staging"].morning.hour == 9
    for bad, words in (
        ({"morning": "8.30"}, r"\[digests\] morning: `8.30` is not a time of day"),
        ({"days": "someday"}, r"\[digests\] days: `someday` is not a day"),
        ({"nowhere": {"morning": "08:00"}}, "unknown environment `nowhere`"),
        ({"misfire_grace": "soon"}, r"\[digests\] misfire_grace: `soon` is not a duration"),
        ({"colour": "blue"}, r"colour: not a key of \[digests\]"),
    ):
        raw = copy.deepcopy(example_config().raw)
        raw["digests"] = bad
        with pytest.raises(ConfigError, match=words):
            digest_settings(parse_config(raw))


def test_overrides_since_the_last_digest_are_flagged_for_review(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    rt = runtime(sqlite_engine, clock)
    clock.advance(hours=-10)  # yesterday evening, after the EOD digest
    rt.auditor.record(
        "break_glass",
        "U0CAROL",
        "ran without approval",
        environment="prod",
        target="loan-assessor",
        change_id="CHG-7",
        justification="P1 outage, bob unreachable",
    )
    rt.auditor.record(
        "forced_promote",
        "U0ALICE",
        "promoted while failing",
        environment="prod",
        target="loan-assessor",
        change_id="CHG-8",
        justification="risk accepted by CRO",
    )
    rt.auditor.record(
        "break_glass", "U0CAROL", "ran", environment="staging", target="loan-assessor-stg"
    )
    clock.advance(hours=10)
    out = texts(compose(rt, DigestKind.MORNING, "prod").reply)
    flagged = out.split("Flagged for review")[1]
    assert "break glass `loan-assessor` [CHG-7] by <@U0CAROL>" in flagged
    assert "forced promote `loan-assessor` [CHG-8] by <@U0ALICE>" in flagged
    assert "risk accepted by CRO" in flagged
    assert "loan-assessor-stg" not in out  # staging's overrides go in staging's digest
    quiet = texts(compose(rt, DigestKind.MORNING, "staging").reply)
    assert "Flagged for review" in quiet and "loan-assessor-stg" in quiet
