"""The product's loop through the domain service, on the sandbox and a real SQLite file."""

from __future__ import annotations

import itertools
import threading

from commands.canary.loop import check_due
from commands.changes.approve import expire_due
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, text_of

DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'


def passing_window(bot: Bot) -> None:
    """Five-minute windows of a healthy canary until the analysis says "no regression"
    (in prod at 10 %, about half an hour of traffic)."""
    for _ in range(12):
        bot.clock.advance(minutes=5)
        checks = check_due(bot.rt)
        bot.rt.background.wait_idle(30)
        if checks and checks[-1].verdict == "no_regression":
            return
    raise AssertionError("the healthy canary never reached no regression")


def pending_id(bot: Bot) -> str:
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    return change.id


def test_prod_deploy_approve_promote_to_100(bot: Bot) -> None:
    reply = bot.run(ALICE, DEPLOY)
    assert reply.ok, text_of(reply)
    change_id = pending_id(bot)
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    assert bot.split("loan-assessor") == {"1.2.0": 100}  # nothing runs before approval

    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert reply.ok, text_of(reply)
    done = bot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.decided_by == BOB.id
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}

    passing_window(bot)  # prod promotes only a canary whose analysis passed
    reply = bot.run(ALICE, '/promote loan-assessor to=50 reason="canary healthy"')
    assert reply.ok, text_of(reply)
    promote_id = pending_id(bot)
    bot.run(CAROL, f"/aiops approve {promote_id}")
    assert bot.split("loan-assessor") == {"1.2.0": 50, "1.2.1": 50}

    passing_window(bot)
    bot.run(ALICE, '/promote loan-assessor reason="all good"')
    # An endpoint names its pending change but approves nothing: the id does.
    preview = bot.run(BOB, "/aiops approve loan-assessor")
    full = pending_id(bot)
    assert preview.ok and f"/aiops approve {full}" in preview.text
    assert bot.change(full).state is ChangeState.PENDING_APPROVAL
    bot.run(BOB, f"/aiops approve {full}")
    assert bot.split("loan-assessor") == {"1.2.1": 100}  # the replaced model is undeployed
    last = bot.rt.store.list_changes(limit=1)[0]
    assert last.state is ChangeState.SUCCEEDED
    assert last.restore_split and sum(last.restore_split.values()) == 100


def test_staging_runs_without_approval_and_rollback_restores(bot: Bot) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    assert bot.split("loan-assessor-stg") == {"1.2.0": 75, "1.2.1": 25}
    reply = bot.run(ALICE, "/rollback loan-assessor-stg")
    assert reply.ok, text_of(reply)
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}


def test_prod_rollback_runs_at_once_and_is_announced(bot: Bot) -> None:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    bot.run(ALICE, DEPLOY)
    bot.run(BOB, f"/aiops approve {pending_id(bot)}")
    before = len(notifier.posts)
    reply = bot.run(CAROL, '/rollback loan-assessor reason="P95 above 2 s"')
    assert reply.ok, text_of(reply)
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    announced = [
        p for p in notifier.posts[before:] if p.channel == bot.rt.config.channels.approvals
    ]
    assert announced, "a prod rollback must be announced in the approvals channel"


def test_rollback_after_full_promote_redeploys_previous(bot: Bot) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1")
    bot.run(ALICE, "/promote loan-assessor-stg")
    assert bot.split("loan-assessor-stg") == {"1.2.1": 100}
    reply = bot.run(ALICE, "/rollback loan-assessor-stg")
    assert reply.ok, text_of(reply)
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}


def test_self_approval_and_non_approver_refused(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    own = bot.run(ALICE, f"/aiops approve {change_id}")
    assert not own.ok and "someone else" in own.text
    stranger = bot.run(DAVE, f"/aiops approve {change_id}")
    assert not stranger.ok and "may not approve" in stranger.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL


def test_reader_may_not_request(bot: Bot) -> None:
    reply = bot.run(DAVE, DEPLOY)
    assert not reply.ok and "may not request" in reply.text
    assert bot.rt.store.open_change("loan-assessor") is None


def test_double_approval_executes_once(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    first = bot.run(BOB, f"/aiops approve {change_id}")
    again = bot.run(BOB, f"/aiops approve {change_id}")
    assert first.ok and not again.ok
    assert "already" in again.text
    runs = bot.rt.store.audit(AuditQuery(change_id=change_id))
    assert [e.action for e in runs].count("execution_started") == 1


def test_concurrent_approvals_execute_once(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    barrier = threading.Barrier(4)
    replies = []

    def click(actor) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        replies.append(bot.run(actor, f"/aiops approve {change_id}"))

    threads = [threading.Thread(target=click, args=(who,)) for who in (BOB, CAROL, BOB, CAROL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.rt.background.wait_idle()
    assert sum(r.ok for r in replies) == 1
    events = bot.rt.store.audit(AuditQuery(change_id=change_id))
    assert [e.action for e in events].count("execution_started") == 1
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}


def test_reject_leaves_endpoint_alone_and_frees_it(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    reply = bot.run(CAROL, f'/aiops reject {change_id} reason="not during month end"')
    assert reply.ok
    assert bot.change(change_id).state is ChangeState.REJECTED
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    assert bot.rt.store.open_change("loan-assessor") is None
    late = bot.run(BOB, f"/aiops approve {change_id}")
    assert not late.ok and "rejected" in late.text


def test_expiry(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    bot.clock.advance(hours=3, seconds=59 * 60)
    assert expire_due(bot.rt) == []
    bot.clock.advance(seconds=61)
    expired = expire_due(bot.rt)
    assert [c.id for c in expired] == [change_id]
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "expired" in reply.text
    assert bot.split("loan-assessor") == {"1.2.0": 100}


def test_approval_after_expiry_time_is_refused_even_before_sweep(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    bot.clock.advance(hours=5)
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "expired" in reply.text
    assert bot.change(change_id).state is ChangeState.EXPIRED


def test_rollback_supersedes_a_change_that_has_not_started(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    pending = pending_id(bot)
    bot.run(BOB, f"/aiops approve {pending}")
    passing_window(bot)
    bot.run(ALICE, '/promote loan-assessor to=50 reason="looks fine"')
    promote = pending_id(bot)
    reply = bot.run(CAROL, '/rollback loan-assessor reason="P95 climbing"')
    assert reply.ok, text_of(reply)
    assert bot.change(promote).state is ChangeState.CANCELLED
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    cancelled = [
        e for e in bot.rt.store.audit(AuditQuery(change_id=promote)) if e.action == "cancel"
    ]
    assert cancelled and "rollback" in (cancelled[0].justification or "")


def test_lock_names_the_holder(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    holder = pending_id(bot)
    reply = bot.run(CAROL, '/deploy loan-assessor gemma-3-1b-it@1.1.0 reason="x"')
    assert not reply.ok
    assert holder in reply.text and "locked" in reply.text


def test_refusals_are_clear(bot: Bot) -> None:
    cases = {
        "/deploy nowhere gemma-3-1b-it@1.2.1": "unknown endpoint",
        "/deploy loan-assessor-stg gemma-3-1b-it@9.9.9": "not in the model registry",
        "/deploy loan-assessor-stg gemma-3-1b-it": "not a model version",
        "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=0": "out of range",
        "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=ten": "not a whole number",
        "/deploy loan-assessor gemma-3-1b-it@1.2.1": "needs a reason",
        '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 reason="unclosed': "is never closed",
        "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 colour=blue": "unknown option",
        "/deploy loan-assessor-stg other-model@1.0.0": "serves `gemma-3-1b-it`",
        "/promote loan-assessor-stg": "no canary",
        "/aiops frobnicate": "unknown subcommand",
        "/aiops approve CHG-999": "no change",
    }
    for line, expected in cases.items():
        reply = bot.run(ALICE, line)
        assert not reply.ok, line
        assert expected in text_of(reply), f"{line}: {text_of(reply)}"
    assert bot.rt.store.list_changes() == []  # nothing half-done
    refused = [e for e in bot.rt.store.audit(AuditQuery()) if e.outcome.startswith("refused")]
    assert len(refused) == len(cases)  # refused commands are audited too


def test_faulty_version_fails_to_deploy_and_leaves_traffic(bot: Bot) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.3.0-rc2")
    change = bot.rt.store.list_changes(limit=1)[0]
    assert change.state is ChangeState.FAILED
    assert (change.error or "").startswith("deploying gemma-3-1b-it@1.3.0-rc2 failed: ")
    assert (change.error or "").count("failed") == 1  # the platform's words, not repeated
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}
    assert bot.rt.store.open_change("loan-assessor-stg") is None


def test_status_flags_a_faulty_canary(bot: Bot) -> None:
    healthy = bot.run(DAVE, "/aiops status loan-assessor-stg")
    assert ":warning:" not in text_of(healthy)
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.3.0-rc1 canary=20")
    status = text_of(bot.run(DAVE, "/aiops status loan-assessor-stg"))
    assert ":warning:" in status and "P95" in status and ":red_circle:" in status


def test_audit_records_the_whole_story(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    bot.run(BOB, f"/aiops approve {change_id}")
    actions = [e.action for e in bot.rt.store.audit(AuditQuery(change_id=change_id))]
    for expected in (
        "plan",
        "approval_requested",
        "approve",
        "execution_started",
        "execution_finished",
    ):
        assert expected in actions
    listing = text_of(bot.run(DAVE, "/aiops audit loan-assessor since=1h"))
    assert change_id in listing and "fix tokenizer bug" in listing
    rows = bot.rt.store.audit(AuditQuery())
    assert all(r.at.tzinfo is not None for r in rows)
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))


def test_help_and_changes(bot: Bot) -> None:
    assert "/deploy <endpoint>" in text_of(bot.run(DAVE, "/aiops help"))
    assert "canary=N" in text_of(bot.run(DAVE, "/deploy help"))
    bot.run(ALICE, DEPLOY)
    assert "CHG-1" in text_of(bot.run(DAVE, "/aiops changes"))


def test_cancel_own_change(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending_id(bot)
    assert not bot.run(DAVE, f"/aiops cancel {change_id}").ok
    assert bot.run(ALICE, f"/aiops cancel {change_id}").ok
    assert bot.change(change_id).state is ChangeState.CANCELLED
    assert bot.rt.store.open_change("loan-assessor") is None
