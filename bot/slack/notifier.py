"""Delivers the domain's posts through the Slack Web API (from worker threads), and says
when one did not arrive, so the domain never tells someone a card is where it is not."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks import render_message
from commands.messages import Post
from commands.ports import CanaryChart, Chart, Delivery, MessageRef

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def deliver(self, post: Post) -> Delivery:
        """Post or update through the Web API. The client retries rate limits and server
        errors (`bot.slack.clients`); what is left is Slack's final word, returned, not
        raised: `ok: false` (HTTP 200) with `not_in_channel`, `channel_not_found`,
        `is_archived`…, or `unreachable` when Slack could not be reached at all."""
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
            error = str(exc.response.get("error") or f"http_{exc.response.status_code}")
        except OSError as exc:  # connection errors the retries did not get past
            error = "unreachable"
            log.error("slack unreachable: %s", type(exc).__name__)
        else:
            channel = str(resp.get("channel") or post.channel)
            ts = str(resp.get("ts") or post.ts or "")
            return Delivery(MessageRef(channel, ts) if ts else None)
        # The change's state is already in the database: the caller decides who is told.
        log.error(
            "slack %s failed for %s: %s",
            "update" if post.update else "post",
            post.change_id or post.channel,
            error,
        )
        return Delivery(error=error)

    def post(self, post: Post) -> MessageRef | None:
        return self.deliver(post).ref

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
