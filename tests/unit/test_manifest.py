"""The manifest asks for what the code uses and nothing more: the Web API methods called
anywhere in `bot/` (found in its source: `client.<method>(`, `api_call("…")`, and
slack_sdk's wrappers resolved to the methods they call) are exactly those the manifest
knows, its bot scopes exactly theirs (plus `commands`), and its events exactly those the
Bolt app listens to."""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

from slack_sdk import WebClient

import bot.slack.app
from bot.slack.manifest import BOT_SCOPES, EVENT_SCOPES, METHOD_SCOPES, manifest

REPO = Path(__file__).resolve().parents[2]
API_CALL = re.compile(r"""api_call\(\s*["']([\w.]+)["']""")


@functools.cache
def web_api(name: str) -> frozenset[str]:
    """The Web API methods a WebClient method reaches: its own `api_call("…")`, and
    through a wrapper (`files_upload_v2`) the methods of the client it calls."""
    attr = getattr(WebClient, name, None)
    if name.startswith("_") or not inspect.isfunction(attr):
        return frozenset()
    source = inspect.getsource(attr)
    found = set(API_CALL.findall(source))
    for inner in set(re.findall(r"self\.(\w+)\(", source)) - {name, "api_call"}:
        found |= web_api(inner)
    return frozenset(found)


def called_in_bot() -> dict[str, set[str]]:
    """Web API method → the files of `bot/` that call it."""
    out: dict[str, set[str]] = {}
    for path in sorted((REPO / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            methods = set(web_api(name))
            if name == "api_call" and node.args and isinstance(node.args[0], ast.Constant):
                methods.add(str(node.args[0].value))
            for method in methods:
                out.setdefault(method, set()).add(path.relative_to(REPO).as_posix())
    return out


def test_the_scan_sees_calls_and_resolves_wrappers() -> None:
    assert web_api("chat_postMessage") == {"chat.postMessage"}
    assert web_api("files_upload_v2") == {
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    }
    called = called_in_bot()
    assert "bot/slack/notifier.py" in called["chat.postMessage"]
    assert "bot/slack/groups.py" in called["usergroups.users.list"]


def test_the_manifest_knows_every_method_called_and_no_other() -> None:
    called = called_in_bot()
    assert set(called) == set(METHOD_SCOPES), {
        "called, not in METHOD_SCOPES": {m: called[m] for m in set(called) - set(METHOD_SCOPES)},
        "in METHOD_SCOPES, never called": set(METHOD_SCOPES) - set(called),
    }


def test_the_bot_asks_for_exactly_the_scopes_it_uses() -> None:
    needed = {"commands"}  # the slash commands
    for method in called_in_bot():
        needed |= set(METHOD_SCOPES[method])
    for event in EVENT_SCOPES:
        needed |= set(EVENT_SCOPES[event])
    requested = manifest()["oauth_config"]["scopes"]["bot"]
    assert requested == BOT_SCOPES
    assert (
        sorted(requested)
        == sorted(needed)
        == [
            "channels:manage",  # an incident's own channel (conversations.create / invite)
            "chat:write",
            "commands",
            "files:write",
            "usergroups:read",
        ]
    )
    assert len(requested) == len(set(requested))


def test_the_events_subscribed_are_the_events_listened_to() -> None:
    listened = set()
    source = Path(bot.slack.app.__file__).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "event"
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                listened.add(str(arg.value))
            elif isinstance(arg, ast.Name):  # a constant the module imported
                listened.add(str(getattr(bot.slack.app, arg.id)))
            else:
                raise AssertionError(f"cannot read the event of {ast.unparse(node)}")
    assert listened == set(EVENT_SCOPES) == {"app_home_opened"}
    http = manifest("https://bot.example")
    assert http["settings"]["event_subscriptions"] == {
        "bot_events": ["app_home_opened"],
        "request_url": "https://bot.example/slack/events",
    }
    assert http["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://bot.example/slack/events",
    }
    assert http["features"]["app_home"]["home_tab_enabled"] is True
    socket = manifest(socket_mode=True)
    assert socket["settings"]["event_subscriptions"] == {"bot_events": ["app_home_opened"]}
    assert "url" not in socket["features"]["slash_commands"][0]


def test_usage_hints_and_descriptions_are_cut_at_a_word_not_mid_word() -> None:
    from bot.slack.manifest import manifest
    from commands.catalog import SLASH_COMMANDS

    shown = manifest("https://example.test")["features"]["slash_commands"]
    for entry in shown:
        spec = SLASH_COMMANDS[entry["command"]]
        for field, full in (
            ("usage_hint", spec.usage.removeprefix(spec.name).strip()),
            ("description", spec.summary),
        ):
            text = entry[field]
            assert len(text) <= 100
            if text != full:
                kept = text.removesuffix("…")
                assert text.endswith("…") and full.startswith(kept)
                assert full[len(kept)] in " ,;|", (entry["command"], field, text)
