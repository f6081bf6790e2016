"""Secret Manager reads retry like the other Google reads, and a failure is one clear line
naming the secret and the variable, never a value, never a traceback."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from bot.cli import main as cli
from bot.secrets import SecretError, read_retry, resolve_secrets

NAME = "projects/p1/secrets/slack-bot-token/versions/latest"
VALUE = "xoxb-very-secret-value"


class Fake:
    """Secret Manager's `:access` on loopback; `script` is the statuses to answer first
    (0: drop the connection), then 200 with the value."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.calls += 1
                status = fake.script.pop(0) if fake.script else 200
                if status == 0:
                    self.close_connection = True
                    self.connection.shutdown(2)  # no answer at all
                    return
                if status == 200:
                    data = {
                        "name": NAME,
                        "payload": {"data": base64.b64encode(VALUE.encode()).decode()},
                    }
                else:
                    data = {"error": {"code": status, "message": f"injected {status}"}}
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.server.shutdown()


FAST = read_retry(timeout=3.0).with_delay(initial=0.01, maximum=0.05)


def _env() -> dict[str, str]:
    return {"SLACK_BOT_TOKEN_SECRET": NAME}


def test_unavailable_and_dropped_connections_are_retried(fake: Fake) -> None:
    fake.script = [503, 0, 504]
    env = _env()
    assert resolve_secrets(env, session=requests.Session(), api=fake.url, retry=FAST) == [
        "SLACK_BOT_TOKEN"
    ]
    assert env["SLACK_BOT_TOKEN"] == VALUE and fake.calls == 4


def test_permission_denied_fails_at_once_in_one_line(fake: Fake) -> None:
    fake.script = [403]
    with pytest.raises(SecretError) as err:
        resolve_secrets(_env(), session=requests.Session(), api=fake.url, retry=FAST)
    message = str(err.value)
    assert fake.calls == 1  # not retried
    assert "\n" not in message and NAME in message and "SLACK_BOT_TOKEN" in message
    assert "HTTP 403" in message and "roles/secretmanager.secretAccessor" in message


def test_an_outage_longer_than_the_deadline_says_so(fake: Fake) -> None:
    fake.script = [503] * 1000
    short = read_retry(timeout=0.5).with_delay(initial=0.01, maximum=0.05)
    with pytest.raises(SecretError) as err:
        resolve_secrets(_env(), session=requests.Session(), api=fake.url, retry=short)
    message = str(err.value)
    assert "did not answer within 0.5 s" in message and "\n" not in message
    assert fake.calls > 2


def test_the_cli_prints_one_line_and_exits_2(
    fake: Fake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script = [404]
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN_SECRET", NAME)
    monkeypatch.setenv("AIOPS_SECRET_MANAGER_URL", fake.url)
    # no Google credentials here: give the session the CLI would have made
    monkeypatch.setattr("bot.secrets._session", requests.Session)
    assert cli.main(["manifest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aiops-bot: cannot read " + NAME)
    assert "HTTP 404" in err and VALUE not in err
