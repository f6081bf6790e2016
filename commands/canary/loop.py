"""The timed entry point: `check_due(rt)` judges every canary whose interval has come."""

from __future__ import annotations

import logging

from commands.canary.act import act_on_breaches, settle
from commands.canary.check import run_check
from commands.canary.model import (
    ACTIVE_STATES,
    Check,
    Watch,
    WatchState,
)
from commands.canary.records import store_of
from commands.canary.watch import ensure_watch
from commands.model import SCHEDULER, ChangeState
from commands.ports import PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)


def busy_with(rt: Runtime, w: Watch) -> str | None:
    """What keeps the analysis from judging a window now: traffic is being moved."""
    if w.action is None:
        return None
    if w.action_change_id is None:
        return f"the bot is making its {w.action} change"
    change = rt.store.get_change(w.action_change_id)
    if change is not None and change.state is ChangeState.RUNNING:
        return f"{change.id} is moving traffic"
    return None  # e.g. a promote waiting for approval: the current share is still judged


def _tick(rt: Runtime, w: Watch) -> Check | None:
    w = settle(rt, w)
    if not w.state.is_active:
        return None
    check = None
    if (
        w.state in (WatchState.WATCHING, WatchState.AWAITING_DECISION)
        and rt.clock() >= w.next_check_at
        and busy_with(rt, w) is None
    ):
        check = run_check(rt, w, SCHEDULER.id)
        fresh = store_of(rt).get_watch(w.id)
        assert fresh is not None
        w = fresh
    act_on_breaches(rt, w)
    return check


def check_due(rt: Runtime) -> list[Check]:
    """The timed entry point: start watches for new canaries, see actions through, and run
    every check that is due at `rt.clock()`. Safe to call as often as you like."""
    if rt.canary is None:
        return []
    done: list[Check] = []
    for ep in rt.config.endpoints.values():
        try:
            ensure_watch(rt, ep)
        except PlatformError as exc:
            log.warning("canary: cannot look at %s: %s", ep.slug, exc)
    for w in rt.canary.list_watches(ACTIVE_STATES):
        try:
            check = _tick(rt, w)
        except PlatformError as exc:
            log.warning("canary %s: platform error, tried again next time: %s", w.ref, exc)
            continue
        except Exception:
            log.exception("canary %s: check failed", w.ref)
            continue
        if check is not None:
            done.append(check)
    return done
