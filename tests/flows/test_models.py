"""Model versions through the service on the sandbox: `/aiops models`, the model-risk
validation gate (and break glass over it), and the serving alias after a change."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.platforms.sandbox_registry import SandboxRegistry
from bot.slack.blocks import render_message
from commands.config import parse_config
from commands.digests.gather import FLAGGED_ACTIONS
from commands.model import ChangeState
from commands.models.alias import MAX_ATTEMPTS, AliasMove, retry_pending
from commands.models.model import GateOutcome, Review
from commands.ports import AuditQuery, PlatformError
from commands.reports.dossier import build, to_markdown
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, CAROL, Bot

MODEL = "gemma-3-1b-it"
DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'
RC1 = '/deploy loan-assessor gemma-3-1b-it@1.3.0-rc1 canary=10 reason="try rc1"'


def shown(reply: Any) -> str:
    """The reply as Slack receives it (Block Kit), readable."""
    return json.dumps(render_message(reply), ensure_ascii=False)


def pending_id(bot: Bot, slug: str = "loan-assessor") -> str:
    change = bot.rt.store.open_change(slug)
    assert change is not None
    return change.id


def set_card(bot: Bot, version: str, **fields: Any) -> None:
    """What the sandbox's registry says about `version` changes (model risk withdrew a
    sign-off, say): a config with that card, and the registry reading it."""
    data = copy.deepcopy(bot.rt.config.raw)
    card = data["models"][MODEL]["cards"][version]
    card.update({k: v for k, v in fields.items() if v is not None})
    for key in [k for k, v in fields.items() if v is None]:  # unset, as TOML would have it
        card.pop(key, None)
    config = parse_config(data, source="test.toml")
    bot.rt.config = config
    bot.rt.registry = SandboxRegistry(bot.rt.store.engine, config, bot.clock)  # type: ignore[attr-defined]


def events(bot: Bot, change_id: str | None = None, action: str | None = None) -> list[Any]:
    found = bot.rt.store.audit(AuditQuery(change_id=change_id))
    return [e for e in found if action is None or e.action == action]


def thread_lines(bot: Bot, change_id: str) -> list[str]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return [p.reply.text for p in notifier.posts if p.change_id == change_id and p.thread_ts]


# --- /aiops models ---------------------------------------------------------------------


def test_models_lists_each_version_with_aliases_shares_card_lineage_evaluation_validation(
    bot: Bot,
) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    reply = bot.run(ALICE, "/aiops models")
    assert reply.ok, shown(reply)
    message = render_message(reply)
    assert len(message["blocks"]) <= 50
    text = shown(reply)
    # newest first, every version
    order = [text.index(f"*{v}*") for v in ("1.3.0-rc2", "1.3.0-rc1", "1.2.1", "1.2.0", "1.0.0")]
    assert order == sorted(order)
    # where each serves and at what share; the serving alias on what prod serves
    assert "`loan-assessor-stg` 25%" in text and "`loan-assessor-stg` 75%" in text
    assert "*`prod`* — serves `loan-assessor` 100%" in text
    assert "`prod` names 1.2.0" in text
    # card, lineage (unknown where the registry does not know), evaluation, validation
    assert "Bug fix: the tokenizer split currency amounts" in text
    assert "*Intended use:* Drafting assessment notes" in text
    assert "pipeline run gemma-ft-loans-20261124 · dataset unknown" in text  # rc2
    assert "accuracy 0.879 · f1 0.866" in text and "(2026-11-14)" in text
    assert f"approved by <@{CAROL.id}> on 2026-11-18" in text
    assert "rejected by" in text and "dataset bq://lender-ml-data" in text
    assert "Validation is required in: `prod`" in text


def test_models_takes_an_endpoint_and_refuses_an_unknown_model(bot: Bot) -> None:
    by_endpoint = bot.run(ALICE, "/aiops models loan-assessor")
    assert by_endpoint.ok and "gemma-3-1b-it" in by_endpoint.text
    unknown = bot.run(ALICE, "/aiops models gemma-3-1b")
    assert not unknown.ok
    assert "unknown model `gemma-3-1b`; did you mean `gemma-3-1b-it`?" in unknown.text
    help_text = shown(bot.run(ALICE, "/aiops help models"))
    assert "/aiops models [model|endpoint]" in help_text


# --- the validation gate ---------------------------------------------------------------


def test_an_unvalidated_version_is_refused_in_prod_saying_who_signs_off_and_break_glass(
    bot: Bot,
) -> None:
    set_card(bot, "1.3.0-rc1", validation="pending", validated_by=None, validated_at=None)
    reply = bot.run(ALICE, RC1)
    assert not reply.ok
    text = shown(reply)
    assert "may not go into `prod`" in text and "pending (no sign-off recorded)" in text
    assert f"<@{CAROL.id}>" in text  # the validator
    assert f"break-glass list (<@{BOB.id}>)" in text and "break_glass=true" in text
    assert bot.rt.store.open_change("loan-assessor") is None
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    refused = events(bot, action="command")[-1]
    assert refused.parameters["code"] == "not_validated"
    # rejected is refused too (the example's rc2); staging does not require validation
    rc2 = bot.run(ALICE, RC1.replace("rc1", "rc2"))
    assert not rc2.ok and "*rejected by carol on 2026-11-25*" in rc2.text
    staging = bot.run(ALICE, RC1.replace("loan-assessor ", "loan-assessor-stg "))
    assert staging.ok, shown(staging)
    stg = bot.rt.store.list_changes(endpoint="loan-assessor-stg", limit=1)[0]
    review = Review.from_json(stg.plan.model_review)
    assert review is not None and review.outcome is GateOutcome.NOT_REQUIRED


def test_a_validated_version_passes_and_its_card_audit_and_dossier_show_what_was_approved(
    bot: Bot,
) -> None:
    reply = bot.run(ALICE, DEPLOY)
    assert reply.ok, shown(reply)
    change_id = pending_id(bot)
    card = shown(reply)
    assert "*Model version:* `gemma-3-1b-it@1.2.1`" in card
    assert "Bug fix: the tokenizer split currency amounts" in card
    assert "pipeline run gemma-ft-loans-20261112" in card and "accuracy 0.879" in card
    assert f"approved by <@{CAROL.id}> on 2026-11-18" in card and "gate passed" in card
    plan = events(bot, change_id, "plan")[0]
    gate = plan.parameters["validation_gate"]
    assert gate["gate"] == "passed" and gate["required"] is True
    assert gate["validation"] == {
        "status": "approved",
        "by": "carol",
        "at": gate["validation"]["at"],
    }
    assert gate["lineage"]["dataset"] == "bq://lender-ml-data.loans.applications_deid_2026q2"
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
    dossier = build(bot.rt.store, bot.rt.config, change_id)
    assert dossier["model"]["review"]["gate"] == "passed"
    markdown = to_markdown(dossier)
    assert "## Model version under review" in markdown
    assert "- Validation gate: **passed**" in markdown
    assert "- Latest evaluation: accuracy 0.879, f1 0.866" in markdown


def test_break_glass_overrides_the_gate_and_is_flagged(bot: Bot) -> None:
    set_card(bot, "1.3.0-rc1", validation="pending", validated_by=None, validated_at=None)
    glass = RC1.replace('reason="try rc1"', 'break_glass=true reason="P1: fraud model down"')
    assert not bot.run(ALICE, glass).ok  # alice is not on the break-glass list
    reply = bot.run(BOB, glass)
    assert reply.ok, shown(reply)
    change = bot.rt.store.list_changes(endpoint="loan-assessor", limit=1)[0]
    assert change.state is ChangeState.SUCCEEDED
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.3.0-rc1": 10}
    review = Review.from_json(change.plan.model_review)
    assert review is not None and review.outcome is GateOutcome.OVERRIDDEN
    override = events(bot, change.id, "validation_override")
    assert len(override) == 1 and override[0].justification == "P1: fraud model down"
    assert override[0].parameters["validation_gate"]["validation"]["status"] == "pending"
    assert "validation_override" in FLAGGED_ACTIONS  # named by every digest
    assert "Validation gate overridden" in shown(reply)
    d = build(bot.rt.store, bot.rt.config, change.id)
    assert d["request"]["break_glass"] and d["model"]["review"]["gate"] == "overridden"
    assert [r["action"] for r in d["decisions"]["audit"]].count("validation_override") == 1


def test_a_sign_off_withdrawn_before_the_approval_stops_the_approval(bot: Bot) -> None:
    assert bot.run(ALICE, DEPLOY).ok
    change_id = pending_id(bot)
    set_card(bot, "1.2.1", validation="rejected")
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "no longer passes the validation gate" in reply.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    assert events(bot, change_id, "decision_refused")


def test_a_promote_of_an_unvalidated_canary_is_refused(bot: Bot) -> None:
    assert bot.run(ALICE, DEPLOY).ok
    bot.run(BOB, f"/aiops approve {pending_id(bot)}")
    set_card(bot, "1.2.1", validation="pending", validated_by=None)
    reply = bot.run(ALICE, '/promote loan-assessor force=true reason="looks fine"')
    assert not reply.ok and "`gemma-3-1b-it@1.2.1` may not go into `prod`" in reply.text
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}


def test_validation_by_someone_who_is_not_a_validator_does_not_count(bot: Bot) -> None:
    set_card(bot, "1.2.1", validated_by="alice")
    reply = bot.run(ALICE, DEPLOY)
    assert not reply.ok and "approved by alice, who is not one of its validators" in reply.text


def test_break_glass_may_pass_the_gate_where_no_approval_is_needed(bot: Bot) -> None:
    data = copy.deepcopy(bot.rt.config.raw)
    data["environments"]["staging"] |= {"require_validation": True, "break_glass": ["bob"]}
    config = parse_config(data, source="test.toml")
    bot.rt.config = config
    bot.rt.registry = SandboxRegistry(bot.rt.store.engine, config, bot.clock)  # type: ignore[attr-defined]
    set_card(bot, "1.3.0-rc1", validation="pending", validated_by=None, validated_at=None)
    stg = RC1.replace("loan-assessor ", "loan-assessor-stg ")
    assert not bot.run(ALICE, stg).ok
    glass = stg.replace('reason="try rc1"', 'break_glass=true reason="demo for the regulator"')
    reply = bot.run(BOB, glass)
    assert reply.ok, shown(reply)


# --- the serving alias ------------------------------------------------------------------


def _full_promote(bot: Bot) -> str:
    assert bot.run(ALICE, DEPLOY).ok
    bot.run(BOB, f"/aiops approve {pending_id(bot)}")
    assert bot.run(ALICE, '/promote loan-assessor force=true reason="all good"').ok
    promote = pending_id(bot)
    bot.run(CAROL, f"/aiops approve {promote}")
    assert bot.split("loan-assessor") == {"1.2.1": 100}
    return promote


def _prod_alias(bot: Bot) -> str | None:
    assert bot.rt.registry is not None
    return next((v.version for v in bot.rt.registry.versions(MODEL) if "prod" in v.aliases), None)


def test_the_serving_alias_follows_a_full_promote_and_a_rollback(bot: Bot) -> None:
    assert _prod_alias(bot) == "1.2.0"
    assert bot.run(ALICE, DEPLOY).ok
    deploy = pending_id(bot)
    bot.run(BOB, f"/aiops approve {deploy}")
    assert _prod_alias(bot) == "1.2.0"  # a canary split moves nothing
    assert not events(bot, action="alias_moved")

    promote = _full_promote_from_canary(bot)
    assert _prod_alias(bot) == "1.2.1"
    moved = events(bot, promote, "alias_moved")
    assert len(moved) == 1
    assert moved[0].parameters | {"attempt": 1} == {
        "alias": "prod",
        "model": MODEL,
        "version": "1.2.1",
        "previous": "1.2.0",
        "attempt": 1,
        "error": None,
    }
    assert any(
        "Registry alias `prod`" in line and "now names 1.2.1" in line
        for line in thread_lines(bot, promote)
    )
    assert "*`prod`* — serves `loan-assessor` 100%" in shown(bot.run(ALICE, "/aiops models"))

    assert bot.run(CAROL, '/rollback loan-assessor reason="P95 above 2 s"').ok
    rollback = bot.rt.store.list_changes(endpoint="loan-assessor", limit=1)[0]
    assert rollback.state is ChangeState.SUCCEEDED and bot.split("loan-assessor") == {"1.2.0": 100}
    assert _prod_alias(bot) == "1.2.0"
    back = events(bot, rollback.id, "alias_moved")
    assert len(back) == 1 and back[0].parameters["previous"] == "1.2.1"
    move = AliasMove.from_json(rollback.plan.serving_alias)
    assert move is not None and move.state == "moved"
    dossier = to_markdown(build(bot.rt.store, bot.rt.config, rollback.id))
    assert "- Serving alias `prod` → 1.2.0: moved after 1 attempt(s) (was 1.2.1)" in dossier


def test_every_change_that_moves_the_serving_alias_shows_it_in_its_dossier(bot: Bot) -> None:
    """A blue/green's rollback is one traffic update (no version of its own, no model review)
    and still moves the alias back: its dossier says so, as the deploy's does."""
    assert bot.run(ALICE, f'/deploy loan-assessor {MODEL}@1.2.1 strategy=blue-green reason="x"').ok
    deploy = pending_id(bot)
    bot.run(BOB, f"/aiops approve {deploy}")
    assert _prod_alias(bot) == "1.2.1"
    assert bot.run(CAROL, '/rollback loan-assessor reason="P95 above 2 s"').ok
    rollback = bot.rt.store.list_changes(endpoint="loan-assessor", limit=1)[0]
    assert rollback.state is ChangeState.SUCCEEDED and _prod_alias(bot) == "1.2.0"
    for change_id, line in (
        (deploy, "- Serving alias `prod` → 1.2.1: moved after 1 attempt(s) (was 1.2.0)"),
        (rollback.id, "- Serving alias `prod` → 1.2.0: moved after 1 attempt(s) (was 1.2.1)"),
    ):
        dossier = to_markdown(build(bot.rt.store, bot.rt.config, change_id))
        assert line in dossier, change_id
        assert "alias_moved: alias prod now names" in dossier


def _full_promote_from_canary(bot: Bot) -> str:
    assert bot.run(ALICE, '/promote loan-assessor force=true reason="all good"').ok
    promote = pending_id(bot)
    bot.run(CAROL, f"/aiops approve {promote}")
    assert bot.split("loan-assessor") == {"1.2.1": 100}
    return promote


def test_a_staging_change_moves_no_alias(bot: Bot) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=100")
    assert bot.split("loan-assessor-stg") == {"1.2.1": 100}
    assert _prod_alias(bot) == "1.2.0" and not events(bot, action="alias_moved")


class FailingMoves:
    """The sandbox's registry, refusing the next `times` alias moves as a registry that is
    down would."""

    def __init__(self, inner: SandboxRegistry, times: int) -> None:
        self.inner = inner
        self.left = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def move_alias(self, *args: Any, **kw: Any) -> str | None:
        if self.left:
            self.left -= 1
            raise PlatformError("the Model Registry did not answer (503)", kind="unavailable")
        return self.inner.move_alias(*args, **kw)


def test_a_failed_alias_move_is_reported_kept_and_retried_until_it_lands(bot: Bot) -> None:
    assert isinstance(bot.rt.registry, SandboxRegistry)
    bot.rt.registry = FailingMoves(bot.rt.registry, times=2)  # type: ignore[assignment]
    promote = _full_promote(bot)
    change = bot.change(promote)
    assert change.state is ChangeState.SUCCEEDED  # the change itself is done
    move = AliasMove.from_json(change.plan.serving_alias)
    assert move is not None and (move.state, move.attempts) == ("pending", 1)
    failed = events(bot, promote, "alias_move_failed")
    assert len(failed) == 1 and failed[0].parameters["will_retry"] is True
    assert any(
        "Could not move registry alias `prod`" in line for line in thread_lines(bot, promote)
    )
    assert _prod_alias(bot) == "1.2.0"

    assert retry_pending(bot.rt) == 1  # still failing: attempt 2
    assert len(events(bot, promote, "alias_move_failed")) == 2
    assert retry_pending(bot.rt) == 1  # lands
    assert _prod_alias(bot) == "1.2.1"
    moved = events(bot, promote, "alias_moved")
    assert (
        len(moved) == 1 and moved[0].actor_id == "scheduler" and moved[0].parameters["attempt"] == 3
    )
    assert AliasMove.from_json(bot.change(promote).plan.serving_alias).state == "moved"  # type: ignore[union-attr]
    assert retry_pending(bot.rt) == 0  # nothing pending


def test_a_pending_move_is_dropped_once_the_endpoint_serves_something_else(bot: Bot) -> None:
    assert isinstance(bot.rt.registry, SandboxRegistry)
    bot.rt.registry = FailingMoves(bot.rt.registry, times=1)  # type: ignore[assignment]
    promote = _full_promote(bot)
    # the registry is down for the rollback's move too: it stays pending
    bot.rt.registry.left = 1  # type: ignore[attr-defined]
    assert bot.run(CAROL, '/rollback loan-assessor reason="P95 above 2 s"').ok
    rollback = bot.rt.store.list_changes(endpoint="loan-assessor", limit=1)[0]
    assert retry_pending(bot.rt) == 2
    assert AliasMove.from_json(bot.change(promote).plan.serving_alias).state == "dropped"  # type: ignore[union-attr]
    # the promote's move never landed: the alias still names 1.2.0, what the rollback left
    assert AliasMove.from_json(bot.change(rollback.id).plan.serving_alias).state == "unchanged"  # type: ignore[union-attr]
    assert _prod_alias(bot) == "1.2.0"


def test_a_move_that_never_lands_is_given_up_and_the_ops_channel_told(bot: Bot) -> None:
    assert isinstance(bot.rt.registry, SandboxRegistry)
    bot.rt.registry = FailingMoves(bot.rt.registry, times=MAX_ATTEMPTS + 5)  # type: ignore[assignment]
    promote = _full_promote(bot)
    for _ in range(MAX_ATTEMPTS):
        retry_pending(bot.rt)
    move = AliasMove.from_json(bot.change(promote).plan.serving_alias)
    assert move is not None and (move.state, move.attempts) == ("failed", MAX_ATTEMPTS)
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    ops = [p for p in notifier.posts if p.channel == bot.rt.config.channels.ops]
    assert any("Gave up moving registry alias `prod`" in p.reply.text for p in ops)
    assert retry_pending(bot.rt) == 0


def test_the_scheduler_retries_pending_alias_moves(bot: Bot) -> None:
    from bot.wiring import make_scheduler
    from commands.service import Service

    scheduler = make_scheduler(Service(bot.rt))
    assert scheduler.jobs["every:serving-alias"].interval == 60
    assert isinstance(bot.rt.registry, SandboxRegistry)
    bot.rt.registry = FailingMoves(bot.rt.registry, times=1)  # type: ignore[assignment]
    promote = _full_promote(bot)
    assert _prod_alias(bot) == "1.2.0"
    result = scheduler.fire("every:serving-alias", bot.clock.now)
    assert result.ran and result.outcome == "1"
    assert _prod_alias(bot) == "1.2.1"
    assert AliasMove.from_json(bot.change(promote).plan.serving_alias).state == "moved"  # type: ignore[union-attr]
