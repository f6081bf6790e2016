"""`aiops-bot serve` as it runs: a server that only acks, command workers and a scheduler
process. Driven from outside over HTTP with signed Slack requests; Slack's Web API and
response URLs are a local stub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.serve.scheduler_process import SchedulerProcess, SchedulerProcessError
from bot.serve.server import StartUp
from bot.settings import Settings
from tests.support.harness import SlackStub
from tests.support.processes import descendants
from tests.support.slack_wire import SIGNING_SECRET, free_port, sign, slash_body

REPO = Path(__file__).resolve().parents[2]


def serve_env(tmp_path: Path, stub: SlackStub, port: int, workers: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL=stub.api_url,
        AIOPS_DATA_DIR=str(tmp_path),
        AIOPS_COMMAND_WORKERS=workers,
        AIOPS_PII_KEY="test-key-shared-by-the-processes",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    return env


def wait_healthy(base: str, proc: subprocess.Popen[Any], timeout: float = 60) -> dict[str, Any]:
    """`/healthz` once the start-up work has ended (its state no longer `starting`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited with {proc.returncode}"
        try:
            body: dict[str, Any] = httpx.get(base + "/healthz", timeout=5).json()
            if body.get("startup") != "starting":
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("serve did not get ready")


def running(pids: set[int]) -> dict[int, str]:
    """Those still running (not zombies), with their command lines."""
    out = {}
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z":
            out[pid] = cmd[:120]
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_serve_acks_in_one_process_and_works_in_others(tmp_path: Path, stub: SlackStub) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=REPO,
        env=serve_env(tmp_path, stub, port, "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        health = wait_healthy(base, proc)
        # The workers are spawned a moment after the server first answers (the pool's
        # warm-up delay); on a busy machine start-up can finish before that.
        deadline = time.monotonic() + 60
        while health.get("workers") != "1/1" and time.monotonic() < deadline:
            time.sleep(0.2)
            health = httpx.get(base + "/healthz", timeout=5).json()
        assert health == {"ok": True, "platform": "sandbox", "startup": "done", "workers": "1/1"}

        def post(body: str) -> httpx.Response:
            headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
            return httpx.post(base + "/slack/events", content=body, headers=headers, timeout=10)

        # a command: acked by the server, run and answered by a worker
        assert post(slash_body("/aiops", "status", "U0DAVE", "dave", stub.url + "/r/s")).is_success
        stub.wait_for(lambda: bool(stub.responded("/r/s")), timeout=60)
        assert "loan-assessor" in str(stub.responded("/r/s")[0]["blocks"])
        # another workspace: refused at once, and audited (by a worker)
        other = slash_body("/aiops", "status", "U0EVE", "eve", stub.url + "/r/x", team_id="T0X")
        assert post(other).status_code == 403
        # a forged request never reaches a listener
        forged = {"content-type": "application/x-www-form-urlencoded"}
        forged.update(sign(other, secret="not-the-secret"))
        assert httpx.post(base + "/slack/events", content=other, headers=forged).status_code == 401

        engine = create_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            while True:
                actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_event"))]
                if "workspace_refused" in actions or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert "workspace_refused" in actions and "command" in actions
            # the scheduler process stored its digest jobs
            jobs = {r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs"))}
        engine.dispose()
        assert "digest:morning:prod" in jobs

        workers_and_scheduler = descendants(proc.pid)
        assert len(workers_and_scheduler) >= 3  # forkserver, the worker, the scheduler
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log = err.decode(errors="replace")
    assert proc.returncode == 0, log[-2000:]
    # the forged request is logged as an event, without what its sender wrote
    [forged_line] = [line for line in log.splitlines() if "signature detected" in line]
    assert "the request was refused (401), its body not logged" in forged_line
    assert "U0EVE" not in forged_line and "user_name" not in forged_line
    # the forkserver and multiprocessing's resource tracker leave when their pipe closes
    deadline = time.monotonic() + 15
    while (alive := running(workers_and_scheduler)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"processes left behind: {alive}"


def test_the_server_that_acks_loads_neither_store_nor_domain(tmp_path: Path) -> None:
    """With worker processes the server holds the config and the Bolt app only: its
    start-up and its event loop stay light (bench/README.md, start-up)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bot.settings import Settings\n"
        "from bot.serve.server import build_server\n"
        f"s = build_server(Settings(data_dir=Path({str(tmp_path)!r}), slack_bot_token='xoxb-t',"
        " slack_signing_secret='s'))\n"
        "assert s.pool is not None and s.pool.workers == 2\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.pop("DATABASE_URL", None)
    # A first start migrates the database (Alembic and the table models); a second is the
    # steady state, and what is measured.
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert {"slack_bolt.async_app", "commands.config", "sqlalchemy"} <= loaded
    heavy = {
        "commands.service",
        "commands.changes.execute",
        "bot.store.sql_store",
        "sqlmodel",
        "sqlalchemy.orm",
        "apscheduler",
        "alembic",
        "bot.platforms.sandbox",
        "matplotlib",  # the charts are drawn where the check or digest runs, never here
        "bot.canary_chart",
        "bot.charts",
    }
    assert not heavy & loaded, heavy & loaded


def test_a_scheduler_process_that_cannot_start_says_why(tmp_path: Path) -> None:
    process = SchedulerProcess(Settings(data_dir=tmp_path))  # no Slack token: it cannot
    with pytest.raises(SchedulerProcessError) as caught:
        process.start(timeout=60)
    assert caught.value.reason == "ServeError"
    assert not process.alive()
    startup = StartUp(process)  # and /healthz would say so
    startup.run()
    assert startup.state == "failed: ServeError"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process names from /proc")
def test_a_scheduler_process_that_dies_is_started_again(tmp_path: Path, stub: SlackStub) -> None:
    """Found by the chaos run (tests/edge/test_chaos.py): a killed scheduler process was
    never replaced, so its replica swept for stranded changes, watched canaries and kept
    house no more (its `/healthz` failing makes it unready, never restarted)."""
    settings = Settings(
        data_dir=tmp_path, slack_bot_token="xoxb-test", slack_api_base_url=stub.api_url
    )
    process = SchedulerProcess(settings, nice=0)
    process.start(timeout=120)
    try:
        first = process.pid()
        assert first is not None
        assert Path(f"/proc/{first}/comm").read_text().strip() == "aiops-scheduler"
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (process.restarts and process.alive()):
            time.sleep(0.05)
        assert process.restarts == 1 and process.alive()
        assert process.pid() != first
    finally:
        process.stop()
    assert not process.alive() and process.restarts == 1  # a stop is not a death


class Ended:
    """A background that started and then ended on its own (a dead scheduler process)."""

    def start(self) -> None:
        pass

    def alive(self) -> bool:
        return False

    def stop(self) -> None:
        pass


def test_healthz_state_when_the_background_has_died() -> None:
    startup = StartUp(Ended())
    assert startup.state == "starting"
    startup.run()
    assert startup.state == "stopped"
