"""The Slack app manifest, generated from the registered commands so it cannot drift."""

from __future__ import annotations

from typing import Any

from commands.catalog import SLASH_COMMANDS

BOT_SCOPES = [
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "usergroups:read",
    "files:write",
]


def manifest(
    base_url: str = "https://aiops-bot.example.com", socket_mode: bool = False
) -> dict[str, Any]:
    events = f"{base_url.rstrip('/')}/slack/events"
    commands = []
    for spec in SLASH_COMMANDS.values():
        entry: dict[str, Any] = {
            "command": spec.name,
            "description": spec.summary[:100],
            "usage_hint": spec.usage.removeprefix(spec.name).strip()[:100],
            "should_escape": True,  # Slack sends <@U…> for mentions, never raw names
        }
        if not socket_mode:
            entry["url"] = events
        commands.append(entry)
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        interactivity["request_url"] = events
    return {
        "display_information": {
            "name": "aiops-bot",
            "description": "Deploy, promote and roll back models; approvals, digests and audit.",
            "background_color": "#1d3557",
        },
        "features": {
            "bot_user": {"display_name": "aiops-bot", "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
