"""The environment's Cloud Monitoring dashboard (Terraform's `dashboard_url`) is linked from
`/aiops status` and the digests, and nowhere when the config names none."""

from __future__ import annotations

import json
import tomllib

import pytest
from sqlalchemy import Engine

from bot.settings import BUNDLED_CONFIG
from bot.slack.blocks import render_message
from commands.config import ConfigError, parse_config
from commands.digests.render import compose
from commands.digests.schedule import DigestKind
from tests.support.harness import ALICE, Bot, FakeClock, make_runtime

URL = (
    "https://console.cloud.google.com/monitoring/dashboards/custom/abc123?project=lender-aiops-prod"
)


def _bot(engine: Engine, clock: FakeClock, url: str | None) -> Bot:
    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    if url is not None:
        raw["environments"]["prod"]["dashboard_url"] = url
    config = parse_config(raw, str(BUNDLED_CONFIG))
    return Bot(make_runtime(engine, clock, config=config), clock)


def test_status_and_digest_link_the_dashboard(sqlite_engine: Engine, clock: FakeClock) -> None:
    bot = _bot(sqlite_engine, clock, URL)
    status = json.dumps(render_message(bot.run(ALICE, "/aiops status")))
    assert f"<{URL}|prod dashboard>" in status
    assert "staging dashboard" not in status  # staging names none
    digest = compose(bot.rt, DigestKind.MORNING, "prod")
    assert f"<{URL}|dashboard>" in json.dumps(render_message(digest.reply))
    staging = compose(bot.rt, DigestKind.MORNING, "staging")
    assert "dashboard" not in json.dumps(render_message(staging.reply))


def test_no_dashboard_no_link(sqlite_engine: Engine, clock: FakeClock) -> None:
    bot = _bot(sqlite_engine, clock, None)
    assert "dashboard" not in json.dumps(render_message(bot.run(ALICE, "/aiops status")))


@pytest.mark.parametrize(
    "url", ["http://console.cloud.google.com/monitoring/dashboards/x", "https://evil.example/x"]
)
def test_a_dashboard_url_must_be_the_cloud_console(url: str) -> None:
    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    raw["environments"]["prod"]["dashboard_url"] = url
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, str(BUNDLED_CONFIG))
    assert "[environments.prod] dashboard_url" in str(refused.value)
