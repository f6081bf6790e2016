"""The serving alias: the registry alias that names "what prod serves" (`[vertex]
serving_alias`, default `prod`), as MLflow's `champion` or a Vertex AI alias other systems
deploy or score by.

After a change succeeds and leaves one version serving 100 % of an endpoint whose
environment moves the alias (`move_serving_alias`, default: `prod`), the alias is moved to
that version: a full promote moves it forward, a rollback moves it back. Each move is
audited (`alias_moved`, with the version it named before) and said in the change's thread.
A move that fails is never silent: audited (`alias_move_failed`), said in the thread, kept
on the change as pending (`ChangePlan.serving_alias`) and tried again by the scheduler
(`retry_pending`, every `RETRY_SECONDS`) up to `MAX_ATTEMPTS` times; then the ops channel
is told to move it by hand. A pending move whose endpoint no longer serves that version
alone is dropped (a later change decided what prod serves).

With several prod endpoints serving one model, the alias follows the last change that left
one of them on one version."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace

from commands.audit import AuditAction
from commands.changes.tell import thread
from commands.config import Endpoint
from commands.messages import Post, Reply, Text, escape
from commands.model import BOT, SCHEDULER, Change, ChangeState, EndpointState, ModelVersion
from commands.ports import PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)

RETRY_SECONDS = 60  # the scheduler's `every:serving-alias` job (bot/wiring.py)
MAX_ATTEMPTS = 30  # about half an hour of retries, then a person is asked

MOVED = "moved"
UNCHANGED = "unchanged"  # it named that version already: nothing written
PENDING = "pending"  # a move failed and will be tried again
FAILED = "failed"  # given up after MAX_ATTEMPTS: a person moves it
DROPPED = "dropped"  # the endpoint no longer serves that version alone


@dataclass
class AliasMove:
    """What became of a change's alias move (stored on the change as JSON)."""

    alias: str
    model: str
    version: str  # the version the alias should name
    state: str
    attempts: int = 0
    previous: str | None = None  # the version it named before the move
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> AliasMove | None:
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None


def serving_version(state: EndpointState) -> ModelVersion | None:
    """The one version taking 100 % of the endpoint's traffic; None when traffic is split
    (or nothing serves)."""
    serving = [dm_id for dm_id, share in state.traffic.items() if share > 0]
    if len(serving) != 1 or state.traffic[serving[0]] != 100:
        return None
    found = state.model(serving[0])
    return found.version if found else None


def after_change(rt: Runtime, change: Change, state: EndpointState | None) -> AliasMove | None:
    """A change succeeded and left the endpoint as `state`: move the serving alias if its
    environment says so and one version serves it all. Never raises: a failure is
    reported, stored and retried."""
    env = rt.config.environments.get(change.environment)
    ep = rt.config.endpoints.get(change.endpoint)
    if rt.registry is None or env is None or ep is None or state is None:
        return None
    if not env.moves_serving_alias:
        return None
    version = serving_version(state)
    if version is None or version.model != ep.model:
        return None
    move = AliasMove(rt.registry.serving_alias, ep.model, version.version, PENDING)
    return _attempt(rt, change, ep, move, BOT.id)


def _attempt(rt: Runtime, change: Change, ep: Endpoint, move: AliasMove, actor: str) -> AliasMove:
    assert rt.registry is not None
    move.attempts += 1
    target = f"`{move.alias}` of `{move.model}`"
    try:
        previous = rt.registry.move_alias(move.model, move.version, move.alias, ep)
    except Exception as exc:
        if not isinstance(exc, PlatformError):
            log.exception("%s: moving alias %s failed unexpectedly", change.id, move.alias)
        move.error = str(exc) if isinstance(exc, PlatformError) else type(exc).__name__
        move.state = FAILED if move.attempts >= MAX_ATTEMPTS else PENDING
        _store(rt, change, move)
        rt.auditor.record(
            AuditAction.ALIAS_MOVE_FAILED,
            actor,
            f"alias {move.alias} not moved to {move.version}: {move.error}",
            change=change,
            parameters=_params(move) | {"will_retry": move.state == PENDING},
        )
        if move.state == PENDING:
            thread(
                rt,
                change,
                f":warning: Could not move registry alias {target} to {move.version}"
                f" (attempt {move.attempts} of {MAX_ATTEMPTS}): {escape(move.error)}. The bot"
                f" tries again every {RETRY_SECONDS} s; until then the registry does not name"
                " what serves.",
            )
        else:
            line = (
                f":x: Gave up moving registry alias {target} to {move.version} for {change.id}"
                f" after {move.attempts} attempts: {escape(move.error)}. Move it by hand in the"
                f" model registry, so that `{move.alias}` names what `{change.endpoint}` serves."
            )
            thread(rt, change, line)
            rt.notifier.post(
                Post(rt.config.channels.ops, Reply(text=line, blocks=[Text(line)], ephemeral=False))
            )
        return move
    move.previous, move.error = previous, None
    if previous == move.version:
        move.state = UNCHANGED
        _store(rt, change, move)
        return move
    move.state = MOVED
    _store(rt, change, move)
    rt.auditor.record(
        AuditAction.ALIAS_MOVED,
        actor,
        f"alias {move.alias} now names {move.version}",
        change=change,
        parameters=_params(move),
    )
    thread(
        rt,
        change,
        f":label: Registry alias {target} now names {move.version}"
        f" (was {previous or 'unset'}): what `{change.endpoint}` serves.",
    )
    return move


def _params(move: AliasMove) -> dict[str, object]:
    return {
        "alias": move.alias,
        "model": move.model,
        "version": move.version,
        "previous": move.previous,
        "attempt": move.attempts,
        "error": move.error,
    }


def _store(rt: Runtime, change: Change, move: AliasMove) -> None:
    change.plan = replace(change.plan, serving_alias=move.to_json())
    rt.store.update_change(change.id, plan=change.plan)


def retry_pending(rt: Runtime, limit: int = 200) -> int:
    """The scheduler's pass: try again every pending alias move among the latest `limit`
    succeeded changes whose endpoint still serves that version alone; drop the others.
    Returns how many moves it tried or dropped."""
    if rt.registry is None:
        return 0
    count = 0
    for change in rt.store.list_changes(states=[ChangeState.SUCCEEDED], limit=limit):
        move = AliasMove.from_json(change.plan.serving_alias)
        ep = rt.config.endpoints.get(change.endpoint)
        if move is None or move.state != PENDING or ep is None:
            continue
        try:
            state = rt.platform.endpoint_state(ep)
        except PlatformError as exc:
            log.warning("%s: alias move waits, endpoint unreadable: %s", change.id, exc)
            continue
        serving = serving_version(state)
        count += 1
        if serving is None or serving.version != move.version:
            move.state, move.error = DROPPED, f"`{ep.slug}` now serves {state.describe()}"
            _store(rt, change, move)
            rt.auditor.record(
                AuditAction.ALIAS_MOVE_FAILED,
                SCHEDULER.id,
                f"alias {move.alias} move to {move.version} dropped: {move.error}",
                change=change,
                parameters=_params(move) | {"will_retry": False},
            )
            thread(
                rt,
                change,
                f"Registry alias `{move.alias}` is no longer moved to {move.version}:"
                f" {escape(move.error)} (a later change decides what it names).",
            )
            continue
        _attempt(rt, change, ep, move, SCHEDULER.id)
    return count
