"""Test helpers: a controllable clock, a runtime on a real database, a Slack stub."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine

from bot.settings import BUNDLED_CONFIG, Settings
from bot.wiring import build_runtime
from commands.config import Config, SandboxSettings, load_config
from commands.model import Actor, EndpointHealth, Invocation
from commands.ports import Notifier
from commands.runtime import NullNotifier, Runtime
from commands.service import Service

ALICE = Actor("U0ALICE", "alice")
BOB = Actor("U0BOB", "bob")
CAROL = Actor("U0CAROL", "carol")
DAVE = Actor("U0DAVE", "dave")


class FakeClock:
    """Time that moves only when told to (or when the executor 'sleeps')."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 10:00 in Sydney
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float = 0, **kw: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds, **kw)


class Stopped(BaseException):
    """A worker's process ends here (not an Exception: nothing in the bot may catch it)."""


class DiesAfter:
    """A platform whose process dies (`Stopped`) right after `method` reached the platform:
    the call took effect, nothing after it ran."""

    def __init__(self, inner: Any, method: str) -> None:
        self.inner = inner
        self.method = method

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            attr(*args, **kw)
            raise Stopped

        return call


def example_config(**sandbox: Any) -> Config:
    config = load_config(BUNDLED_CONFIG)
    if sandbox:
        config = replace(config, sandbox=SandboxSettings(**sandbox))
    return config


def make_runtime(
    engine: Engine,
    clock: FakeClock,
    notifier: Notifier | None = None,
    config: Config | None = None,
) -> Runtime:
    rt = build_runtime(
        Settings(),
        notifier or NullNotifier(),
        config=config or example_config(),
        engine=engine,
        clock=clock,
    )
    rt.poll_seconds = 1.0
    rt.sleep = lambda s: clock.advance(s)  # polling moves fake time, never wall time
    return rt


@dataclass
class Bot:
    """A service plus helpers to type commands as a person."""

    rt: Runtime
    clock: FakeClock
    service: Service = field(init=False)

    def __post_init__(self) -> None:
        self.service = Service(self.rt)

    def run(self, actor: Actor, line: str):  # type: ignore[no-untyped-def]
        command, _, text = line.partition(" ")
        reply = self.service.handle(Invocation(actor, command, text, channel_id="C0TEST"))
        self.rt.background.wait_idle(30)
        return reply

    def change(self, change_id: str):  # type: ignore[no-untyped-def]
        return self.rt.store.get_change(change_id)

    def split(self, slug: str) -> dict[str, str | int]:
        state = self.rt.platform.endpoint_state(self.rt.config.endpoints[slug])
        return {d.version.version: state.traffic.get(d.id, 0) for d in state.deployed}


def text_of(reply: Any) -> str:
    from bot.slack.blocks import render_message

    return json.dumps(render_message(reply))


# --- a local stand-in for Slack's Web API and response_url ------------------------------


@dataclass
class Call:
    method: str  # `chat.postMessage`, or `response_url` for posts to a response URL
    body: dict[str, Any]
    at: float
    path: str = ""


class SlackStub:
    """Records every Web API call and response_url post; answers like Slack does."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._ts = 1000
        self.fail: dict[str, str] = {}  # method → Slack error code to answer with
        self.groups: dict[str, list[str]] = {}  # user-group id → member ids (usergroups.*)
        self.channels: dict[str, str] = {}  # channel name → id (conversations.create)
        self.answers: dict[str, dict[str, Any]] = {}  # method → a canned answer
        # method (or `response_url`) → how many more calls are answered HTTP 429 with
        # `Retry-After: 1`, as Slack does when a caller goes too fast; those calls land in
        # `rate_limited`, not `calls`.
        self.rate_limit: dict[str, int] = {}
        self.rate_limited: list[Call] = []
        stub = self

        def too_many(handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
            if not stub.limited(method, path):
                return False
            data = json.dumps({"ok": False, "error": "ratelimited"}).encode()
            handler.send_response(429)
            handler.send_header("retry-after", "1")
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return True

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # slack_sdk sends a few read methods as GET
                path, _, query = self.path.strip("/").partition("?")
                body = {k: v[0] for k, v in parse_qs(query).items()}
                method = path.removeprefix("api/")
                if too_many(self, method, path):
                    return
                data = json.dumps(stub.record(method, body, path)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data_in = self.rfile.read(length)
                path, _, query = self.path.strip("/").partition("?")
                if path.startswith("upload/"):  # files_upload_v2's byte upload
                    stub.record("file_upload", {"data": data_in}, path)
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"OK")
                    return
                raw = data_in.decode()
                ctype = self.headers.get("content-type", "")
                if "json" in ctype:
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                    for key in ("blocks",):
                        if isinstance(body.get(key), str):
                            body[key] = json.loads(body[key])
                body |= {k: v[0] for k, v in parse_qs(query).items()}  # `params=` calls
                method = path.removeprefix("api/") if path.startswith("api/") else "response_url"
                if too_many(self, method, path):
                    return
                answer = stub.record(method, body, path)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def limited(self, method: str, path: str = "") -> bool:
        """Whether this call is answered 429 (`rate_limit`); counts it down if so."""
        with self._lock:
            left = self.rate_limit.get(method, 0)
            if left <= 0:
                return False
            self.rate_limit[method] = left - 1
            self.rate_limited.append(Call(method, {}, time.monotonic(), path))
            return True

    def record(self, method: str, body: dict[str, Any], path: str = "") -> dict[str, Any]:
        with self._lock:
            self.calls.append(Call(method, body, time.monotonic(), path))
            if method in self.fail:
                return {"ok": False, "error": self.fail[method]}
            if method in self.answers:
                return self.answers[method]
            if method == "auth.test":
                return {
                    "ok": True,
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                    "team_id": "T0AIOPS",
                    "team": "lender",
                }
            if method == "usergroups.users.list":
                group = str(body.get("usergroup", ""))
                if group not in self.groups:
                    return {"ok": False, "error": "no_such_subteam"}
                return {"ok": True, "users": list(self.groups[group])}
            if method == "conversations.create":
                name = str(body.get("name", ""))
                if name in self.channels:
                    return {"ok": False, "error": "name_taken"}
                self._ts += 1
                self.channels[name] = f"C0NEW{self._ts}"
                return {"ok": True, "channel": {"id": self.channels[name], "name": name}}
            if method in ("chat.postMessage", "chat.update"):
                self._ts += 1
                ts = body.get("ts") or f"{self._ts}.000100"
                return {"ok": True, "channel": body.get("channel"), "ts": ts}
            if method == "files.getUploadURLExternal":
                self._ts += 1
                file_id = f"F0{self._ts}"
                return {
                    "ok": True,
                    "upload_url": f"{self.url}/upload/{file_id}",
                    "file_id": file_id,
                }
            if method == "files.completeUploadExternal":
                files = json.loads(body.get("files") or "[]")
                return {
                    "ok": True,
                    "files": [{"id": f["id"], "title": f.get("title")} for f in files],
                }
            return {"ok": True}

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(
            "timed out waiting for Slack calls; got: " + ", ".join(c.method for c in self.calls)
        )

    def responded(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                c.body
                for c in self.calls
                if c.method == "response_url" and c.path == path.strip("/")
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def endpoint_health(slug: str, **kw: Any) -> EndpointHealth:
    """Healthy figures for one endpoint (P95 700 ms, 0.2 % errors, …); `kw` overrides."""
    figures: dict[str, Any] = dict(
        slug=slug,
        p95_latency_ms=700.0,
        error_rate=0.002,
        request_count=50_000,
        replicas=1,
        max_replicas=3,
        duty_cycle=0.4,
        drift=0.03,
        cost_today_usd=10.0,
    )
    return EndpointHealth(**(figures | kw))
