"""Issue 17's proof: Cloud Monitoring's webhook notifications replayed against two `serve`
replicas on one PostgreSQL database, through to the post-incident review.

Each replica is the real `aiops-bot serve` (the server that acks, a command worker, the
scheduler process), its Slack Web API the recording stub over HTTP, its pager PagerDuty's
Events API fake over HTTP. The notices are the recorded fixtures (open, then closed), each
sent several times to both replicas at once, with either kind of the channel's
credentials. People act as Slack sends it: signed button clicks and form submissions.

Checked: one alert message and one update of it, one incident (declared from the alert's
form), the page's trigger, acknowledge and resolve at the PagerDuty fake, the rollback
linked to the incident with the endpoint's traffic restored, and the review's times to
detect / acknowledge / mitigate / resolve equal to the spans between the moments the
steps left in the records, in the order the steps were taken — by `review_for` and by
`aiops-bot incident review` on the replicas' database (its audit chain intact)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from bot.alerts.cloud_monitoring import TOKEN_VAR
from bot.slack.incident_forms import CAUSE, VALUE
from bot.store.db import make_engine, upgrade
from bot.store.incident_store import SqlIncidentStore
from bot.store.sql_store import SqlStore
from commands.config import Config, load_config
from commands.incidents.metrics import span
from commands.incidents.model import IncidentState
from commands.incidents.review import render_review, review_for
from commands.model import ChangeKind, ChangeState
from commands.ports import AuditQuery
from tests.edge.test_slack_incidents import button, declare_values
from tests.support.alerts import JSON, PATH, TOKEN, basic, body, notification, token_query
from tests.support.chaos import Replica, chaos_config
from tests.support.fakes.pagerduty_server import FakePagerDuty
from tests.support.harness import SlackStub
from tests.support.pg import empty_schema
from tests.support.slack_wire import SIGNING_SECRET, action_body, sign, slash_body
from tests.support.slack_wire import view_submission_body as submission

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="serve's processes: Linux"),
]

ROUTING_KEY = "R0UTINGKEYPR0D0000000000000000AA"  # 32 characters, as PagerDuty's are
INCIDENT_ID = "0.nqk3xu7d9f2a"  # the fixtures'
WAIT = 60.0


def respond_config(path: Path) -> Path:
    """The chaos runs' config (no digests, canary verdicts asked, so the bot starts no
    change of its own), with deploys that take no time and PagerDuty as the pager."""
    chaos_config(path, 0, 0)
    source = path.read_text()
    assert 'pager = "none"' in source
    path.write_text(source.replace('pager = "none"', 'pager = "pagerduty"'))
    return path


class Replicas:
    """Two `serve` replicas on one fresh schema, their Slack the stub, their pager the fake."""

    def __init__(self, pg_url: str, work: Path, stub: SlackStub, pager: FakePagerDuty) -> None:
        self.stub = stub
        self.pager = pager
        self.config_path = respond_config(work / "respond.toml")
        self.config: Config = load_config(self.config_path)
        self._schema = empty_schema(pg_url, "respond")
        schema, url = self._schema.__enter__()
        self.engine: Engine = make_engine(
            pg_url, connect_args={"options": f"-csearch_path={schema}"}
        )
        upgrade(self.engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
        env.update(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_BASE_URL=stub.api_url,
            AIOPS_CONFIG=str(self.config_path),
            AIOPS_DATA_DIR=str(work),
            AIOPS_COMMAND_WORKERS="1",
            AIOPS_PII_KEY="respond-test-key",
            AIOPS_POLL_SECONDS="0.2",
            AIOPS_PAGERDUTY_URL=pager.url,
            PAGERDUTY_ROUTING_KEY_PROD=ROUTING_KEY,
            DATABASE_URL=url,
            HOST="127.0.0.1",
            LOG_LEVEL="WARNING",
        )
        env[TOKEN_VAR] = TOKEN
        self.cli_env = env
        self.a = Replica("a", env, work)
        self.b = Replica("b", env, work)
        starters = [threading.Thread(target=r.start) for r in (self.a, self.b)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        self.a.wait_ready()
        self.b.wait_ready()
        self.http = httpx.Client(timeout=15)

    def close(self) -> None:
        self.http.close()
        for r in (self.a, self.b):
            r.stop()
        self.engine.dispose()
        self._schema.__exit__(None, None, None)

    # Slack's side -------------------------------------------------------------------------

    def slack(self, replica: Replica, payload: str) -> httpx.Response:
        headers = {"content-type": "application/x-www-form-urlencoded", **sign(payload)}
        resp = self.http.post(replica.base + "/slack/events", content=payload, headers=headers)
        assert resp.status_code == 200, resp.text
        return resp

    def typed(self, replica: Replica, command: str, line: str, who: tuple[str, str]) -> None:
        path = f"/r/{len(self.stub.calls)}"
        self.slack(replica, slash_body(command, line, *who, self.stub.url + path))
        self.stub.wait_for(lambda: bool(self.stub.responded(path)), WAIT)

    def click(
        self, replica: Replica, action: str, value: str, who: tuple[str, str]
    ) -> dict[str, Any] | None:
        """A button click; the form it opened (`views.open`, before the ack), if any."""
        opened = len(self.stub.of("views.open"))
        url = f"{self.stub.url}/r/{len(self.stub.calls)}"
        self.slack(replica, action_body(action, value, *who, url, channel="C0OPS"))
        forms = self.stub.of("views.open")[opened:]
        return forms[0].body["view"] if forms else None

    # Cloud Monitoring's side --------------------------------------------------------------

    def notify(self, data: dict[str, Any], copies: int = 4) -> list[httpx.Response]:
        """The same notice `copies` times at once, alternately to each replica, with the
        token in the URL or HTTP Basic: the channel's retries and a second replica's copy."""

        def one(i: int) -> httpx.Response:
            replica = (self.a, self.b)[i % 2]
            auth = {"params": token_query(), "headers": JSON}
            if not i % 3:
                auth = {"headers": JSON | basic()}
            return self.http.post(replica.base + PATH, content=body(data), **auth)  # type: ignore[arg-type]

        with ThreadPoolExecutor(copies) as pool:
            return list(pool.map(one, range(copies)))

    # the records --------------------------------------------------------------------------

    def jobs_done(self) -> bool:
        with self.engine.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
            ).scalar_one()
        return int(left) == 0

    def traffic(self, endpoint: str) -> dict[str, int]:
        """Version → percent, as the sandbox platform holds it."""
        with self.engine.connect() as conn:
            split = conn.execute(
                text("SELECT traffic FROM sandbox_endpoint WHERE slug = :s"), {"s": endpoint}
            ).scalar_one()
            versions = dict(
                conn.execute(
                    text("SELECT id, version FROM sandbox_deployed_model WHERE endpoint = :s"),
                    {"s": endpoint},
                ).all()
            )
        split = json.loads(split) if isinstance(split, str) else split
        return {versions[i]: int(p) for i, p in split.items() if int(p)}


@pytest.fixture
def replicas(pg_url: str, stub: SlackStub, tmp_path: Path) -> Iterator[Replicas]:
    pager = FakePagerDuty().serve()
    cluster = Replicas(pg_url, tmp_path, stub, pager)
    try:
        yield cluster
    finally:
        cluster.close()
        pager.close()


ALICE = ("U0ALICE", "alice")
BOB = ("U0BOB", "bob")


def change_state(store: SqlStore, change_id: str) -> ChangeState | None:
    change = store.get_change(change_id)
    return change.state if change else None


def ops_posts(stub: SlackStub, needle: str) -> list[dict[str, Any]]:
    return [
        c.body
        for c in stub.of("chat.postMessage")
        if c.body.get("channel") == "C0OPS" and needle in json.dumps(c.body, ensure_ascii=False)
    ]


def test_alert_to_review_across_two_replicas(replicas: Replicas, stub: SlackStub) -> None:
    r = replicas
    pager = r.pager
    store, incidents = SqlStore(r.engine), SqlIncidentStore(r.engine)

    # a canary of 1.2.1 on the production endpoint: what the alert is about
    r.typed(r.a, "/deploy", 'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix"', ALICE)
    r.typed(r.b, "/aiops", "approve CHG-1", BOB)
    stub.wait_for(lambda: change_state(store, "CHG-1") is ChangeState.SUCCEEDED, WAIT)
    assert r.traffic("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}

    # DETECT: the policy's condition held for five minutes, then the channel sent it,
    # again and again, to both replicas
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    opened = r.notify(notification("open", started_at=began))
    assert [a.status_code for a in opened] == [200] * 4
    assert sorted(a.json()["duplicate"] for a in opened) == [False, True, True, True]
    stub.wait_for(lambda: bool(ops_posts(stub, "incident.declare")) and r.jobs_done(), WAIT)
    [message] = ops_posts(stub, "incident.declare")
    [alert] = incidents.list_alerts(began - timedelta(minutes=1))
    assert alert.notice.key == f"cloud-monitoring:{INCIDENT_ID}" and alert.id in json.dumps(message)

    # TRIAGE: Declare incident's form, filled in from the alert, submitted on the other
    # replica than the one that opened it
    form = r.click(r.b, "incident.declare", button(message, "incident.declare")["value"], ALICE)
    assert form is not None
    r.slack(r.a, submission(form, declare_values(severity="P1"), *ALICE))
    stub.wait_for(lambda: bool(incidents.get_incident("INC-1")) and bool(pager.events), WAIT)
    stub.wait_for(lambda: bool(ops_posts(stub, "INC-1 · P1")), WAIT)
    [card] = [m for m in ops_posts(stub, "INC-1 · P1") if not m.get("thread_ts")]

    # the on-call acknowledges; the incident's Roll back; marked mitigated
    r.click(r.a, "incident.ack", "INC-1", BOB)
    stub.wait_for(lambda: len(pager.events) >= 2, WAIT)
    assert (
        r.click(r.b, "incident.rollback", button(card, "incident.rollback")["value"], BOB) is None
    )
    stub.wait_for(lambda: change_state(store, "CHG-2") is ChangeState.SUCCEEDED, WAIT)
    rollback = store.get_change("CHG-2")
    assert rollback is not None and rollback.kind is ChangeKind.ROLLBACK
    assert rollback.plan.incident == "INC-1"
    assert r.traffic("loan-assessor") == {"1.2.0": 100}
    r.typed(r.a, "/aiops", "incident mitigated INC-1", BOB)

    # the alert closes at Cloud Monitoring: its one message is updated, once
    before = len(updates(stub, alert.message_ts))  # it said INC-1 was declared from it
    assert "INC-1" in json.dumps(updates(stub, alert.message_ts)[-1])
    closed = r.notify(notification("closed", started_at=began, ended_at=datetime.now(UTC)))
    assert sorted(a.json()["duplicate"] for a in closed) == [False, True, True, True]
    stub.wait_for(lambda: r.jobs_done() and len(updates(stub, alert.message_ts)) > before, WAIT)
    [update] = updates(stub, alert.message_ts)[before:]
    assert "Resolved" in json.dumps(update)

    # FIX: resolved with its root cause, from the card's Resolve form
    form = r.click(r.b, "incident.resolve", button(card, "incident.resolve")["value"], BOB)
    assert form is not None
    cause = {CAUSE: {VALUE: {"type": "plain_text_input", "value": "1.2.1's tokenizer"}}}
    r.slack(r.a, submission(form, cause, *BOB, view_id="V0RESOLVE"))
    stub.wait_for(
        lambda: getattr(incidents.get_incident("INC-1"), "state", None) is IncidentState.RESOLVED,
        WAIT,
    )
    stub.wait_for(lambda: len(pager.events) >= 3, WAIT)

    # one of everything, whatever the copies and the replicas
    assert len(ops_posts(stub, "incident.declare")) == 1
    assert len(incidents.list_alerts(began - timedelta(minutes=1))) == 1
    assert [i.id for i in incidents.list_incidents()] == ["INC-1"]
    assert [(e["event_action"], e["dedup_key"]) for e in pager.events] == [
        ("trigger", "INC-1"),
        ("acknowledge", "INC-1"),
        ("resolve", "INC-1"),
    ]
    assert pager.events[0]["payload"]["severity"] == "critical"
    rows = store.audit(AuditQuery())
    assert [e.action for e in rows].count("alert_received") == 1
    assert [e.action for e in rows].count("alert_closed") == 1

    # REVIEW: its times are the spans between the moments the steps left
    incident = incidents.get_incident("INC-1")
    alert = incidents.get_alert(alert.id) or alert
    assert incident is not None and incident.acknowledged_at and incident.mitigated_at
    assert incident.resolved_at is not None
    review = review_for(store, incidents, r.config, "INC-1")
    times = review["times"]
    expected = {
        "time_to_detect": span(began, alert.received_at),
        "time_to_acknowledge": span(alert.received_at, incident.acknowledged_at),
        "time_to_mitigate": span(alert.received_at, incident.mitigated_at),
        "time_to_resolve": span(alert.received_at, incident.resolved_at),
    }
    for name, value in expected.items():
        assert value is not None and times[name]["seconds"] == int(value.total_seconds()), name
    # the alert came after the five minutes it was open for; the rest in the steps' order
    assert times["time_to_detect"]["seconds"] >= 300
    assert (
        times["time_to_acknowledge"]["seconds"]
        <= times["time_to_mitigate"]["seconds"]
        <= times["time_to_resolve"]["seconds"]
    )
    # every moment traced to its audit row, at the moment the incident records
    by_id = {e.id: e for e in rows}
    for moment in ("declared", "acknowledged", "mitigated", "resolved"):
        row = by_id[times["rows"][moment]]
        recorded = getattr(incident, f"{moment}_at")
        assert abs((row.at - recorded).total_seconds()) < 1, moment
    kinds = [e["kind"] for e in review["timeline"]]
    for earlier, later in [
        ("alert_fired", "declared"),
        ("declared", "page_sent"),
        ("declared", "acknowledged"),
        ("acknowledged", "mitigation"),
        ("mitigation", "mitigated"),
        ("mitigated", "alert_closed"),
        ("alert_closed", "resolved"),
    ]:
        assert kinds.index(earlier) < kinds.index(later), (earlier, later, kinds)
    assert review["root_cause"] == "1.2.1's tokenizer" and review["untraced"] == []
    assert [c["id"] for c in review["changes"] if c["role"] == "linked"] == ["CHG-2"]
    # the CLI on the replicas' database says the same, with their audit chain intact
    cli = subprocess.run(
        [sys.executable, "-m", "bot.cli", "incident", "review", "INC-1", "--format", "json"],
        cwd=Path(__file__).resolve().parents[2],
        env=r.cli_env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    assert printed["chain"]["ok"] is True
    assert {k: printed["times"][k] for k in expected} == {k: times[k] for k in expected}
    markdown = render_review(review, "md")
    for name, label in (
        ("time_to_detect", "Time to detect"),
        ("time_to_resolve", "Time to resolve"),
    ):
        assert label in markdown and times[name]["text"] in markdown


def updates(stub: SlackStub, ts: str | None) -> list[dict[str, Any]]:
    return [c.body for c in stub.of("chat.update") if ts and c.body.get("ts") == ts]
