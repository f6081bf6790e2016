"""Item 1 (ack latency) and item 5 (memory).

Starts, each in its own process on loopback: a Slack stub (`bench.slack_stub`), the bot
(`aiops-bot serve` in HTTP mode, sandbox platform, SQLite in a temp dir, deploys that
take seconds) and two floors (`bench.floor_app`: a bare Bolt AsyncApp that only acks,
with Bolt's default `process_before_response=False`, the floor measured for a bare Bolt app, and with
`True`, as the bot acks: "floor-inline"); with `--postgres` a third, "floor-durable": the
inline floor that commits one row per request to the same database before it acks, the
least a durable ack costs there (issue #14's goal is set against floor-inline; the durable
floor says how much of the gap is the commit itself). Then fires a fixed number of signed slash commands and button clicks at 1, 8, 32 and 128
concurrent clients (aiohttp) at each and measures the time to the HTTP ack.

    python -m bench ack [--quick] [--count N] [--levels 1,8,32,128] [--operation-seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    PYTHON,
    REPO,
    cpu_seconds,
    report,
    rss_kb,
    stop,
    summary_ms,
    tree_memory_kb,
    wait_http,
)
from tests.support.processes import free_port
from tests.support.wire import BOT_TOKEN, SIGNING_SECRET, action_body, sign, slash_body

LEVELS = (1, 8, 32, 128)
BUNDLED = REPO / "bot" / "config" / "example.toml"

ALICE = ("U0ALICE", "alice")
BOB = ("U0BOB", "bob")
CAROL = ("U0CAROL", "carol")
DAVE = ("U0DAVE", "dave")

# What a busy morning looks like: reads, deploys and rollbacks on staging that run for
# seconds (or are refused while one holds the endpoint), refused commands and clicks.
MIX: list[tuple[str, Callable[[str], str]]] = [
    ("status", lambda r: slash_body("/aiops", "status", *ALICE, r)),
    ("status", lambda r: slash_body("/aiops", "status loan-assessor-stg", *BOB, r)),
    ("read", lambda r: slash_body("/aiops", "changes", *DAVE, r)),
    ("read", lambda r: slash_body("/aiops", "audit loan-assessor-stg since=24h", *DAVE, r)),
    (
        "deploy",
        lambda r: slash_body(
            "/deploy", 'loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="bench"', *ALICE, r
        ),
    ),
    ("deploy", lambda r: slash_body("/rollback", 'loan-assessor-stg reason="bench"', *ALICE, r)),
    (
        "refused",
        lambda r: slash_body("/deploy", "loan-assessor gemma-3-1b-it@1.2.1 canary=10", *DAVE, r),
    ),
    ("refused", lambda r: slash_body("/aiops", "frobnicate now", *ALICE, r)),
    ("click", lambda r: action_body("approve", "CHG-1", *BOB, r)),
    ("click", lambda r: action_body("reject", "CHG-1", *CAROL, r)),
]


@dataclass
class Level:
    target: str
    concurrency: int
    count: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    cpu_s: float = 0.0  # CPU the server used while this level ran (its work after acks too)

    def row(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "count": self.count,
            **summary_ms(self.latencies),
            "req_s": round(self.count / self.wall_s, 1) if self.wall_s else 0.0,
            "errors": self.errors,
            "cpu_ms_per_req": round(self.cpu_s * 1000 / self.count, 2),
            "over_1s": sum(1 for x in self.latencies if x > 1.0),
            "by_kind_p99_ms": {k: summary_ms(v)["p99_ms"] for k, v in self.by_kind.items()},
        }


async def fire(
    url: str, respond_url: str, concurrency: int, count: int, target: str, pid: int | None = None
) -> Level:
    level = Level(target, concurrency, count)
    bodies = [(MIX[i % len(MIX)][0], MIX[i % len(MIX)][1](respond_url)) for i in range(count)]
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(warm: bool) -> None:
            nonlocal next_index
            if warm:  # open this client's connection; not measured
                body = slash_body("/aiops", "help", *DAVE, respond_url)
                async with session.post(url, data=body, headers=sign(body)) as resp:
                    await resp.read()
                return
            while next_index < count:
                kind, body = bodies[next_index]
                next_index += 1
                headers = sign(body)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                dt = time.perf_counter() - t0
                level.latencies.append(dt)
                level.by_kind.setdefault(kind, []).append(dt)
                if not ok:
                    level.errors += 1

        await asyncio.gather(*(client(True) for _ in range(concurrency)))
        cpu0 = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter()
        await asyncio.gather(*(client(False) for _ in range(concurrency)))
        level.wall_s = time.perf_counter() - start
        level.cpu_s = cpu_seconds(pid) - cpu0 if pid else 0.0
    return level


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return dict(json.loads(resp.read()))


class Processes:
    """The stub, the bot and the floor, each in its own process; stopped on exit."""

    def __init__(self, workdir: Path, operation_seconds: float, database_url: str | None) -> None:
        self.workdir = workdir
        self.stub_port, self.bot_port = free_port(), free_port()
        self.floor_port, self.inline_port = free_port(), free_port()
        self.durable_port = free_port()
        self.database_url = database_url
        self.stub_url = f"http://127.0.0.1:{self.stub_port}"
        config = workdir / "config.toml"
        text = BUNDLED.read_text()
        text = text.replace("operation_seconds = 3", f"operation_seconds = {operation_seconds}")
        config.write_text(text)
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_BASE_URL": self.stub_url + "/api/",
            "AIOPS_DATA_DIR": str(workdir / "data"),
            "AIOPS_CONFIG": str(config),
            "HOST": "127.0.0.1",
            "PORT": str(self.bot_port),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DATABASE_URL", None)
        if database_url:  # PostgreSQL: commands go through the durable queue
            self.env["DATABASE_URL"] = database_url
        self.env.pop("SLACK_APP_TOKEN", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (self.workdir / log).open("wb")
        proc = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], dict[str, int]]:
        """Start every process; the bot, the floor and the pids of the other floors."""
        stub = self._start([PYTHON, "-m", "bench.slack_stub", str(self.stub_port)], "stub.log")
        wait_http(self.stub_url + "/healthz", proc=stub)
        bot = self._start([PYTHON, "-m", "bot.cli", "serve"], "bot.log")
        floor = self._start(
            [PYTHON, "-m", "bench.floor_app", str(self.floor_port), self.stub_url + "/api/"],
            "floor.log",
        )
        inline = self._start(
            [
                *(PYTHON, "-m", "bench.floor_app", str(self.inline_port)),
                *(self.stub_url + "/api/", "--inline"),
            ],
            "floor-inline.log",
        )
        wait_http(f"http://127.0.0.1:{self.bot_port}/healthz", 60, bot)
        wait_http(f"http://127.0.0.1:{self.floor_port}/healthz", 60, floor)
        wait_http(f"http://127.0.0.1:{self.inline_port}/healthz", 60, inline)
        pids = {"floor-inline": inline.pid}
        if self.database_url:
            from bot.serve.queue import conninfo

            durable = self._start(
                [
                    *(PYTHON, "-m", "bench.floor_app", str(self.durable_port)),
                    *(self.stub_url + "/api/", "--inline", "--durable"),
                    conninfo(self.database_url),
                ],
                "floor-durable.log",
            )
            wait_http(f"http://127.0.0.1:{self.durable_port}/healthz", 60, durable)
            pids["floor-durable"] = durable.pid
        return bot, floor, pids

    def stats(self) -> dict[str, Any]:
        return _get_json(self.stub_url + "/stats")

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _measure(
    procs: Processes, levels: tuple[int, ...], count: int, warmup: int, pids: dict[str, int]
) -> list[Level]:
    bot_url = f"http://127.0.0.1:{procs.bot_port}/slack/events"
    floor_url = f"http://127.0.0.1:{procs.floor_port}/slack/events"
    inline_url = f"http://127.0.0.1:{procs.inline_port}/slack/events"
    durable_url = f"http://127.0.0.1:{procs.durable_port}/slack/events"
    targets = [(floor_url, "floor"), (inline_url, "floor-inline")]
    if "floor-durable" in pids:
        targets.append((durable_url, "floor-durable"))
    targets.append((bot_url, "bot"))
    respond = procs.stub_url + "/respond"
    # A production change waiting for approval, so the clicks have something to decide.
    async with aiohttp.ClientSession() as session:
        body = slash_body(
            "/deploy",
            'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="bench"',
            *ALICE,
            respond,
        )
        async with session.post(bot_url, data=body, headers=sign(body)) as resp:
            await resp.read()
    for url, name in targets:
        await fire(url, respond, 4, warmup, name)
    results = []
    done: list[int] = []
    for c in levels:
        # Every level starts with the bot idle: the commands of the levels before it all
        # answered, so no level is measured against another's backlog in the workers.
        await _answered(procs, _bot_requests(tuple(done), count, warmup))
        for url, name in targets:
            results.append(await fire(url, respond, c, count, name, pids[name]))
        done.append(c)
    return results


async def _answered(procs: Processes, n: int, timeout: float = 120.0) -> None:
    """Wait (bounded) until the stub has seen `n` answers on response URLs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(procs.stats)).get("response_url", 0) >= n:
            return
        await asyncio.sleep(0.2)


def _bot_requests(levels: tuple[int, ...], count: int, warmup: int) -> int:
    """Requests the bot answers on a response_url: the pending deploy, warm-ups, the runs."""
    return 1 + warmup + 4 + sum(levels) + count * len(levels)


def run(
    levels: tuple[int, ...] = LEVELS,
    count: int = 400,
    operation_seconds: float = 5.0,
    warmup: int = 40,
    settle: float = 60.0,
    postgres: str | None = None,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="aiops-bench-ack-"))
        database_url = stack.enter_context(_pg_schema(postgres)) if postgres else None
        procs = Processes(Path(tmp), operation_seconds, database_url)
        try:
            bot, floor, floor_pids = procs.start()
            time.sleep(3.0)  # the workers start 1 s after the server answers
            idle = rss_kb(bot.pid)
            tree_idle = tree_memory_kb(bot.pid)
            floor_idle = rss_kb(floor.pid)
            levels_out = asyncio.run(
                _measure(
                    procs,
                    levels,
                    count,
                    warmup,
                    {"bot": bot.pid, "floor": floor.pid, **floor_pids},
                )
            )
            after = rss_kb(bot.pid)
            # Every bot command answers on its response_url: wait (bounded) until they have.
            sent = _bot_requests(levels, count, warmup)
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline and procs.stats().get("response_url", 0) < sent:
                time.sleep(0.2)
            stats = procs.stats()
            settled = rss_kb(bot.pid)
            tree_settled = tree_memory_kb(bot.pid)
            if bot.poll() is not None:
                raise RuntimeError("the bot exited:\n" + procs.log_tail("bot.log"))
        finally:
            procs.close()
    rows = [lv.row() for lv in levels_out]
    by = {(r["target"], r["concurrency"]): r for r in rows}
    for r in rows:
        if r["target"] == "bot":
            floor_p99 = by[("floor", r["concurrency"])]["p99_ms"]
            r["p99_vs_floor"] = round(r["p99_ms"] / floor_p99, 2) if floor_p99 else None
            inline_p99 = by[("floor-inline", r["concurrency"])]["p99_ms"]
            r["p99_vs_inline"] = round(r["p99_ms"] / inline_p99, 2) if inline_p99 else None
            durable = by.get(("floor-durable", r["concurrency"]))
            if durable and durable["p99_ms"]:
                r["p99_vs_durable"] = round(r["p99_ms"] / durable["p99_ms"], 2)
                durable["p99_vs_inline"] = round(durable["p99_ms"] / inline_p99, 2)
    memory = {
        "bot_idle_rss_mb": round(idle.get("VmRSS", 0) / 1024, 1),
        "bot_after_rss_mb": round(after.get("VmRSS", 0) / 1024, 1),
        "bot_settled_rss_mb": round(settled.get("VmRSS", 0) / 1024, 1),
        "bot_peak_rss_mb": round(settled.get("VmHWM", 0) / 1024, 1),
        "floor_idle_rss_mb": round(floor_idle.get("VmRSS", 0) / 1024, 1),
        # serve and every process under it (workers, scheduler, forkserver, tracker)
        "tree_processes": tree_idle["processes"],
        "tree_idle_rss_mb": round(tree_idle["Rss"] / 1024, 1),
        "tree_idle_pss_mb": round(tree_idle["Pss"] / 1024, 1),
        "tree_settled_rss_mb": round(tree_settled["Rss"] / 1024, 1),
        "tree_settled_pss_mb": round(tree_settled["Pss"] / 1024, 1),
    }
    return {
        "levels": rows,
        "memory": memory,
        "slack_calls": stats,
        "bot_responses_expected": _bot_requests(levels, count, warmup),
        "operation_seconds": operation_seconds,
        "database": "postgresql (durable queue)" if postgres else "sqlite (pipe-fed workers)",
    }


@contextlib.contextmanager
def _pg_schema(url: str) -> Iterator[str]:
    """A new schema on `url`, migrated to head; its URL (search_path in libpq's options)."""
    from sqlalchemy import text

    from tests.support.pg import migrated_schema

    with migrated_schema(url, "bench_ack") as engine:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        yield f"{url}?options=-csearch_path%3D{schema}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench ack", description=__doc__)
    p.add_argument("--quick", action="store_true", help="100 requests a level instead of 400")
    p.add_argument("--count", type=int, help="requests per level and target")
    p.add_argument("--levels", default=",".join(map(str, LEVELS)))
    p.add_argument("--operation-seconds", type=float, default=5.0)
    p.add_argument(
        "--postgres",
        nargs="?",
        const="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="serve on PostgreSQL (a new schema at this URL): commands go through the"
        " durable queue; default SQLite",
    )
    args = p.parse_args(argv)
    count = args.count or (100 if args.quick else 400)
    levels = tuple(int(x) for x in args.levels.split(","))
    out = run(
        levels,
        count,
        args.operation_seconds,
        warmup=20 if args.quick else 40,
        postgres=args.postgres,
    )
    rows = [
        [
            r["target"],
            r["concurrency"],
            r["count"],
            r["p50_ms"],
            r["p95_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["req_s"],
            r.get("p99_vs_floor", ""),
            r.get("p99_vs_inline", ""),
            r.get("p99_vs_durable", ""),
            r["cpu_ms_per_req"],
            r["errors"],
        ]
        for r in out["levels"]
    ]
    report(
        "ack",
        f"Ack latency (ms), {count} signed requests per level, deploys take"
        f" {args.operation_seconds:g} s, bot on {out['database']}",
        [
            "target",
            "clients",
            "n",
            "p50",
            "p95",
            "p99",
            "max",
            "req/s",
            "p99/floor",
            "p99/inline floor",
            "p99/durable floor",
            "cpu ms/req",
            "errors",
        ],
        rows,
        out,
    )
    m = out["memory"]
    report(
        "memory",
        "Resident memory of `aiops-bot serve` (MB, /proc/PID/status)",
        ["process", "idle", "after ack bench", "settled", "peak (VmHWM)"],
        [
            [
                "server (acks)",
                m["bot_idle_rss_mb"],
                m["bot_after_rss_mb"],
                m["bot_settled_rss_mb"],
                m["bot_peak_rss_mb"],
            ],
            [
                f"serve and its {m['tree_processes'] - 1} child processes, RSS",
                m["tree_idle_rss_mb"],
                "",
                m["tree_settled_rss_mb"],
                "",
            ],
            [
                "the same, PSS (shared pages split)",
                m["tree_idle_pss_mb"],
                "",
                m["tree_settled_pss_mb"],
                "",
            ],
            ["floor (bare Bolt app)", m["floor_idle_rss_mb"], "", "", ""],
        ],
        {"memory": m},
    )
    print(
        f"Slack stub saw {out['slack_calls']}; expected {out['bot_responses_expected']}"
        " response_url posts from the bot",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
