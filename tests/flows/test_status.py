"""`/aiops status` with many endpoints: breaching ones first, then the rest worst-first, a
page at a time with "and N more"; at 1,000 endpoints every page fits Slack's limits,
checked by hand and by slack_sdk's own block models on the rendered message."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block as SdkBlock
from sqlalchemy import Engine

from bot.slack.blocks import render_message
from commands.config import Config, Endpoint, parse_config
from commands.model import EndpointHealth
from tests.support.harness import DAVE, Bot, FakeClock, example_config, make_runtime
from tests.support.harness import endpoint_health as figures


def with_endpoints(n: int) -> Config:
    raw = copy.deepcopy(example_config().raw)
    for i in range(n):
        raw["endpoints"][f"ep-{i:04d}"] = {"environment": "prod", "model": "gemma-3-1b-it"}
    return parse_config(raw, source="test")


class Figures:
    """The sandbox for everything but health, which the test sets; counts state reads."""

    name = "figures"

    def __init__(self, inner: Any, health: dict[str, EndpointHealth]) -> None:
        self.inner = inner
        self._health = health
        self.state_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        return {e.slug: self._health[e.slug] for e in endpoints if e.slug in self._health}

    def endpoint_state(self, endpoint: Endpoint) -> Any:
        self.state_reads += 1
        return self.inner.endpoint_state(endpoint)


def check_limits(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert len(blocks) <= 50
    assert len(message["text"]) <= 3000
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if "fields" in block:
            assert len(block["fields"]) <= 10
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
        SdkBlock.parse(block).validate_json()  # type: ignore[union-attr]
    assert "left out to fit Slack's limit" not in json.dumps(blocks), "a page must fit by itself"


def shown(message: dict[str, Any]) -> list[str]:
    """The endpoints a status message shows, in order."""
    out = []
    for block in message["blocks"]:
        text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
        if text.startswith((":red_circle: *", ":large_green_circle: *")):
            out.append(text.split("*")[1])
    return out


@pytest.fixture
def bot(sqlite_engine: Engine) -> Bot:
    config = with_endpoints(999)  # + loan-assessor, loan-assessor-stg = 1,001
    rt = make_runtime(sqlite_engine, FakeClock(), config=config)
    th = config.thresholds
    health = {s: figures(s, p95_latency_ms=500.0 + i % 300) for i, s in enumerate(config.endpoints)}
    health["ep-0500"] = figures("ep-0500", error_rate=0.05)  # 5× the error threshold: worst
    health["ep-0007"] = figures("ep-0007", p95_latency_ms=th.p95_latency_ms + 1)  # just over
    health["ep-0900"] = figures("ep-0900", drift=0.2)  # 2× the drift threshold
    health["ep-0042"] = figures("ep-0042", p95_latency_ms=th.p95_latency_ms)  # at: not over
    del health["ep-0998"]  # no figures: last
    rt.platform = Figures(rt.platform, health)  # type: ignore[assignment]
    return Bot(rt, rt.clock)  # type: ignore[arg-type]


def test_breaching_first_then_worst_first_and_n_more(bot: Bot) -> None:
    reply = bot.run(DAVE, "/aiops status")
    message = render_message(reply)
    check_limits(message)
    order = shown(message)
    assert order[:3] == ["ep-0500", "ep-0900", "ep-0007"]  # breaching, worst first
    assert order[3] == "ep-0042"  # at the threshold: the closest of the rest
    assert len(order) == 10
    out = json.dumps(message, ensure_ascii=False)
    assert "… and 991 more endpoint(s), 0 of them breaching" in out
    assert "`/aiops status page=2` (page 1 of 101)" in out
    assert "1001 endpoint(s), 3 breaching" in reply.text
    assert bot.rt.platform.state_reads == 10  # type: ignore[attr-defined]  # the page only


def test_every_page_fits_and_together_they_show_every_endpoint_once(bot: Bot) -> None:
    seen: list[str] = []
    for page in range(1, 102):
        message = render_message(bot.run(DAVE, f"/aiops status page={page}"))
        check_limits(message)
        seen += shown(message)
    assert sorted(seen) == sorted(bot.rt.config.endpoints)
    assert seen[-1] == "ep-0998"  # without figures: last
    assert "page 101 of 101: the last" in json.dumps(message)
    beyond = bot.run(DAVE, "/aiops status page=102")
    assert not beyond.ok and "101 page(s)" in beyond.text


def test_one_endpoint_is_one_page(bot: Bot) -> None:
    message = render_message(bot.run(DAVE, "/aiops status ep-0500"))
    check_limits(message)
    assert shown(message) == ["ep-0500"]
    assert "more endpoint" not in json.dumps(message)
