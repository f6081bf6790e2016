"""The bot's Home tab in Slack.

Opening it sends `app_home_opened`: the server that acks hands it on like a command (an
`Invocation` whose command is `HOME_OPENED`, text empty), and where commands run the
person's view is built (`commands.reports.home`) and published with the bot token
(views.publish). A button on the Home tab has no response URL: the answer to the click is
shown on top of the clicker's Home tab, republished. And when a change moves, the domain
asks the notifier to republish the Home tabs of the people it concerns
(`Notifier.refresh_home`), which `attach_home` enables.

This module is imported by the server that acks (for `HOME_OPENED`): it loads the domain
only inside its functions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commands.messages import Reply
    from commands.service import Service

log = logging.getLogger(__name__)

HOME_OPENED = "app_home_opened"  # the event, and the command of the job it becomes


def attach_home(service: Service) -> None:
    """Let the service's Slack notifier build Home tabs (for `refresh_home`)."""
    from bot.slack.notifier import SlackNotifier
    from commands.reports.home import home_views

    notifier = service.rt.notifier
    if isinstance(notifier, SlackNotifier) and notifier.homes is None:
        rt = service.rt
        notifier.homes = lambda people, notes: home_views(rt, people, notes)


def publish_home(service: Service, user_id: str, note: Reply | None = None) -> None:
    """Have this person's Home tab republished: opened (`note` None), or with the answer
    to their click there (`note`) on top. The notifier's refresh thread draws and
    publishes it, after any refresh asked for before (`SlackNotifier.show_home`)."""
    from bot.slack.notifier import SlackNotifier

    notifier = service.rt.notifier
    if not isinstance(notifier, SlackNotifier):
        log.warning("no Slack notifier: the Home tab of %s was not published", user_id)
        return
    attach_home(service)
    notifier.show_home(user_id, note)
