"""Posting a digest (scheduled or on demand) and its chart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from commands.audit import AuditAction
from commands.digests.gather import Digest
from commands.digests.render import chart_comment, compose
from commands.digests.schedule import (
    DigestKind,
    DigestSettings,
    digest_settings,
)
from commands.errors import Refusal
from commands.messages import (
    Post,
    Reply,
    escape,
)
from commands.model import SCHEDULER, Actor
from commands.ports import ChartAttacher
from commands.runtime import Runtime


def post(
    rt: Runtime,
    kind: DigestKind,
    environment: str | None = None,
    *,
    actor: Actor = SCHEDULER,
    scheduled_for: datetime | None = None,
    late: bool = False,
    request_id: str | None = None,
    settings: DigestSettings | None = None,
) -> Digest:
    """Compose, post to the environment's digest channel, attach the chart, audit."""
    digest = compose(
        rt, kind, environment, scheduled_for=scheduled_for, late=late, settings=settings
    )
    ref = rt.notifier.post(Post(digest.channel, digest.reply))
    attached = False
    if ref is not None and digest.chart is not None and isinstance(rt.notifier, ChartAttacher):
        try:
            attached = rt.notifier.attach_chart(
                ref.channel, ref.ts, digest.chart, chart_comment(digest.chart)
            )
        except Exception:  # a lost chart never loses the digest
            attached = False
    outcome = ("posted late" if late else "posted") if ref is not None else "post failed"
    rt.auditor.record(
        AuditAction.DIGEST_POSTED,
        actor.id,
        outcome,
        environment=digest.environment,
        request_id=request_id,
        parameters={
            "kind": kind.value,
            "channel": digest.channel,
            "ts": ref.ts if ref else None,
            "scheduled_for": scheduled_for.isoformat() if scheduled_for else None,
            "late": late,
            "chart": attached,
            **{k: v for k, v in digest.counts.items() if k != "blocks"},
        },
    )
    return digest


def environments(rt: Runtime, settings: DigestSettings | None = None) -> list[str]:
    return list((settings or digest_settings(rt.config)).schedules)


def on_demand(
    rt: Runtime, actor: Actor, words: Sequence[str], request_id: str | None = None
) -> Reply:
    """`/aiops digest morning|eod [environment]`: post it now, to the digest channel."""
    usage = "/aiops digest <morning|eod> [environment]"
    kind_word = words[0].lower() if words else ""
    aliases = {"morning": DigestKind.MORNING, "eod": DigestKind.EOD, "evening": DigestKind.EOD}
    if kind_word not in aliases:
        raise Refusal(
            f"which digest? `{escape(kind_word)}` is not one" if kind_word else "which digest?",
            f"Usage: `{usage}` — `morning` or `eod`.",
            code="malformed",
        )
    settings = digest_settings(rt.config)
    envs = (
        [words[1]]
        if len(words) > 1
        else (environments(rt, settings) or list(rt.config.environments)[:1])
    )
    posted = []
    for env in envs:
        digest = post(
            rt, aliases[kind_word], env, actor=actor, request_id=request_id, settings=settings
        )
        posted.append(f"{digest.environment} in <#{digest.channel}>")
    heading = aliases[kind_word].heading
    return Reply.info(f"Posted the {heading.lower()} for " + ", ".join(posted) + ".")
