"""Delivers the domain's posts through the Slack Web API (from worker threads)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks import render_message
from commands.messages import Post
from commands.ports import CanaryChart, Chart, MessageRef

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post(self, post: Post) -> MessageRef | None:
        message = render_message(post.reply)
        try:
            if post.update and post.ts:
                resp = self.client.chat_update(channel=post.channel, ts=post.ts, **message)
            elif post.thread_ts:
                resp = self.client.chat_postMessage(
                    channel=post.channel, thread_ts=post.thread_ts, **message
                )
            else:
                resp = self.client.chat_postMessage(channel=post.channel, **message)
        except SlackApiError as exc:
            # The change's state is already in the database; a lost message is logged, not fatal.
            log.error(
                "slack %s failed for %s: %s",
                "update" if post.update else "post",
                post.change_id or post.channel,
                exc.response.get("error"),
            )
            return None
        channel = str(resp.get("channel") or post.channel)
        ts = str(resp.get("ts") or post.ts or "")
        return MessageRef(channel, ts) if ts else None

    def attach_chart(
        self, channel: str, thread_ts: str, chart: Chart | CanaryChart, comment: str
    ) -> bool:
        """Upload a digest's or a canary's chart (PNG) into its thread
        (`commands.ports.ChartAttacher`). Drawn here, in the worker or scheduler process that
        ran the command or check: the server that acks never imports a plotting library."""
        if isinstance(chart, CanaryChart):
            from bot.canary_chart import upload as upload_canary

            return upload_canary(self.client, channel, thread_ts, chart, comment)
        from bot.charts import upload

        return upload(self.client, channel, thread_ts, chart, comment)
