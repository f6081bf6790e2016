"""Two replicas receiving the same alert's notices at the same moment (two runtimes, each
with its own engine on one database, SQLite and PostgreSQL): one message, one
`alert_received`; its close taken once (one `alert_closed`) and the message updated; an
alert whose worker died before posting it posted once by the next."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.alerts.webhook import notice_to_job, run_alert
from bot.store.db import make_engine
from commands.incidents.alerts import POST_CLAIM, AlertBusy, receive_alert, receive_notice
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.ports import AuditQuery
from commands.runtime import NullNotifier, Runtime
from tests.support.harness import FakeClock, make_runtime

NOTICE = AlertNotice(
    key="cloud-monitoring:0.race",
    source=AlertSource.CLOUD_MONITORING,
    state=AlertState.OPEN,
    policy="loan-assessor error rate",
    condition="error rate > 1%",
    endpoint="loan-assessor",
    environment="prod",
    summary="error rate 4.2%",
)


@pytest.fixture
def replicas(engine: Engine) -> Iterator[tuple[Runtime, Runtime]]:
    if engine.dialect.name == "sqlite":
        other = make_engine(engine.url.render_as_string(hide_password=False))
    else:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        other = make_engine(
            engine.url.render_as_string(hide_password=False),
            connect_args={"options": f"-csearch_path={schema}"},
        )
    clock = FakeClock()
    yield make_runtime(engine, clock), make_runtime(other, clock)
    other.dispose()


def together(*calls: object) -> None:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: object) -> None:
        barrier.wait()
        try:
            call()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_replicas_post_an_alert_once_and_close_it_once(
    replicas: tuple[Runtime, Runtime],
) -> None:
    a, b = replicas
    together(*(lambda rt=rt: receive_alert(rt, NOTICE) for rt in (a, b, a, b)))
    notifiers = [rt.notifier for rt in (a, b)]
    assert all(isinstance(n, NullNotifier) for n in notifiers)
    first_posts = [p for n in notifiers for p in n.posts]  # type: ignore[attr-defined]
    assert len([p for p in first_posts if not p.update]) == 1
    closed = replace(NOTICE, state=AlertState.CLOSED, ended_at=a.clock())
    together(*(lambda rt=rt: receive_alert(rt, closed) for rt in (a, b, a, b)))
    actions = [e.action for e in a.store.audit(AuditQuery())]
    assert actions.count("alert_received") == 1 and actions.count("alert_closed") == 1
    all_posts = [p for n in notifiers for p in n.posts]  # type: ignore[attr-defined]
    assert len([p for p in all_posts if not p.update]) == 1  # still one message
    stored = a.incidents.get_alert(NOTICE.key)  # type: ignore[union-attr]
    assert stored is not None and stored.closed_at is not None
    last = [p for p in all_posts if p.update][-1]
    assert last.ts == stored.message_ts and "Resolved at" in str(last.reply.blocks)


class Died(BaseException):
    """The worker's process ending mid-job (not an error a caller would catch)."""


class DiesOnPost(NullNotifier):
    def post(self, post: Any) -> Any:
        raise Died


def test_an_alert_whose_worker_died_before_posting_is_posted_once_by_the_next(
    replicas: tuple[Runtime, Runtime],
) -> None:
    """A dies after storing the new alert (before it claims the post): the retried job on
    either replica posts it. Then a worker that dies holding the claim: nobody posts
    while the claim is live (the job is busy: run again later), one does once it has
    expired, and two replicas racing then post one message."""
    a, b = replicas
    store = a.incidents
    assert store is not None
    record, new = store.record_alert(NOTICE, a.clock())  # stored … and the worker died
    assert new and record.message_ts is None
    retried = receive_notice(b, NOTICE)  # the retried job, on the other replica
    assert not retried.duplicate and not retried.busy
    assert retried.record.message_ts is not None
    assert len([p for p in b.notifier.posts if not p.update]) == 1  # type: ignore[attr-defined]
    again = receive_notice(a, NOTICE)
    assert again.duplicate and not a.notifier.posts  # type: ignore[attr-defined]

    second = replace(NOTICE, key="cloud-monitoring:0.died-holding")
    dying = replace(a, notifier=DiesOnPost())
    with pytest.raises(Died):
        receive_notice(dying, second)  # stored, claimed, then gone before the post
    held = store.get_alert(second.key)
    assert held is not None and held.posting_by and held.message_ts is None
    busy = receive_notice(b, second)
    assert busy.busy and busy.record.message_ts is None
    with pytest.raises(AlertBusy):
        run_alert(b, notice_to_job(second))  # a queued job: run again later
    a.clock.advance(seconds=POST_CLAIM.total_seconds() + 1)  # type: ignore[attr-defined]
    together(*(lambda rt=rt: receive_notice(rt, second) for rt in (a, b, a, b)))
    posts = [
        p
        for rt in (a, b)
        for p in rt.notifier.posts  # type: ignore[attr-defined]
        if not p.update and second.key in str(p.reply.blocks)
    ]
    assert len(posts) == 1
    done = store.get_alert(second.key)
    assert done is not None and done.message_ts is not None and done.posting_until is None
    actions = [e.action for e in a.store.audit(AuditQuery())]
    assert actions.count("alert_received") == 2  # audited once each, by the first to claim it
