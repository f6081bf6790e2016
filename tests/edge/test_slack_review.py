"""The Review button on a resolved incident's card, over Slack's wire: a signed click to
the Bolt app, the draft posted in the incident's thread within Block Kit's limits, the
whole Markdown draft uploaded beside it (`files_upload_v2` to the stub), the clicker told
where."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from commands.service import Service
from tests.edge.test_slack_incidents import (
    action_ids,
    declared,
    dumps,
    serve,
    updates,
    valid_message,
)
from tests.support.harness import SlackStub
from tests.support.slack_wire import Served, action_body, slash_body


@pytest.fixture
def respond_bot(sqlite_engine: Engine, stub: SlackStub) -> Iterator[tuple[Served, Service]]:
    server, service = serve(sqlite_engine, stub)
    yield server, service
    service.rt.background.wait_idle(30)
    server.close()


def typed(
    server: Served, stub: SlackStub, service: Service, user: str, line: str, path: str
) -> None:
    body = slash_body("/aiops", line, user, user.lower(), stub.url + path)
    assert server.post(body).status_code == 200
    stub.wait_for(lambda: bool(stub.responded(path)))
    service.rt.background.wait_idle(30)


def test_the_review_button_posts_the_draft_and_attaches_the_markdown(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    card = declared(server, stub, service, 'loan-assessor sev=P2 summary="slow answers"')
    assert "incident.review" not in action_ids(card)  # open: no review yet
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None
    typed(server, stub, service, "U0BOB", "incident ack INC-1", "/respond/ack")
    typed(
        server,
        stub,
        service,
        "U0BOB",
        'incident resolve INC-1 cause="autoscaler max too low"',
        "/respond/res",
    )
    resolved = updates(stub, str(incident.thread_ts))[-1]
    assert action_ids(resolved) == ["incident.review"]

    click = action_body(
        "incident.review", "INC-1", "U0ALICE", "alice", stub.url + "/respond/rv", "C0OPS"
    )
    assert server.post(click).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/rv")))
    service.rt.background.wait_idle(30)
    [answer] = stub.responded("/respond/rv")
    assert answer["response_type"] == "ephemeral"
    assert "Posted the draft and `INC-1-review.md` in INC-1's thread" in answer["text"]

    [draft] = [
        valid_message(c.body)  # ≤ 50 blocks, each valid Block Kit
        for c in stub.of("chat.postMessage")
        if c.body.get("thread_ts") == incident.thread_ts
        and str(c.body.get("text", "")).startswith("Post-incident review")
    ]
    shown = dumps(draft)
    assert "Post-incident review (draft): INC-1" in shown
    assert "incident declared" in shown and "resolved" in shown and "· row " in shown
    assert "autoscaler max too low" in shown and "attached here as `INC-1-review.md`" in shown

    [complete] = stub.of("files.completeUploadExternal")
    assert complete.body["channel_id"] == incident.channel
    assert complete.body["thread_ts"] == incident.thread_ts
    [asked] = stub.of("files.getUploadURLExternal")
    assert asked.body["filename"] == "INC-1-review.md"
    [upload] = stub.of("file_upload")
    markdown = upload.body["data"].decode()
    assert markdown.startswith("# Post-incident review (draft): INC-1")
    assert "| time | event | by | audit row |" in markdown and "## Action items" in markdown


@pytest.mark.parametrize(
    "broken",
    [
        {"answers": {"files.getUploadURLExternal": {"ok": True, "file_id": "F0NOURL"}}},
        {"fail": {"files.getUploadURLExternal": "not_allowed_token_type"}},
        {"fail": {"files.completeUploadExternal": "internal_error"}},
    ],
    ids=["no upload_url", "url refused", "completion refused"],
)
def test_a_failed_upload_still_posts_the_draft_and_says_the_file_failed(
    respond_bot: tuple[Served, Service], stub: SlackStub, broken: dict[str, dict[str, Any]]
) -> None:
    server, service = respond_bot
    declared(server, stub, service, 'loan-assessor sev=P3 summary="slow answers"')
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None
    stub.answers.update(broken.get("answers", {}))
    stub.fail.update(broken.get("fail", {}))
    typed(server, stub, service, "U0BOB", "incident review INC-1", "/respond/rv")
    [answer] = stub.responded("/respond/rv")
    assert "went wrong" not in answer["text"]
    assert "Posted the draft in INC-1's thread" in answer["text"]
    assert "`INC-1-review.md` could not be attached" in answer["text"]
    assert "aiops-bot incident review INC-1" in answer["text"]
    [draft] = [
        c.body
        for c in stub.of("chat.postMessage")
        if c.body.get("thread_ts") == incident.thread_ts
        and str(c.body.get("text", "")).startswith("Post-incident review")
    ]
    assert "attached here" not in dumps(draft)
