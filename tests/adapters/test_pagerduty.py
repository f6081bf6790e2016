"""The PagerDuty adapter against a local Events API v2 over real HTTP
(tests/support/fakes/pagerduty_server.py): lifecycle, dedup, retries, refusals, a routing
key per environment, and the key kept out of logs and results."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from bot.pager.pagerduty import PagerDuty, RetryPolicy, routing_key_variable
from commands.incidents.pager import Page, PageAction
from tests.support.fakes.pagerduty_server import FakePagerDuty

PROD_KEY = "R0UT1NGKEYPR0D0000000000000000AA"  # 32 characters, as PagerDuty requires
STAGING_KEY = "R0UT1NGKEYSTAG1NG00000000000000B"


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    server = FakePagerDuty().serve()
    yield server
    server.close()


class Waits(list[float]):
    """The waits asked for between attempts (recorded, not slept)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


def pager(
    fake: FakePagerDuty, waits: Waits, env: dict[str, str] | None = None, **retry: float
) -> PagerDuty:
    keys = {"PAGERDUTY_ROUTING_KEY_PROD": PROD_KEY, "PAGERDUTY_ROUTING_KEY_STAGING": STAGING_KEY}
    return PagerDuty(
        keys if env is None else env,
        url=fake.url,
        retry=RetryPolicy(**retry),  # type: ignore[arg-type]
        sleep=waits,
    )


def trigger(key: str = "INC-7", environment: str = "prod", **fields: object) -> Page:
    values: dict[str, object] = {
        "summary": "loan-assessor P95 2,340 ms > 2,000 ms",
        "source": "loan-assessor",
        "severity": "critical",
        "component": "gemma-3-1b-it@1.2.1",
        "custom_details": {"incident": key, "severity": "P1"},
        "links": (("Incident thread", "https://slack.example/archives/C1/p1"),),
    }
    values.update(fields)
    return Page(PageAction.TRIGGER, key, environment, **values)  # type: ignore[arg-type]


def test_trigger_acknowledge_resolve_follow_one_alert(fake: FakePagerDuty, waits: Waits) -> None:
    pd = pager(fake, waits)
    assert pd.send(trigger()).delivered
    alert = fake.alert("INC-7")
    assert alert is not None and alert.status == "triggered"
    assert (alert.summary, alert.severity, alert.source) == (
        "loan-assessor P95 2,340 ms > 2,000 ms",
        "critical",
        "loan-assessor",
    )
    sent = fake.events[0]
    assert sent["routing_key"] == PROD_KEY and sent["dedup_key"] == "INC-7"
    assert sent["payload"]["component"] == "gemma-3-1b-it@1.2.1"
    assert sent["payload"]["custom_details"] == {"incident": "INC-7", "severity": "P1"}
    assert sent["links"] == [
        {"href": "https://slack.example/archives/C1/p1", "text": "Incident thread"}
    ]

    assert pd.send(Page(PageAction.ACKNOWLEDGE, "INC-7", "prod")).delivered
    assert fake.alert("INC-7").status == "acknowledged"  # type: ignore[union-attr]
    result = pd.send(Page(PageAction.RESOLVE, "INC-7", "prod"))
    assert result.delivered and result.attempts == 1 and result.error is None
    assert fake.alert("INC-7").status == "resolved"  # type: ignore[union-attr]
    assert fake.alert("INC-7").actions == ["trigger", "acknowledge", "resolve"]  # type: ignore[union-attr]
    assert "payload" not in fake.events[2]  # acknowledge and resolve carry no payload
    assert len(fake.alerts) == 1


def test_a_trigger_sent_twice_is_one_alert_and_keeps_its_status(
    fake: FakePagerDuty, waits: Waits
) -> None:
    pd = pager(fake, waits)
    pd.send(trigger())
    pd.send(Page(PageAction.ACKNOWLEDGE, "INC-7", "prod"))
    assert pd.send(trigger()).delivered  # a retried or repeated trigger
    assert len(fake.alerts) == 1
    assert fake.alert("INC-7").status == "acknowledged"  # type: ignore[union-attr]
    pd.send(trigger("INC-8"))
    assert [a.dedup_key for a in fake.alerts] == ["INC-7", "INC-8"]


def test_429_and_5xx_are_retried_then_delivered(fake: FakePagerDuty, waits: Waits) -> None:
    fake.fail(429)
    fake.fail(503)
    fake.fail(500)
    result = pager(fake, waits, base_delay=1.0, max_delay=8.0).send(trigger())
    assert result.delivered and result.attempts == 4
    assert [r.status for r in fake.requests] == [429, 503, 500, 202]
    assert len(fake.alerts) == 1
    # exponential, half fixed and half jitter: 1 s, 2 s, 4 s doubled, each in [d/2, d]
    assert len(waits) == 3
    for wait, delay in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert delay / 2 <= wait <= delay


def test_retry_after_is_honoured(fake: FakePagerDuty, waits: Waits) -> None:
    fake.fail(429, retry_after="3")
    fake.fail(429)  # without Retry-After: the backoff
    result = pager(fake, waits, base_delay=0.5).send(trigger())
    assert result.delivered and result.attempts == 3
    assert waits[0] == 3.0
    assert 0.5 <= waits[1] <= 1.0


def test_a_retry_after_beyond_the_budget_ends_the_retries(
    fake: FakePagerDuty, waits: Waits
) -> None:
    fake.fail(429, retry_after="120")
    result = pager(fake, waits, budget=30.0).send(trigger())
    assert not result.delivered and result.attempts == 1
    assert waits == []
    assert "HTTP 429" in (result.error or "") and "120 s" in (result.error or "")
    assert "the on-call was not paged" in (result.error or "")


def test_no_attempt_starts_past_the_deadline_however_slow_the_answers(
    fake: FakePagerDuty, waits: Waits
) -> None:
    """httpx's timeout is per phase: attempts that each stall ~25 s would add up to minutes.
    The send stops starting attempts at `deadline`, so it ends within the deadline plus one
    attempt — inside the scheduler's `OWED_AFTER`, after which a page is taken as lost."""
    from commands.incidents.paging import OWED_AFTER

    now = [0.0]

    def clock() -> float:
        now[0] += 25.0  # each look at the clock follows one slow answer
        return now[0]

    fake.fail(503, times=10)
    keys = {"PAGERDUTY_ROUTING_KEY_PROD": PROD_KEY}
    sender = PagerDuty(keys, url=fake.url, sleep=waits, clock=clock)
    result = sender.send(trigger())
    # attempts start at 0, 25 and 50 s after the first; the fourth would start at 75 s
    assert not result.delivered and result.attempts == 3, result
    assert "within 60 s" in (result.error or "") and "HTTP 503" in (result.error or "")
    assert "the on-call was not paged" in (result.error or "")
    worst = RetryPolicy().deadline + 3 * 10.0  # one more attempt, every phase at its timeout
    assert worst < OWED_AFTER.total_seconds()


def test_it_gives_up_after_the_last_attempt_with_a_clear_error(
    fake: FakePagerDuty, waits: Waits
) -> None:
    fake.fail(502, times=10)
    result = pager(fake, waits, max_attempts=3).send(Page(PageAction.RESOLVE, "INC-7", "prod"))
    assert not result.delivered and result.attempts == 3
    assert len(fake.requests) == 3 and len(waits) == 2
    assert result.error == (
        "PagerDuty did not take the resolve for prod after 3 attempts (last: HTTP 502);"
        " the PagerDuty alert was not resolved"
    )


def test_a_400_is_not_retried_and_says_why(fake: FakePagerDuty, waits: Waits) -> None:
    short = {"PAGERDUTY_ROUTING_KEY_PROD": "too-short"}
    result = pager(fake, waits, env=short).send(trigger())
    assert not result.delivered and result.attempts == 1
    assert len(fake.requests) == 1 and waits == []
    assert "HTTP 400 invalid event" in (result.error or "")
    assert "Length of 'routing_key' is incorrect" in (result.error or "")
    assert "check PAGERDUTY_ROUTING_KEY_PROD" in (result.error or "")


def test_the_fake_refuses_what_pagerduty_refuses(fake: FakePagerDuty) -> None:
    """The fake's validation, over raw HTTP, so that the adapter's tests mean something."""
    bad = {
        "no routing key": {"event_action": "trigger", "payload": {}},
        "no summary": {
            "routing_key": PROD_KEY,
            "event_action": "trigger",
            "payload": {"source": "s", "severity": "error"},
        },
        "bad severity": {
            "routing_key": PROD_KEY,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "s", "severity": "page-me"},
        },
        "bad action": {"routing_key": PROD_KEY, "event_action": "escalate", "dedup_key": "K"},
        "resolve without key": {"routing_key": PROD_KEY, "event_action": "resolve"},
    }
    for name, event in bad.items():
        answer = httpx.post(f"{fake.url}/v2/enqueue", json=event)
        assert answer.status_code == 400, name
        body = answer.json()
        assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
        assert body["errors"], name
    assert httpx.post(f"{fake.url}/v2/enqueue", content=b"not json").status_code == 400
    good = {
        "routing_key": PROD_KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "s", "severity": "info"},
    }
    answer = httpx.post(f"{fake.url}/v2/enqueue", json=good)
    assert answer.status_code == 202 and answer.json()["status"] == "success"
    assert answer.json()["dedup_key"]  # generated when not given
    assert fake.alerts == [fake.alerts[0]] and not fake.alerts[0].actions[1:]


def test_an_invalid_page_is_refused_before_sending(fake: FakePagerDuty, waits: Waits) -> None:
    pd = pager(fake, waits)
    result = pd.send(trigger(severity="P1"))
    assert not result.delivered and result.attempts == 0
    assert "severity `P1`" in (result.error or "")
    assert not pd.send(trigger(key="K" * 256)).delivered
    assert fake.requests == []


def test_a_long_summary_is_cut_to_pagerdutys_limit(fake: FakePagerDuty, waits: Waits) -> None:
    assert pager(fake, waits).send(trigger(summary="x" * 5000)).delivered
    summary = fake.events[0]["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("…")


def test_each_environment_pages_with_its_own_routing_key(fake: FakePagerDuty, waits: Waits) -> None:
    pd = pager(fake, waits)
    pd.send(trigger("INC-1", "prod"))
    pd.send(trigger("INC-2", "staging"))
    assert [e["routing_key"] for e in fake.events] == [PROD_KEY, STAGING_KEY]
    # a resolve through another environment's key does not touch the alert (PagerDuty's rule)
    pd.send(Page(PageAction.RESOLVE, "INC-1", "staging"))
    assert fake.alert("INC-1").status == "triggered"  # type: ignore[union-attr]
    assert routing_key_variable("prod-au") == "PAGERDUTY_ROUTING_KEY_PROD_AU"


def test_a_missing_key_for_an_environment_says_which_variable(
    fake: FakePagerDuty, waits: Waits
) -> None:
    result = pager(fake, waits).send(trigger(environment="dev"))
    assert not result.delivered and result.attempts == 0
    assert (result.error or "").startswith(
        "no PagerDuty routing key for dev: set PAGERDUTY_ROUTING_KEY_DEV"
    )
    assert fake.requests == []


def test_an_unreachable_pagerduty_is_a_result_not_an_exception(waits: Waits) -> None:
    pd = PagerDuty(
        {"PAGERDUTY_ROUTING_KEY_PROD": PROD_KEY},
        url="http://127.0.0.1:9",  # discard port: nothing listens
        retry=RetryPolicy(max_attempts=2),
        sleep=waits,
    )
    result = pd.send(trigger())
    assert not result.delivered and result.attempts == 2
    assert "connection failed" in (result.error or "")


def test_the_routing_key_never_reaches_a_log_or_a_result(
    fake: FakePagerDuty, waits: Waits, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    pd = pager(fake, waits)
    fake.fail(429, retry_after="0")
    fake.fail(500)
    results = [pd.send(trigger()), pd.send(Page(PageAction.RESOLVE, "INC-7", "prod"))]
    fake.fail(503, times=5)
    results.append(pd.send(trigger("INC-9")))
    # a 400 that quotes the key back must not carry it further
    echo = PagerDuty(
        {"PAGERDUTY_ROUTING_KEY_PROD": PROD_KEY},
        url=fake.url,
        transport=httpx.MockTransport(
            lambda request: httpx.Response(
                400,
                json={
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": [f"routing key {json.loads(request.content)['routing_key']} unknown"],
                },
            )
        ),
        sleep=waits,
    )
    results.append(echo.send(trigger()))
    assert [r.delivered for r in results] == [True, True, False, False]
    assert "[routing key]" in (results[-1].error or "")
    assert caplog.records  # something was logged: retries, refusals, httpx's requests
    assert PROD_KEY not in caplog.text
    for result in results:
        assert PROD_KEY not in (result.error or "")
