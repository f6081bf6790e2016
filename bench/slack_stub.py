"""A stand-in for Slack's Web API and response URLs, run in its own process so that it
does not share an interpreter with the load generator: `python -m bench.slack_stub PORT`.
Answers like Slack (auth.test, chat.postMessage / chat.update with a ts, else ok);
`GET /stats` gives the number of calls per method."""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from urllib.parse import parse_qs

from aiohttp import web

calls: Counter[str] = Counter()
_ts = itertools.count(1000)


async def handle(request: web.Request) -> web.Response:
    path = request.path.strip("/")
    method = path.removeprefix("api/") if path.startswith("api/") else "response_url"
    calls[method] += 1
    if method == "auth.test":
        return web.json_response(
            {"ok": True, "user_id": "U0BOT", "bot_id": "B0BOT", "team_id": "T0AIOPS"}
        )
    if method in ("chat.postMessage", "chat.update"):
        raw = await request.text()
        if "json" in request.content_type:
            body = json.loads(raw or "{}")
        else:
            body = {k: v[0] for k, v in parse_qs(raw).items()}
        ts = body.get("ts") or f"{next(_ts)}.000100"
        return web.json_response({"ok": True, "channel": body.get("channel"), "ts": ts})
    await request.read()
    return web.json_response({"ok": True})


async def stats(_: web.Request) -> web.Response:
    return web.json_response(dict(calls))


def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/healthz", stats)
    app.router.add_route("POST", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
