"""The Slack app manifest, generated so it cannot drift: the slash commands from the
catalog, the one event the bot listens to, and the bot token's scopes from the Web API
methods the bot calls. `tests/unit/test_manifest.py` scans `bot/` for those calls and
holds `METHOD_SCOPES` equal to what it finds, so a new call without its scope (or a
scope nothing uses) fails the build."""

from __future__ import annotations

from typing import Any

from bot.slack.home import HOME_OPENED
from commands.catalog import SLASH_COMMANDS


def _cut_words(text: str, limit: int) -> str:
    """At most `limit` characters (Slack's for a command's description and usage hint),
    cut at a word with an ellipsis rather than mid-word."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    at = max(head.rfind(" "), head.rfind("|"))  # a word, or one of `<a|b|c>`'s choices
    return (head[:at] if at > limit // 2 else head).rstrip(" ,;|") + "…"


# Every Web API method the bot's code calls, with the bot-token scopes Slack documents
# for it (docs.slack.dev/reference/methods/<method>, "Required scopes"). Bolt itself calls
# `auth.test` (no scope) to learn the bot's own user id.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    # change cards, thread lines, digests, canary decisions; a direct message is a post
    # to the person's user id, which lands in the app's Messages tab with this scope alone
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),  # a change card as it moves
    "views.publish": (),  # the Home tab
    "views.open": (),  # the form a bare /deploy, /promote or /rollback opens
    "views.update": (),  # the form redrawn for the endpoint chosen
    "usergroups.users.list": ("usergroups:read",),  # approvers named as user groups
    # an incident's own channel (`[incidents] channel_per_incident = true`): a public
    # channel the bot makes, and its commander and on-call invited to it
    "conversations.create": ("channels:manage",),
    "conversations.invite": ("channels:manage",),
    # charts in a digest's or a canary's thread, an incident's review draft in its thread
    # (`files_upload_v2`)
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}

# The events the bot subscribes to, with their scopes (docs.slack.dev/reference/events).
EVENT_SCOPES: dict[str, tuple[str, ...]] = {HOME_OPENED: ()}


def bot_scopes() -> list[str]:
    """What the bot token needs: `commands` for the slash commands, then each method's
    and event's scopes; nothing else."""
    needed = {s for scopes in (*METHOD_SCOPES.values(), *EVENT_SCOPES.values()) for s in scopes}
    return ["commands", *sorted(needed - {"commands"})]


BOT_SCOPES = bot_scopes()


def manifest(
    base_url: str = "https://aiops-bot.example.com", socket_mode: bool = False
) -> dict[str, Any]:
    events = f"{base_url.rstrip('/')}/slack/events"
    commands = []
    for spec in SLASH_COMMANDS.values():
        entry: dict[str, Any] = {
            "command": spec.name,
            "description": _cut_words(spec.summary, 100),
            "usage_hint": _cut_words(spec.usage.removeprefix(spec.name).strip(), 100),
            "should_escape": True,  # Slack sends <@U…> for mentions, never raw names
        }
        if not socket_mode:
            entry["url"] = events
        commands.append(entry)
    # The buttons (Approve / Reject, Roll back / Promote anyway, Open status …)
    interactivity: dict[str, Any] = {"is_enabled": True}
    subscriptions: dict[str, Any] = {"bot_events": sorted(EVENT_SCOPES)}
    if not socket_mode:
        interactivity["request_url"] = events
        subscriptions["request_url"] = events
    return {
        "display_information": {
            "name": "aiops-bot",
            "description": "Deploy, promote and roll back models; approvals, digests and audit.",
            "background_color": "#1d3557",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,  # each person's approvals, changes, endpoints
                # the bot's direct messages (to a requester) land here; it reads none
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": "aiops-bot", "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "event_subscriptions": subscriptions,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
