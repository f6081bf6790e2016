"""`/aiops help` and `/<command> help`, generated from the catalog."""

from __future__ import annotations

from commands.catalog import AIOPS_SUBCOMMANDS, SLASH_COMMANDS, CommandSpec
from commands.messages import (
    Block,
    Context,
    Divider,
    Header,
    Reply,
    Text,
    escape,
)


def _spec_block(spec: CommandSpec) -> Text:
    text = f"*{spec.usage}*\n{spec.summary}."
    if spec.details:
        text += f"\n{spec.details}"
    if spec.examples:
        text += "\n" + "\n".join(f"`{e}`" for e in spec.examples)
    return Text(text)


def help_reply(topic: str | None = None) -> Reply:
    if topic:
        key = topic if topic.startswith("/") else f"/{topic}"
        if key in SLASH_COMMANDS and key != "/aiops":
            return Reply(text=SLASH_COMMANDS[key].usage, blocks=[_spec_block(SLASH_COMMANDS[key])])
        if topic in AIOPS_SUBCOMMANDS:
            return Reply(
                text=AIOPS_SUBCOMMANDS[topic].usage, blocks=[_spec_block(AIOPS_SUBCOMMANDS[topic])]
            )
        return Reply.refusal(f"no help for `{escape(topic)}`", hint="Try `/aiops help`.")
    blocks: list[Block] = [Header("aiops-bot commands")]
    for name, spec in SLASH_COMMANDS.items():
        if name != "/aiops":
            blocks.append(_spec_block(spec))
    blocks.append(Divider())
    blocks.append(Text("\n".join(f"`{s.usage}` — {s.summary}" for s in AIOPS_SUBCOMMANDS.values())))
    blocks.append(
        Context(("Production changes need a reason and an approval; every action is audited.",))
    )
    return Reply(text="aiops-bot help", blocks=blocks)
