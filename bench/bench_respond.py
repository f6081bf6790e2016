"""`bench respond`: from Cloud Monitoring's webhook to the rollback's traffic restored — the
bot's own latency in the respond loop (issue 17; goal: under 2 s end to end).

Starts `aiops-bot serve` (HTTP mode, its default 2 command workers and the scheduler
process) on the sandbox platform with `[sandbox] operation_seconds = 0` (deploys and
undeploys take no time, so what is left is the bot), on PostgreSQL (a new schema: the
durable queue) and on SQLite (pipe-fed workers). Its Slack is the recording stub
(`tests.support.harness.SlackStub`, in this process: it stamps each call on arrival).

Each run, after a canary of 1.2.1 at 10 % on `loan-assessor` (prod) is deployed and
approved (not measured), measures from the moment the webhook request is sent:

1. webhook ack — `POST /alerts/cloud-monitoring` (the recorded open notice, a new incident
   id each run, HTTP Basic) answered 200: the notice is durable;
2. alert posted — the alert's message (`chat.postMessage`, with its buttons) arrives at
   the Slack stub;
3. Roll back acked — the alert's Roll back button, clicked (a signed `block_actions`, as
   alice) the moment the message arrived, is acked; its own latency is shown too;
4. traffic restored — the platform shows the stable version at 100 % again (the sandbox's
   tables, read every 5 ms);
5. rollback succeeded — the rollback change is `succeeded` (the canary undeployed).

End to end is 1 → 4. Nobody's reaction time is in it: the click leaves when the message
arrives. Reported per part: median, p90 and max over the runs (after one warm-up run),
then one JSON line.

    python -m bench respond [--quick] [--runs N] [--database postgres|sqlite|both]
                            [--poll-seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from bench.common import PYTHON, REPO, percentile, report, stop
from tests.support.alerts import JSON, PATH, TOKEN, basic, body, notification
from tests.support.chaos import chaos_config
from tests.support.harness import SlackStub
from tests.support.processes import free_port
from tests.support.wire import BOT_TOKEN, SIGNING_SECRET, action_body, sign, slash_body

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENDPOINT = "loan-assessor"
STABLE, CANARY = "1.2.0", "1.2.1"
ALICE = ("U0ALICE", "alice")
BOB = ("U0BOB", "bob")
GOAL_S = 2.0
POLL = 0.005  # seconds between reads of the platform's state
WAIT = 60.0
PARTS = (
    ("ack", "webhook ack"),
    ("posted", "alert posted (from the webhook)"),
    ("click_ack", "Roll back click: its ack"),
    ("click_to_restored", "click → traffic restored"),
    ("restored", "end to end: webhook → traffic restored"),
    ("succeeded", "webhook → rollback succeeded"),
)


@dataclass
class Bot:
    """A served bot to measure: its URL, its database (read for the platform's state and
    the changes) and its Slack stub."""

    base: str
    engine: Engine
    stub: SlackStub
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def slack(self, payload: str) -> float:
        """A signed Slack request; the moment its ack arrived (it must be 200)."""
        headers = {"content-type": "application/x-www-form-urlencoded", **sign(payload)}
        resp = self.http.post(self.base + "/slack/events", content=payload, headers=headers)
        done = time.monotonic()
        if resp.status_code != 200:
            raise RuntimeError(f"Slack request answered {resp.status_code}: {resp.text[:200]}")
        return done

    def typed(self, command: str, line: str, who: tuple[str, str]) -> None:
        path = f"/r/typed-{len(self.stub.calls)}"
        self.slack(slash_body(command, line, *who, self.stub.url + path))
        self.stub.wait_for(lambda: bool(self.stub.responded(path)), WAIT)

    def until(self, what: str, check: Any, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(POLL)
        raise TimeoutError(f"{what}: not within {timeout:.0f} s")

    # the platform and the changes, as the database holds them -------------------------

    def traffic(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            split = conn.execute(
                text("SELECT traffic FROM sandbox_endpoint WHERE slug = :s"), {"s": ENDPOINT}
            ).scalar_one()
            versions = dict(
                conn.execute(
                    text("SELECT id, version FROM sandbox_deployed_model WHERE endpoint = :s"),
                    {"s": ENDPOINT},
                ).all()
            )
        split = json.loads(split) if isinstance(split, str) else split
        return {versions.get(i, i): int(p) for i, p in split.items() if int(p)}

    def last_change(self) -> tuple[str, str, str]:
        """The endpoint's newest change: (CHG-N, kind, state)."""
        with self.engine.connect() as conn:
            seq, kind, state = conn.execute(
                text(
                    'SELECT seq, kind, state FROM "change" WHERE endpoint = :e'
                    " ORDER BY seq DESC LIMIT 1"
                ),
                {"e": ENDPOINT},
            ).one()
        return f"CHG-{seq}", str(kind), str(state)

    def alert_posts(self) -> list[Any]:
        return [
            c
            for c in self.stub.of("chat.postMessage")
            if c.body.get("channel") == "C0OPS"
            and "incident.rollback" in json.dumps(c.body)
            and "incident.declare" in json.dumps(c.body)
        ]


def _rollback_value(post: Any) -> str:
    for block in post.body["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == "incident.rollback":
                return str(element["value"])
    raise RuntimeError("the alert's message has no Roll back button")


def prepare(bot: Bot) -> None:
    """A canary of 1.2.1 at 10 % on the production endpoint, approved and running."""
    bot.typed("/deploy", f'{ENDPOINT} gemma-3-1b-it@{CANARY} canary=10 reason="bench"', ALICE)
    change, _, _ = bot.last_change()
    bot.typed("/aiops", f"approve {change}", BOB)
    bot.until("the canary", lambda: bot.traffic() == {STABLE: 90, CANARY: 10})
    bot.until("the deploy", lambda: bot.last_change()[2] == "succeeded")


def one_run(bot: Bot, run: int) -> dict[str, float]:
    """One alert to traffic restored; each part in seconds (see the module)."""
    incident = f"0.bench{run:04d}{os.getpid()}"
    began = datetime.now(UTC) - timedelta(minutes=5)
    opened = body(notification("open", incident_id=incident, started_at=began))
    seen = len(bot.alert_posts())
    t0 = time.monotonic()
    resp = bot.http.post(
        bot.base + PATH, content=opened, headers={"content-type": "application/json", **basic()}
    )
    t_ack = time.monotonic()
    if resp.status_code != 200:
        raise RuntimeError(f"the webhook answered {resp.status_code}: {resp.text[:200]}")
    post = bot.until("the alert's message", lambda: bot.alert_posts()[seen:])[0]
    value = _rollback_value(post)
    t_click = time.monotonic()
    t_click_ack = bot.slack(
        action_body("incident.rollback", value, *ALICE, bot.stub.url + "/r/rb", "C0OPS")
    )
    t_restored = bot.until(
        "traffic restored", lambda: bot.traffic() == {STABLE: 100} and time.monotonic()
    )
    t_done = bot.until(
        "the rollback",
        lambda: bot.last_change()[1:] == ("rollback", "succeeded") and time.monotonic(),
    )
    closed = notification(
        "closed", incident_id=incident, started_at=began, ended_at=datetime.now(UTC)
    )
    bot.http.post(
        bot.base + PATH, content=body(closed), headers=JSON | basic()
    )  # tidy, not measured
    return {
        "ack": t_ack - t0,
        "posted": post.at - t0,
        "click_ack": t_click_ack - t_click,
        "click_to_restored": t_restored - t_click,
        "restored": t_restored - t0,
        "succeeded": t_done - t0,
    }


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per part: median, p90 and max in milliseconds."""
    out: dict[str, dict[str, float]] = {}
    for name, _ in PARTS:
        values = [r[name] for r in runs]
        out[name] = {
            "median_ms": round(percentile(values, 50) * 1000, 1),
            "p90_ms": round(percentile(values, 90) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
    return out


# ---------------------------------------------------------------------------- serving


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, Engine]]:
    from tests.support.pg import migrated_schema

    with migrated_schema(PG, "bench_respond") as engine:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        yield f"{PG}?options=-csearch_path%3D{schema}", engine


@contextlib.contextmanager
def serving(
    database: str, work: Path, stub: SlackStub, poll_seconds: float | None
) -> Iterator[Bot]:
    """`aiops-bot serve` on `database` (`postgres` / `sqlite`); stopped on exit."""
    config = chaos_config(work / "respond.toml", 0, 0)  # no digests; canaries ask
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL=stub.api_url,
        AIOPS_CONFIG=str(config),
        AIOPS_DATA_DIR=str(work / "data"),
        AIOPS_PII_KEY="bench-respond-key",
        AIOPS_ALERT_WEBHOOK_TOKEN=TOKEN,
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
    )
    if poll_seconds is not None:
        env["AIOPS_POLL_SECONDS"] = str(poll_seconds)
    with contextlib.ExitStack() as stack:
        if database == "postgres":
            url, engine = stack.enter_context(_postgres())
            env["DATABASE_URL"] = url
        else:
            (work / "data").mkdir(parents=True, exist_ok=True)
            engine = create_engine(f"sqlite:///{work / 'data' / 'aiops-bot.db'}")
            stack.callback(engine.dispose)
        log = (work / f"serve-{database}.log").open("wb")
        stack.callback(log.close)
        proc = subprocess.Popen(
            [PYTHON, "-m", "bot.cli", "serve"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        stack.callback(stop, proc, 30.0)
        bot = Bot(f"http://127.0.0.1:{port}", engine, stub)
        stack.callback(bot.http.close)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited; see {work / f'serve-{database}.log'}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = bot.http.get(bot.base + "/healthz").json()
                return bool(health.get("startup") == "done" and health.get("workers") == "2/2")
            return False

        bot.until("serve", ready, 120)
        yield bot


def measure(
    database: str, runs: int, warmup: int = 1, poll_seconds: float | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aiops-bench-respond-") as tmp:
        stub = SlackStub()
        try:
            with serving(database, Path(tmp), stub, poll_seconds) as bot:
                samples = []
                for n in range(warmup + runs):
                    prepare(bot)
                    sample = one_run(bot, n)
                    if n >= warmup:
                        samples.append(sample)
        finally:
            stub.close()
    summary = summarise(samples)
    return {
        "database": database,
        "runs": runs,
        "poll_seconds": poll_seconds,
        "parts": summary,
        "goal_s": GOAL_S,
        "goal_met": summary["restored"]["p90_ms"] < GOAL_S * 1000,
        "samples": [{k: round(v * 1000, 1) for k, v in s.items()} for s in samples],
    }


def _postgres_available() -> bool:
    from tests.support.pg import postgres_problem

    return postgres_problem(PG) is None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench respond", description=__doc__)
    p.add_argument("--quick", action="store_true", help="5 runs instead of 20")
    p.add_argument("--runs", type=int)
    p.add_argument("--database", choices=("postgres", "sqlite", "both"), default="both")
    p.add_argument(
        "--poll-seconds",
        type=float,
        help="AIOPS_POLL_SECONDS for serve (default: the bot's own default)",
    )
    args = p.parse_args(argv)
    runs = args.runs or (5 if args.quick else 20)
    databases = ["postgres", "sqlite"] if args.database == "both" else [args.database]
    if "postgres" in databases and not _postgres_available():
        print(f"PostgreSQL at {PG} does not answer: skipped", flush=True)
        databases.remove("postgres")
    for database in databases:
        out = measure(database, runs, poll_seconds=args.poll_seconds)
        rows = [[label, *out["parts"][name].values()] for name, label in PARTS]
        title = f"Alert to rollback on {database}, {runs} runs (ms)"
        report("respond", title, ["part", "median", "p90", "max"], rows, out)
        p90 = out["parts"]["restored"]["p90_ms"]
        print(
            f"goal (end to end under {GOAL_S:g} s at p90): {'met' if out['goal_met'] else 'NOT met'}"
            f" ({p90:,.0f} ms)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
