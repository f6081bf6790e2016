"""The benchmarks' code works (tiny sizes, no timing assertions: figures live in bench/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine

from bench import bench_audit
from bench.common import percentile, summary_ms
from bot.store import audit_chain
from bot.store.sql_store import SqlStore
from commands.ports import AuditQuery
from tests.support.harness import SlackStub
from tests.support.wire import SIGNING_SECRET, sign, slash_body


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert summary_ms([0.001, 0.002, 0.010]) == {
        "p50_ms": 2.0,
        "p95_ms": 10.0,
        "p99_ms": 10.0,
        "max_ms": 10.0,
    }


def test_bench_requests_are_signed_as_slack_signs() -> None:
    body = slash_body("/aiops", "status", "U0ALICE", "alice", "http://127.0.0.1:9/r")
    headers = sign(body)
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)


def test_bulk_rows_form_a_chain_the_verifier_accepts(sqlite_engine: Engine) -> None:
    assert bench_audit.append_rate(sqlite_engine, rows=4, writers=2) > 0
    now = datetime.now(UTC)
    rows = bench_audit.generate(60, now - timedelta(days=30), now, bench_audit.head(sqlite_engine))
    bench_audit.bulk_insert(sqlite_engine, rows)
    result = audit_chain.verify(sqlite_engine, from_checkpoint=False)
    assert result.ok, result.message()
    assert result.checked == 64
    # the bulk rows read back as the store wrote them: a filtered query finds them
    target = next(r[4] for r in reversed(rows) if r[4])
    events = SqlStore(sqlite_engine).audit(
        AuditQuery(endpoint=target, since=now - timedelta(days=31), limit=50)
    )
    assert events and all(e.target == target for e in events)
    times = bench_audit.query_times(sqlite_engine, now, repeat=1)
    assert set(times) >= {"endpoint, since 24h", "all, since 24h"}


def test_bench_respond_measures_a_run_from_the_webhook_to_traffic_restored(
    sqlite_engine: Engine, stub: SlackStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run of `bench respond` against the bot served in this process (SQLite, fake
    time): every part measured, in the order the steps happen."""
    from bench import bench_respond
    from bot.alerts.cloud_monitoring import TOKEN_VAR
    from bot.serve.server import make_asgi
    from bot.slack.app import build_app
    from bot.slack.clients import web_client
    from bot.slack.notifier import SlackNotifier
    from commands.config import load_config
    from commands.service import Service
    from tests.support.alerts import TOKEN
    from tests.support.chaos import chaos_config
    from tests.support.harness import FakeClock, make_runtime
    from tests.support.slack_wire import Served

    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    config = load_config(chaos_config(tmp_path / "respond.toml", 0, 0))
    notifier = SlackNotifier(web_client("xoxb-test", stub.api_url))
    service = Service(make_runtime(sqlite_engine, FakeClock(), notifier, config=config))
    bolt = build_app(
        service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_base_url=stub.api_url
    )
    server = Served(make_asgi(service, bolt))
    bot = bench_respond.Bot(f"http://127.0.0.1:{server.port}", sqlite_engine, stub)
    try:
        bench_respond.prepare(bot)
        run = bench_respond.one_run(bot, 0)
    finally:
        service.rt.background.wait_idle(30)
        bot.http.close()
        server.close()
    assert set(run) == {name for name, _ in bench_respond.PARTS}
    assert 0 < run["ack"] <= run["restored"] <= run["succeeded"]
    assert 0 < run["posted"] <= run["restored"] and run["click_to_restored"] < run["restored"]
    assert bot.last_change()[1:] == ("rollback", "succeeded")
    summary = bench_respond.summarise([run, run])
    assert summary["restored"]["median_ms"] == summary["restored"]["max_ms"]
