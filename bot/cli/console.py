"""`aiops-bot console`: the same commands and views in a terminal, on the embedded default.

Type slash commands as in Slack; `as <person>` switches who you are; buttons show their
typed equivalent. With `-c` the commands run in order and the console exits once the work
they started has finished.

The console has no scheduler, so on the sandbox it moves time itself: each `/aiops canary`
first moves the sandbox's clock one `[canary] interval` ahead (the offset is kept in the
database, so a later console session goes on from there), closing one analysis window, then
runs the check. Nothing else moves the clock.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

from bot.settings import Settings
from bot.slack.blocks import render_message
from bot.wiring import build_runtime, checked_config, open_database
from commands.config import Config
from commands.messages import (
    Buttons,
    Context,
    Divider,
    Fields,
    Header,
    Post,
    Reply,
    Text,
    did_you_mean,
    unescape,
)
from commands.model import Actor, Invocation
from commands.ports import Delivery, MessageRef
from commands.service import Service
from commands.text import outbound

if TYPE_CHECKING:
    from bot.platforms.sandbox import SandboxClock

_EMOJI = {
    ":no_entry:": "⛔",
    ":warning:": "⚠️",
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":red_circle:": "🔴",
    ":large_green_circle:": "🟢",
    ":hourglass_flowing_sand:": "⏳",
    ":twisted_rightwards_arrows:": "🔀",
    ":mag:": "🔍",
    ":sunrise:": "🌅",
    ":city_sunset:": "🌆",
    ":alarm_clock:": "⏰",
    ":rotating_light:": "🚨",
    ":rewind:": "⏪",
    ":hatching_chick:": "🐣",
    ":arrow_up:": "⬆️",
    ":fire:": "🔥",
    ":tada:": "🎉",
    ":white_circle:": "⚪",
    ":no_entry_sign:": "🚫",
    ":moneybag:": "💰",
    ":chart_with_upwards_trend:": "📈",
    ":checkered_flag:": "🏁",
    ":double_vertical_bar:": "⏸️",
    ":fast_forward:": "⏩",
    ":large_orange_circle:": "🟠",
    ":octagonal_sign:": "🛑",
    ":raised_hand:": "✋",
    ":zzz:": "💤",
    ":pause_button:": "⏸️",
    ":arrow_forward:": "▶️",
    ":gear:": "⚙️",
    ":eyes:": "👀",
    ":adhesive_bandage:": "🩹",
    ":pager:": "📟",
    ":memo:": "📝",
    ":link:": "🔗",
    ":arrow_down:": "⬇️",
    ":shield:": "🛡️",
    ":label:": "🏷️",
}


class TextRenderer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.channel_names = {config.channels.approvals: "approvals", config.channels.ops: "ops"}

    def inline(self, text: str) -> str:
        text = re.sub(r"<@(\w+)>", lambda m: "@" + self.config.display_name(m[1]), text)
        text = re.sub(r"<!subteam\^(\w+)>", lambda m: "@group:" + m[1], text)
        text = re.sub(r"<#(\w+)>", lambda m: "#" + self.channel_names.get(m[1], m[1]), text)
        text = re.sub(r"<!(here|channel|everyone)>", r"@\1", text)
        for code, char in _EMOJI.items():
            text = text.replace(code, char)
        return outbound(unescape(text))

    def reply(self, reply: Reply) -> str:
        out: list[str] = []
        for block in reply.blocks:
            if isinstance(block, Header):
                out.append(f"━━ {self.inline(block.text)} ━━")
            elif isinstance(block, Text):
                out.append(self.inline(block.text))
            elif isinstance(block, Fields):
                width = max(len(k) for k, _ in block.pairs) if block.pairs else 0
                out.extend(f"  {k.ljust(width)} : {self.inline(v)}" for k, v in block.pairs)
            elif isinstance(block, Context):
                out.extend(f"  · {self.inline(i)}" for i in block.items)
            elif isinstance(block, Divider):
                out.append("  " + "─" * 40)
            elif isinstance(block, Buttons):
                out.extend(f"  [{b.label}]  type: {b.typed}" for b in block.buttons)
        return "\n".join(out) if out else self.inline(reply.text)

    def where(self, channel: str) -> str:
        if channel in self.channel_names:
            return "#" + self.channel_names[channel]
        return "@" + self.config.display_name(channel)


class ConsoleNotifier:
    def __init__(
        self, out: TextIO, renderer: TextRenderer | None = None, as_json: bool = False
    ) -> None:
        self.out = out
        self.renderer = renderer
        self.as_json = as_json
        self._lock = threading.Lock()
        self._n = 0

    def post(self, post: Post) -> MessageRef | None:
        return self.deliver(post).ref

    def refresh_home(self, people: Sequence[str]) -> None:
        """The terminal has no Home tab: `/aiops status` and `/aiops changes` show it."""

    def deliver(self, post: Post) -> Delivery:
        """The terminal always takes the line: every post is delivered."""
        with self._lock:
            self._n += 1
            ts = post.ts or f"{self._n}.000000"
            if self.as_json:
                self.out.write(
                    json.dumps(
                        {
                            "kind": "post",
                            "channel": post.channel,
                            "thread_ts": post.thread_ts,
                            "update": post.update,
                            "change_id": post.change_id,
                            **render_message(post.reply),
                        }
                    )
                    + "\n"
                )
            elif self.renderer is not None:
                where = self.renderer.where(post.channel)
                if post.thread_ts:
                    self.out.write(
                        f"    ↳ [{where} · {post.change_id or 'thread'}]"
                        f" {self.renderer.inline(post.reply.text)}\n"
                    )
                elif post.update:
                    self.out.write(
                        f"\n┌─ {where} (message updated)\n{_indent(self.renderer.reply(post.reply))}\n└─\n"
                    )
                elif post.channel.startswith(("U", "W")):
                    self.out.write(f"    ✉ to {where}: {self.renderer.inline(post.reply.text)}\n")
                else:
                    self.out.write(
                        f"\n┌─ {where}\n{_indent(self.renderer.reply(post.reply))}\n└─\n"
                    )
            self.out.flush()
            return Delivery(MessageRef(post.channel, ts))


def _indent(text: str) -> str:
    return "\n".join("│ " + line for line in text.splitlines())


class Console:
    def __init__(
        self,
        settings: Settings,
        user: str,
        out: TextIO = sys.stdout,
        as_json: bool = False,
        config: Config | None = None,
    ) -> None:
        self.out = out
        self.as_json = as_json
        self.notifier = ConsoleNotifier(out, as_json=as_json)
        config = config or checked_config(settings)
        engine = open_database(settings)
        self.sandbox_clock: SandboxClock | None = None
        if config.platform == "sandbox":
            from bot.platforms.sandbox import SandboxClock

            self.sandbox_clock = SandboxClock(engine)
            self.rt = build_runtime(
                settings, self.notifier, config=config, engine=engine, clock=self.sandbox_clock
            )
            # Waiting moves the sandbox's clock, not the wall's: a soak (replace, blue-green:
            # `[strategies]`, minutes) and long-running operations pass at once, as the
            # console's canary windows do (it has no scheduler to wait for them).
            self.rt.sleep = self._sandbox_wait
        else:
            self.rt = build_runtime(settings, self.notifier, config=config, engine=engine)
        self.renderer = TextRenderer(self.rt.config)
        self.notifier.renderer = self.renderer
        self.service = Service(self.rt)
        self.user = self._resolve(user) or user
        from commands.changes.execute import resume

        resume(self.rt)

    def _sandbox_wait(self, seconds: float) -> None:
        assert self.sandbox_clock is not None
        self.sandbox_clock.advance(timedelta(seconds=seconds))

    def _resolve(self, ref: str) -> str | None:
        return self.rt.config.resolve_person(ref)

    @property
    def who(self) -> str:
        return self.rt.config.display_name(self.user)

    def run_line(self, line: str) -> bool:
        """Run one line; False when the console should stop."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if line in ("quit", "exit"):
            return False
        if line.startswith("as "):
            typed = line[3:].strip()
            who = self._resolve(typed)
            if who is None:
                people = self.rt.config.people
                close = did_you_mean(typed.lstrip("@"), people)
                self._say(f"⛔ unknown person `{typed}`{close} (people: {', '.join(people)})")
            else:
                self.user = who
                self._say(f"(you are now {self.who})")
            return True
        if line in ("help", "?"):
            line = "/aiops help"
        if line == "wait":
            self.rt.background.wait_idle()
            return True
        if not line.startswith("/"):
            self._say(
                "⛔ type a slash command (e.g. `/aiops help`), `as <person>`, `wait` or `quit`"
            )
            return True
        command, _, text = line.partition(" ")
        if (
            self.sandbox_clock is not None
            and command == "/aiops"
            and text.split()[:1] == ["canary"]
        ):
            from commands.canary.model import canary_settings

            self.sandbox_clock.advance(canary_settings(self.rt.config).interval)
        inv = Invocation(
            actor=Actor(self.user, self.who), command=command, text=text, channel_id="console"
        )
        reply = self.service.handle(inv)
        if self.as_json:
            self.out.write(
                json.dumps(
                    {
                        "kind": "reply",
                        "user": self.who,
                        "command": outbound(line),  # as the audit keeps it: masked
                        "ok": reply.ok,
                        **render_message(reply),
                    }
                )
                + "\n"
            )
        else:
            self.out.write(f"\n{self.who}> {outbound(line)}\n{self.renderer.reply(reply)}\n")
        self.out.flush()
        return True

    def _say(self, text: str) -> None:
        text = outbound(text)  # it may echo what was typed
        if self.as_json:
            self.out.write(json.dumps({"kind": "note", "text": text}) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def run_script(self, lines: Iterable[str]) -> int:
        for line in lines:
            if not self.run_line(line):
                break
        self.rt.background.wait_idle()
        return 0

    def repl(self, inp: TextIO = sys.stdin) -> int:
        self.out.write(
            f"aiops-bot console — platform {self.rt.platform.name}, config {self.rt.config.source}\n"
            "Type `/aiops help`, `as <person>` (alice, bob, carol, dave), `wait` or `quit`.\n"
        )
        while True:
            self.out.write(f"{self.who}> ")
            self.out.flush()
            line = inp.readline()
            if not line:
                break
            if not self.run_line(line):
                break
        self.rt.background.wait_idle()
        return 0


DEMO_PII_KEY = b"aiops-bot console demo PII key: public, for the sandbox, never for real data"
DEMO_KEY_NOTE = "PII tokens use the console's demo key; set AIOPS_PII_KEY for real data"


def use_demo_key_unless_set(config: Config, err: TextIO = sys.stderr) -> bool:
    """On the sandbox without `AIOPS_PII_KEY`, PII tokens use `DEMO_PII_KEY` (fixed, so they
    match across console sessions on one database), said once in words; True when it did.
    The key is public (it is in this file): a console on `vertex`, which may see real
    data, keeps the random per-process key and its warning, as `serve` does."""
    from commands.redaction import KEY_ENV, Redactor, use_default

    if config.platform != "sandbox" or os.environ.get(KEY_ENV):
        return False
    if not use_default(Redactor(DEMO_PII_KEY)):
        return False
    err.write(f"aiops-bot: {DEMO_KEY_NOTE}\n")
    err.flush()
    return True


def run_console(settings: Settings, user: str, commands: list[str], as_json: bool, **_: Any) -> int:
    config = checked_config(settings)
    use_demo_key_unless_set(config)
    console = Console(settings, user, as_json=as_json, config=config)
    if commands:
        return console.run_script(commands)
    return console.repl()
