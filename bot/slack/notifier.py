"""Delivers the domain's posts through the Slack Web API (from worker threads), and says
when one did not arrive, so the domain never tells someone a card is where it is not.
Republishes people's Home tabs (views.publish) when the domain says what they show moved."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.slack.blocks import render_home, render_message
from bot.slack.groups import SlackUserGroups
from commands.incidents.ports import NewChannel
from commands.messages import Post, Reply
from commands.ports import CanaryChart, Chart, Delivery, MessageRef

log = logging.getLogger(__name__)

# Builds the Home tabs of some people (Slack user ids) at once, each with the answer to
# their last click there on top if any: `commands.reports.home.home_views`, bound to the
# runtime by the edge (`bot.slack.home.attach_home`).
HomeViews = Callable[[Sequence[str], Mapping[str, Reply]], Mapping[str, Reply]]
MAX_NOTES = 1000  # people whose last click's answer is kept for their Home tab


class SlackNotifier:
    def __init__(self, client: WebClient, homes: HomeViews | None = None) -> None:
        self.client = client
        self.homes = homes
        self._stale: set[str] = set()  # people whose Home tab waits to be republished
        self._notes: dict[str, Reply] = {}  # the answer to each person's last click there
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

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
            from bot.canary_chart import render as render_canary

            png = render_canary(chart)
        else:
            from bot.charts import render

            png = render(chart)
        try:
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=png,
                filename=chart.filename,
                title=chart.title,
                initial_comment=comment,
                alt_txt=chart.title,
            )
        except (SlackApiError, SlackRequestError) as exc:
            log.error("chart upload to %s failed: %s", channel, exc)
            return False
        except Exception as exc:
            log.error("chart upload to %s failed: %s", channel, type(exc).__name__)
            return False
        return True

    def attach_file(
        self, channel: str, thread_ts: str, filename: str, content: str, title: str, comment: str
    ) -> bool:
        """Upload a text file into a thread (`commands.ports.FileAttacher`: an incident's
        review draft), through `files_upload_v2` as the charts are (scope `files:write`)."""
        try:
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=content,
                filename=filename,
                title=title,
                initial_comment=comment,
            )
        except (SlackApiError, SlackRequestError) as exc:
            log.error("file upload to %s failed: %s", channel, exc)
            return False
        except OSError as exc:  # connection errors the retries did not get past
            log.error(
                "file upload to %s failed: slack unreachable (%s)", channel, type(exc).__name__
            )
            return False
        except Exception as exc:
            # e.g. `files.getUploadURLExternal` answering ok without `upload_url`: slack_sdk
            # then fails inside its upload step with whatever urllib raises for no URL
            log.error(
                "file upload to %s failed: an unexpected answer from Slack (%s)",
                channel,
                type(exc).__name__,
            )
            return False
        return True

    # --- a channel of its own (an incident's) ------------------------------------------

    def create_channel(self, name: str, members: Sequence[str]) -> NewChannel:
        """`commands.incidents.ports.ChannelMaker`: `conversations.create` (a public
        channel; the bot that makes it is in it), `name-2`… up to `name-5` while Slack says
        `name_taken`, then `conversations.invite` for `members` (scope `channels:manage`
        for both). An invitation Slack refuses is logged and left out: the channel stands."""
        error = "name_taken"
        for n in range(1, 6):
            candidate = name if n == 1 else f"{name[:76]}-{n}"
            try:
                resp = self.client.conversations_create(name=candidate, is_private=False)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or f"http_{exc.response.status_code}")
                if error == "name_taken":
                    continue
                break
            except OSError as exc:
                error = "unreachable"
                log.error("slack unreachable creating a channel: %s", type(exc).__name__)
                break
            channel = resp.get("channel") or {}
            made = NewChannel(name=str(channel.get("name") or candidate), id=str(channel["id"]))
            users = [m for m in members if m.startswith(("U", "W"))]
            if users:
                try:
                    self.client.conversations_invite(channel=made.id or "", users=",".join(users))
                except SlackApiError as exc:
                    log.warning(
                        "could not invite %d person(s) to %s: %s",
                        len(users),
                        made.id,
                        exc.response.get("error"),
                    )
                except OSError as exc:
                    log.warning("slack unreachable inviting to %s: %s", made.id, type(exc).__name__)
            return made
        log.error("conversations.create %s failed: %s", name, error)
        return NewChannel(name=name, error=error)

    # --- the Home tab ------------------------------------------------------------------

    def publish_home(self, user_id: str, reply: Reply) -> bool:
        """Publish `reply` as this person's Home tab (rendered, so masked, here); False
        when Slack refused it (logged)."""
        try:
            self.client.views_publish(user_id=user_id, view=render_home(reply))
        except SlackApiError as exc:
            log.error("views.publish for %s failed: %s", user_id, exc.response.get("error"))
            return False
        except OSError as exc:
            log.error("slack unreachable publishing a Home tab: %s", type(exc).__name__)
            return False
        return True

    def show_home(self, user_id: str, note: Reply | None = None) -> None:
        """Republish this person's Home tab: after a click there, with its answer (`note`)
        on top, kept there by later refreshes from this process until the tab is opened
        again (`note` None). On the refresh thread, after any refresh already asked for,
        so a refresh the click itself caused never hides its answer."""
        with self._lock:
            self._notes.pop(user_id, None)
            if note is not None:
                self._notes[user_id] = note
                while len(self._notes) > MAX_NOTES:
                    self._notes.pop(next(iter(self._notes)))
        self.refresh_home([user_id])

    def refresh_home(self, people: Sequence[str]) -> None:
        """`commands.ports.Notifier.refresh_home`: on a thread of its own, so the change
        that moved never waits for the platform reads a Home tab makes. Asks that arrive
        while a refresh runs are gathered into the next one (a change approved, started
        and finished in a few seconds rebuilds each tab once or twice, not three times)."""
        if self.homes is None:
            return
        with self._lock:
            self._stale.update(p for p in people if p)
            if self._refresher is not None:
                return  # the running refresher takes them next
            self._refresher = threading.Thread(target=self._refresh, name="aiops-home", daemon=True)
            self._refresher.start()

    def wait_homes(self, timeout: float = 30.0) -> bool:
        """Until no refresh is running or waiting (tests, and a process that stops)."""
        with self._lock:
            thread = self._refresher
        if thread is not None:
            thread.join(timeout)
        return not thread or not thread.is_alive()

    def _refresh(self) -> None:
        while True:
            with self._lock:
                wanted, self._stale = self._stale, set()
                if not wanted:
                    self._refresher = None
                    return
                notes = dict(self._notes)
            try:
                homes = self.homes
                assert homes is not None
                for user_id, reply in homes(self._people(wanted), notes).items():
                    self.publish_home(user_id, reply)
            except Exception:  # never the domain's problem: the next change refreshes again
                log.exception("could not refresh %d Home tab(s)", len(wanted))

    def _people(self, wanted: set[str]) -> list[str]:
        """Slack user ids: user groups (`S…`) read as their members, now."""
        groups = SlackUserGroups(self.client)
        out: set[str] = set()
        for who in wanted:
            if who.startswith("S"):
                out |= groups(who)
            elif who.startswith(("U", "W")):
                out.add(who)
        return sorted(out)
