"""`aiops-bot digest morning|eod [--post]`: a digest in the terminal, or posted to Slack."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.settings import Settings
from bot.wiring import build_runtime
from commands.digests.gather import Digest
from commands.digests.post import environments, post
from commands.digests.render import chart_comment, compose
from commands.digests.schedule import DigestKind, digest_settings
from commands.model import SCHEDULER


def run_digest(settings: Settings, args: argparse.Namespace) -> int:
    kind = DigestKind(args.kind)
    if args.post:
        if not settings.slack_bot_token:
            print(
                "aiops-bot: --post needs SLACK_BOT_TOKEN (and the digest channel in [digests]);"
                " without --post the digest is printed here.",
                file=sys.stderr,
            )
            return 2
        from bot.slack.clients import web_client
        from bot.slack.notifier import SlackNotifier

        client = web_client(settings.slack_bot_token, settings.slack_api_base_url)
        rt = build_runtime(settings, SlackNotifier(client))
    else:
        rt = build_runtime(settings)
    config = digest_settings(rt.config)
    envs = [args.environment] if args.environment else environments(rt, config)
    for env in envs:
        if args.post:
            posted = post(rt, kind, env, actor=SCHEDULER, settings=config)
            print(f"posted the {kind.heading.lower()} for {posted.environment} to {posted.channel}")
            continue
        digest = compose(rt, kind, env, settings=config)
        if args.json:
            from bot.slack.blocks import render_message

            print(json.dumps(render_message(digest.reply)))
        else:
            from bot.cli.console import TextRenderer

            print(TextRenderer(rt.config).reply(digest.reply) + "\n")
        if args.chart:
            path = Path(args.chart)
            if len(envs) > 1:
                path = path.with_name(f"{path.stem}-{env}{path.suffix}")
            note = _chart(digest, path, enabled=config.chart)
            print(note, file=sys.stderr if args.json else sys.stdout)  # stdout stays JSON
    return 0


def _chart(digest: Digest, path: Path, *, enabled: bool) -> str:
    """Write the digest's chart to `path`, or say in words why there is none."""
    if digest.chart is not None:
        from bot.charts import render

        path.write_bytes(render(digest.chart))
        return f"chart: {path} ({chart_comment(digest.chart)})"
    if digest.kind is not DigestKind.MORNING:
        why = "only the morning digest has a chart"
    elif not enabled:
        why = "charts are off for this environment ([digests] chart = false)"
    elif digest.counts.get("breaching", 0) == 0:
        why = f"nothing is breaching in {digest.environment}, so there is nothing to chart"
    else:
        why = "the platform gave no metric history (see the digest's notes)"
    left = f"; the {path} already there is left as it was" if path.exists() else ""
    return f"chart: none written: {why}{left}."
