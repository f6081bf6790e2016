"""Block Kit rendering: every exit masks PII and stays inside Slack's limits."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import Block as SdkBlock

from bot.slack.blocks import render_message
from commands.messages import Button, Buttons, Context, Fields, Header, Reply, Text


def test_pii_is_masked_in_every_kind_of_block() -> None:
    reply = Reply(
        text="call 0412 345 678",
        blocks=[
            Header("for jane.citizen@example.com"),
            Text("card 4111 1111 1111 1111 declined"),
            Fields(
                (("Customer", "Jane Citizen"), ("P95", "2150 ms"), ("Model", "gemma-3-1b-it@1.2.1"))
            ),
            Context(("TFN 123 456 782",)),
            Buttons((Button("Approve", "approve", "CHG-1", "/aiops approve CHG-1"),)),
        ],
    )
    out = json.dumps(render_message(reply))
    for secret in (
        "0412 345 678",
        "jane.citizen@example.com",
        "4111 1111 1111 1111",
        "Jane Citizen",
        "123 456 782",
    ):
        assert secret not in out, secret
    for kept in ("2150 ms", "gemma-3-1b-it@1.2.1", "CHG-1"):
        assert kept in out, kept


def test_long_text_is_cut_to_slack_limits() -> None:
    reply = Reply(text="x" * 5000, blocks=[Header("h" * 400), Text("t" * 5000)] + [Text("n")] * 80)
    message = render_message(reply)
    assert len(message["blocks"]) == 50 and len(message["text"]) <= 3000
    for block in message["blocks"]:
        SdkBlock.parse(block).validate_json()  # type: ignore[union-attr]
