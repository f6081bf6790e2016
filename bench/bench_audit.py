"""Item 3: the audit table over seven years.

On SQLite (a temp file) and PostgreSQL (127.0.0.1:5432, database `test`, a schema of its
own dropped afterwards):

- append rate (rows/s) through `Auditor.record` (redaction, chain head, insert, commit),
  one writer and 4 concurrent writers, on an empty table and again on the full one;
- a table of N rows (default 1,000,000) spread over seven years, generated in bulk with
  correct chain hashes (Core executemany on SQLite, COPY on PostgreSQL);
- `audit verify` over all of it (`bot.store.audit_chain.verify`, full), then the
  incremental verify of one more day of rows (from the checkpoint the full one left);
- filtered `/aiops audit` queries (`SqlStore.audit(AuditQuery(endpoint=…, since=…,
  limit=50))`) on the full table.

    python -m bench audit [--quick | --full] [--rows N] [--sqlite-rows N] [--day-rows N]
                          [--no-postgres]

The default run (250,000 rows on PostgreSQL, 100,000 on SQLite) stays near 3 minutes;
`--full` is the seven-year measurement (1,000,000 rows on both).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.common import report
from bot.store.audit_canon import CURRENT
from bot.store.db import make_engine, upgrade
from bot.store.sql_store import GENESIS, SqlStore, chain_hash
from bot.store.tables import AuditRow
from commands.audit import RETENTION, Auditor
from commands.ports import AuditEvent, AuditQuery
from tests.support.pg import migrated_schema, postgres_problem

PG_URL = os.environ.get("AIOPS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ENDPOINTS = [f"endpoint-{i:02d}" for i in range(20)]
ENVS = ("dev", "staging", "prod")
ACTIONS = (
    "command",
    "plan",
    "approval_requested",
    "decision",
    "execution_started",
    "execution_finished",
    "digest_posted",
)
PEOPLE = ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "bot", "scheduler")
YEARS = 7
COLUMNS = (
    "at",
    "actor_id",
    "action",
    "environment",
    "target",
    "parameters",
    "justification",
    "outcome",
    "change_id",
    "request_id",
    "retain_until",
    "prev_hash",
    "hash",
    "chain_version",
)


# --- databases -------------------------------------------------------------------------


@contextmanager
def sqlite_db() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="aiops-bench-audit-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


# --- append ----------------------------------------------------------------------------


def append_rate(engine: Engine, rows: int, writers: int) -> float:
    """Rows/s through `Auditor.record`, `writers` threads sharing `rows` between them."""
    auditor = Auditor(SqlStore(engine), lambda: datetime.now(UTC))
    per = max(1, rows // writers)

    def work(w: int) -> None:
        for i in range(per):
            auditor.record(
                "command",
                PEOPLE[(w + i) % 4],
                "ok",
                target=ENDPOINTS[i % len(ENDPOINTS)],
                environment=ENVS[i % 3],
                parameters={
                    "command": "/aiops",
                    "text": f"status {ENDPOINTS[i % 20]}",
                    "channel": "C0OPS",
                },
                request_id=f"bench-{w}-{i}",
            )

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * writers / (time.perf_counter() - start)


# --- bulk ------------------------------------------------------------------------------


def head(engine: Engine) -> str:
    with engine.connect() as conn:
        last = conn.execute(text("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")).first()
    return str(last[0]) if last else GENESIS


def generate(
    n: int, start: datetime, end: datetime, prev: str, seed: int = 0
) -> list[tuple[Any, ...]]:
    """n chained rows, evenly spread from `start` to `end`, continuing after `prev`."""
    step = (end - start) / max(1, n)
    out: list[tuple[Any, ...]] = []
    for i in range(n):
        k = i + seed
        at = start + step * i
        target = ENDPOINTS[k % len(ENDPOINTS)] if k % 7 else None
        event = AuditEvent(
            action=ACTIONS[k % len(ACTIONS)],
            actor_id=PEOPLE[k % len(PEOPLE)],
            outcome="ok" if k % 11 else "refused: not allowed",
            at=at,
            environment=ENVS[k % 3] if target else None,
            target=target,
            parameters={"command": "/aiops", "text": f"status {target or ''}", "n": k},
            justification="bench" if k % 5 == 0 else None,
            change_id=f"CHG-{k // 40 + 1}" if k % 3 == 0 else None,
            request_id=f"req-{k}",
            retain_until=at + RETENTION,
        )
        h = chain_hash(prev, event)
        out.append(
            (
                at,
                event.actor_id,
                event.action,
                event.environment,
                event.target,
                event.parameters,
                event.justification,
                event.outcome,
                event.change_id,
                event.request_id,
                event.retain_until,
                prev,
                h,
                CURRENT,
            )
        )
        prev = h
    return out


def bulk_insert(engine: Engine, rows: list[tuple[Any, ...]], chunk: int = 50_000) -> None:
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cols = ", ".join(COLUMNS)
            with cur.copy(f"COPY audit_event ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row((*r[:5], json.dumps(r[5]), *r[6:]))
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as conn:
            conn.execute(text("ANALYZE audit_event"))
        return

    # The driver's executemany with values stored the way SQLAlchemy stores them on
    # SQLite (DateTime as `YYYY-MM-DD HH:MM:SS.ffffff`, JSON as text).
    def stored(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return (_sqlite_ts(r[0]), *r[1:5], json.dumps(r[5]), *r[6:10], _sqlite_ts(r[10]), *r[11:])

    columns, marks = ", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))
    sql = f"INSERT INTO audit_event ({columns}) VALUES ({marks})"  # noqa: S608 - constants
    for i in range(0, len(rows), chunk):
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, [stored(r) for r in rows[i : i + chunk]])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _sqlite_ts(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# --- verify ----------------------------------------------------------------------------


def _chain_walk(engine: Engine) -> dict[str, Any]:
    """The straightforward verifier (used when `bot.store.audit_chain` is not there)."""
    from sqlmodel import Session, col, select

    from bot.store.sql_store import _to_event

    expected, n = GENESIS, 0
    with Session(engine) as session:
        for row in session.exec(select(AuditRow).order_by(col(AuditRow.id))).yield_per(5000):
            event = _to_event(row)
            assert event.prev_hash == expected and chain_hash(expected, event) == event.hash
            expected = event.hash or ""
            n += 1
    return {"ok": True, "checked": n, "verifier": "chain walk (bench)"}


def verify(engine: Engine, full: bool) -> dict[str, Any]:
    try:
        from bot.store import audit_chain
    except ImportError:
        return _chain_walk(engine)
    res = audit_chain.verify(engine, from_checkpoint=not full)
    return {
        "ok": res.ok,
        "checked": res.checked,
        "verifier": "bot.store.audit_chain.verify",
        "message": res.message(),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --- queries ---------------------------------------------------------------------------


def query_times(engine: Engine, now: datetime, repeat: int = 15) -> dict[str, dict[str, Any]]:
    store = SqlStore(engine)
    day = timedelta(days=1)
    shapes = {
        "endpoint, since 24h": AuditQuery(endpoint=ENDPOINTS[3], since=now - day, limit=50),
        "endpoint, since 7d": AuditQuery(endpoint=ENDPOINTS[3], since=now - 7 * day, limit=50),
        "endpoint, since 365d": AuditQuery(endpoint=ENDPOINTS[3], since=now - 365 * day, limit=50),
        "all, since 24h": AuditQuery(since=now - day, limit=50),
        "unknown endpoint, since 24h": AuditQuery(endpoint="no-such", since=now - day, limit=50),
        "change=CHG-N": AuditQuery(change_id="CHG-12345", limit=50),
        "person, since 7d": AuditQuery(actor_id="U0BOB", since=now - 7 * day, limit=50),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, q in shapes.items():
        times = []
        found = 0
        for _ in range(repeat):
            dt, events = timed(lambda q=q: store.audit(q))  # type: ignore[misc]
            times.append(dt)
            found = len(events)
        out[name] = {
            "median_ms": round(statistics.median(times) * 1000, 2),
            "max_ms": round(max(times) * 1000, 2),
            "rows": found,
        }
    return out


# --- the run ---------------------------------------------------------------------------


def run_one(
    engine: Engine,
    rows: int,
    day_rows: int,
    appends: int,
    pregenerated: list[tuple[Any, ...]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"dialect": engine.dialect.name, "rows": rows}
    out["append_1_empty"] = round(append_rate(engine, appends, 1), 1)
    out["append_4_empty"] = round(append_rate(engine, appends, 4), 1)
    now = datetime.now(UTC)
    start = now - timedelta(days=365 * YEARS)
    prev = head(engine)
    gen_s, bulk = timed(
        lambda: (
            pregenerated
            if pregenerated is not None and pregenerated[0][11] == prev
            else generate(rows, start, now - timedelta(days=1), prev)
        )
    )
    out["generate_s"] = round(gen_s, 2)
    out["insert_s"] = round(timed(lambda: bulk_insert(engine, bulk))[0], 2)
    out["insert_rows_s"] = round(rows / out["insert_s"], 0) if out["insert_s"] else None
    dt, res = timed(lambda: verify(engine, full=True))
    out["verify_full_s"] = round(dt, 2)
    out["verify_full"] = res
    # one more day of rows, then the incremental verify from the checkpoint
    day = generate(day_rows, now - timedelta(days=1), now, head(engine), seed=rows)
    bulk_insert(engine, day)
    dt, res = timed(lambda: verify(engine, full=False))
    out["verify_day_s"] = round(dt, 3)
    out["verify_day"] = res
    out["queries"] = query_times(engine, now)
    out["append_1_full"] = round(append_rate(engine, appends, 1), 1)
    out["append_4_full"] = round(append_rate(engine, appends, 4), 1)
    return out


def run(
    rows: int = 1_000_000,
    day_rows: int = 2_000,
    appends: int = 400,
    postgres: bool = True,
    sqlite_rows: int | None = None,
) -> dict[str, Any]:
    results = []
    with sqlite_db() as engine:
        results.append(run_one(engine, sqlite_rows or rows, day_rows, appends))
    problem = postgres_problem(PG_URL) if postgres else "skipped (--no-postgres)"
    if problem is None:
        with migrated_schema(PG_URL, "bench") as engine:
            results.append(run_one(engine, rows, day_rows, appends))
    return {"results": results, "postgres": problem or "available"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench audit", description=__doc__)
    p.add_argument("--quick", action="store_true", help="50,000 rows (SQLite 20,000)")
    p.add_argument(
        "--full", action="store_true", help="1,000,000 rows on both (about 3-4 min on 2 cores)"
    )
    p.add_argument("--rows", type=int)
    p.add_argument("--day-rows", type=int, default=2_000, help="rows in the incremental day")
    p.add_argument("--appends", type=int, help="rows per append-rate measurement")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument(
        "--sqlite-rows",
        type=int,
        help="rows on SQLite (default 100,000: generating and loading the rows is the slow"
        " part; pass 1000000 for the full measurement)",
    )
    args = p.parse_args(argv)
    # The default keeps the run near 3 minutes on 2 cores: generating the chained rows in
    # Python (about 80 µs a row) and loading them dominate; the verifier now takes about
    # 5-10 µs a row.
    rows = args.rows or (1_000_000 if args.full else 50_000 if args.quick else 250_000)
    appends = args.appends or (200 if args.quick else 400)
    sqlite_rows = args.sqlite_rows or (
        rows if args.full or args.rows else 20_000 if args.quick else 100_000
    )
    out = run(rows, args.day_rows, appends, not args.no_postgres, sqlite_rows)
    table_rows = []
    for r in out["results"]:
        table_rows.append(
            [
                r["dialect"],
                r["rows"],
                r["append_1_empty"],
                r["append_4_empty"],
                r["append_1_full"],
                r["append_4_full"],
                r["insert_rows_s"],
                r["verify_full_s"],
                r["verify_day_s"],
            ]
        )
    report(
        "audit",
        "Audit: append rows/s (empty table, then full), bulk insert, verify (s)",
        [
            "db",
            "rows",
            "append 1w",
            "append 4w",
            "append 1w full",
            "append 4w full",
            "bulk rows/s",
            "verify all (s)",
            f"verify +{args.day_rows:,} (s)",
        ],
        table_rows,
        out,
    )
    qrows = []
    for r in out["results"]:
        for name, q in r["queries"].items():
            qrows.append(
                [f"{r['dialect']} ({r['rows']:,})", name, q["median_ms"], q["max_ms"], q["rows"]]
            )
    print(
        "\n".join(
            [
                "",
                "### `/aiops audit` queries on the full table (limit 50)",
                "",
                "| db | query | median ms | max ms | rows |",
                "| --- | --- | --- | --- | --- |",
                *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in qrows),
            ]
        ),
        flush=True,
    )
    if out["postgres"] != "available":
        print(f"PostgreSQL: {out['postgres']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
