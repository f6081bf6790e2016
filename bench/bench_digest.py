"""Cost of the morning digest for 10, 100 and 1,000 endpoints, on the sandbox platform.

    .venv/bin/python -m bench digest [--quick] [--sizes 10,100,1000] [--repeat 5]

For each size: a config with that many production endpoints (5 % of them serving a
faulty version, so they breach and the chart is drawn), on a fresh SQLite file. Reports
the time to compose the digest (platform + store + rendering the reply; median of the
repeats), to render its Block Kit JSON and to draw the chart, the number of platform
calls and of SQL statements one digest makes, and the size of the message. The calls
must not grow with the number of endpoints: one query per metric, never one per endpoint.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, update  # noqa: E402

from bench.common import report  # noqa: E402
from bot.settings import BUNDLED_CONFIG, Settings  # noqa: E402
from bot.slack.blocks import render_message  # noqa: E402
from bot.store.db import make_engine, upgrade  # noqa: E402
from bot.store.sandbox_tables import SandboxDeployedModelRow  # noqa: E402
from bot.wiring import build_runtime  # noqa: E402
from commands.config import Config, load_config, parse_config  # noqa: E402
from commands.digests.render import compose  # noqa: E402
from commands.digests.schedule import DigestKind  # noqa: E402

# Tuesday 1 December 2026, 08:30 in Sydney
AT = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)


def config_with(n: int) -> Config:
    raw = copy.deepcopy(load_config(BUNDLED_CONFIG).raw)
    for i in range(n - 1):  # plus the example's own production endpoint
        raw["endpoints"][f"ep-{i:04d}"] = {
            "environment": "prod",
            "model": "gemma-3-1b-it",
            "min_replicas": 1,
            "max_replicas": 3,
        }
    return parse_config(raw, source=f"bench:{n}")


def measure(n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    engine = make_engine(f"sqlite:///{tmp / f'digest-{n}.db'}")
    upgrade(engine)
    config = config_with(n)
    rt = build_runtime(Settings(data_dir=tmp), config=config, engine=engine, clock=lambda: AT)
    faulty = sorted(config.endpoints)[::20]  # 5 %: they breach
    with engine.begin() as conn:
        conn.execute(
            update(SandboxDeployedModelRow)
            .where(SandboxDeployedModelRow.endpoint.in_(faulty))  # type: ignore[attr-defined]
            .values(version="1.3.0-rc1")
        )
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    compose(rt, DigestKind.MORNING, "prod")  # warm-up: imports, caches
    times, calls, sql = [], [], []
    digest = None
    for _ in range(repeat):
        before_calls, before_sql = rt.platform.calls, statements  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        digest = compose(rt, DigestKind.MORNING, "prod")
        times.append(time.perf_counter() - t0)
        calls.append(rt.platform.calls - before_calls)  # type: ignore[attr-defined]
        sql.append(statements - before_sql)
    assert digest is not None
    t0 = time.perf_counter()
    message = render_message(digest.reply)
    render_ms = (time.perf_counter() - t0) * 1000
    chart_ms = float("nan")
    if digest.chart is not None:
        from bot.charts import render

        t0 = time.perf_counter()
        render(digest.chart)
        chart_ms = (time.perf_counter() - t0) * 1000
    status = _status_pages(rt)
    engine.dispose()
    return {
        **status,
        "endpoints": n,
        "breaching": digest.counts["breaching"],
        "compose_ms": round(statistics.median(times) * 1000, 1),
        "render_ms": round(render_ms, 2),
        "chart_ms": round(chart_ms, 1),
        "platform_calls": max(calls),
        "sql_statements": max(sql),
        "blocks": len(message["blocks"]),
        "bytes": len(str(message).encode()),
    }


# Slack's limits for a message (chat.postMessage / response_url): 50 blocks, 3,000
# characters in a section's text, 40,000 in the message's fallback text.
SLACK_BLOCKS, SLACK_SECTION, SLACK_TEXT = 50, 3000, 40_000


def _status_pages(rt: Any) -> dict[str, Any]:
    """`/aiops status` at this size: its first page, rendered as Slack receives it, and
    whether every page is within Slack's limits (blocks, section text, fallback text)."""
    from commands.model import Actor, Invocation
    from commands.service import Service

    service = Service(rt)
    page, pages, worst_blocks, worst_section, within = 1, 0, 0, 0, True
    t0 = time.perf_counter()
    first_ms = 0.0
    while True:
        text = "status" if page == 1 else f"status page={page}"
        reply = service.handle(Invocation(Actor("U0DAVE"), "/aiops", text))
        message = render_message(reply)
        if page == 1:
            first_ms = (time.perf_counter() - t0) * 1000
        pages += 1
        sections = [
            len(b.get("text", {}).get("text", "")) for b in message["blocks"] if "text" in b
        ]
        worst_blocks = max(worst_blocks, len(message["blocks"]))
        worst_section = max([worst_section, *sections])
        within = within and (
            len(message["blocks"]) <= SLACK_BLOCKS
            and max(sections, default=0) <= SLACK_SECTION
            and len(message["text"]) <= SLACK_TEXT
        )
        if not reply.ok or f"page={page + 1}" not in str(message) or pages >= 200:
            break
        page += 1
    return {
        "status_ms": round(first_ms, 1),
        "status_pages": pages,
        "status_max_blocks": worst_blocks,
        "status_max_section": worst_section,
        "status_within_limits": within,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench digest", description=__doc__)
    p.add_argument("--quick", action="store_true", help="3 repeats instead of 5")
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--repeat", type=int)
    args = p.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as d:
        results = [measure(n, repeat, Path(d)) for n in sizes]
    headers = list(results[0])
    report(
        "digest",
        f"Morning digest on the sandbox (median of {repeat})",
        headers,
        [[r[h] for h in headers] for r in results],
        {
            "results": results,
            "calls_constant": len({r["platform_calls"] for r in results}) == 1,
            "sql_constant": len({r["sql_statements"] for r in results}) == 1,
            "status_within_limits": all(r["status_within_limits"] for r in results),
        },
    )
    ok = len({r["platform_calls"] for r in results}) == 1
    return 0 if ok and all(r["status_within_limits"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
