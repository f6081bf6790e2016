"""Slack user groups resolved when a button is clicked: `usergroups.users.list`, no cache,
so someone removed from the group a minute ago can no longer approve."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class SlackUserGroups:
    """`commands.ports.GroupResolver`: a user-group id → its members' Slack ids."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def __call__(self, group_id: str) -> set[str]:
        try:
            resp = self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as exc:
            # Fail closed: a group that cannot be read grants nobody anything.
            log.warning("usergroups.users.list %s failed: %s", group_id, exc.response.get("error"))
            return set()
        return {str(u) for u in resp.get("users") or []}
