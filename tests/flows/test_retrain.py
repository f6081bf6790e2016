"""Retraining from drift on the sandbox (`/aiops retrain`): a change like any other, under
the retrain environment's approval, whose pipeline job is stored, polled and resumed; the
version it registers in `/aiops models`, pending validation (prod's gate refuses it until
model risk signs it off); a failed run; a worker that dies mid-run; a running retrain that
holds no endpoint; one retrain per model; the config's rules; the digest's drift line with
its Retrain button (on the wire) and a drift alert naming the training pipeline."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.platforms.sandbox_registry import PIPELINE_KIND, SandboxRegistry, next_patch
from bot.slack.blocks import render_message
from bot.slack.notifier import SlackNotifier
from bot.store.sandbox_tables import SandboxOperationRow
from commands.audit import AuditAction
from commands.changes.execute import PIPELINE_POLL_SECONDS, take_over
from commands.config import Config, ConfigError, Endpoint, parse_config
from commands.digests.post import post
from commands.digests.schedule import DigestKind
from commands.incidents.alerts import receive_alert
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.model import ChangeKind, ChangeState, EndpointHealth, Invocation, model_key
from commands.models.model import RetrainSpec, ValidationStatus
from commands.ports import AuditQuery
from commands.reports.dossier import build, to_markdown
from commands.runtime import LEASE_TTL, NullNotifier, Runtime
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    Bot,
    DiesAfter,
    FakeClock,
    SlackStub,
    Stopped,
    endpoint_health,
    example_config,
    make_runtime,
)

MODEL = "gemma-3-1b-it"
RETRAIN = f'/aiops retrain {MODEL} reason="drift 0.14 on loan-assessor since Monday"'
DEAD = "deadhost:4242:deadbeef"


def text_of(reply: Any) -> str:
    """The reply as Slack receives it (Block Kit), readable."""
    return json.dumps(render_message(reply), ensure_ascii=False)


def config_with(**model: Any) -> Config:
    raw = copy.deepcopy(example_config().raw)
    raw["models"][MODEL].update(model)
    return parse_config(raw, source="test.toml")


def bot_on(engine: Engine, clock: FakeClock, config: Config | None = None) -> Bot:
    """A process on `engine` (its own runtime, platform, registry and workers)."""
    return Bot(make_runtime(engine, clock, config=config), clock)


def open_retrain(bot: Bot) -> str:
    change = bot.rt.store.open_change(model_key(MODEL))
    assert change is not None
    return change.id


def actions(rt: Runtime, change_id: str) -> list[str]:
    return [e.action for e in rt.store.audit(AuditQuery(change_id=change_id))]


def runs(engine: Engine) -> list[SandboxOperationRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(SandboxOperationRow).where(SandboxOperationRow.kind == PIPELINE_KIND)
            ).all()
        )


def thread_lines(rt: Runtime, change_id: str) -> list[str]:
    assert isinstance(rt.notifier, NullNotifier)
    return [p.reply.text for p in rt.notifier.posts if p.change_id == change_id and p.thread_ts]


def typed(bot: Bot, actor: Any, line: str) -> str:
    """Type a command without waiting for its background work; its answer's text."""
    command, _, text = line.partition(" ")
    reply = bot.service.handle(Invocation(actor, command, text, channel_id="C0TEST"))
    assert reply.ok, reply.text
    return str(reply.text)


# --- the flow ----------------------------------------------------------------------------


def test_a_prod_retrain_waits_for_approval_runs_and_registers_the_next_patch_pending_validation(
    bot: Bot,
) -> None:
    reply = bot.run(ALICE, RETRAIN)
    assert reply.ok and reply.text.endswith("waiting for approval"), reply.text
    card = text_of(reply)
    # the plan: what runs, with which parameters, where, what it costs, what serves now
    assert "retrain · gemma-3-1b-it (prod)" in card
    assert "kfp.pkg.dev/lender-ml-pipelines/pipelines/gemma-ft-loans/v3" in card
    assert "`epochs=3`" in card and "`dataset=bq://lender-ml-data.loans" in card
    assert "`lender-aiops-prod` · australia-southeast1 (`prod`)" in card
    assert "$38.50" in card
    assert "1.2.0: pipeline run gemma-ft-loans-20260904" in card
    change_id = open_retrain(bot)
    assert runs(bot.rt.store.engine) == []  # nothing runs before approval
    plan = bot.rt.store.audit(AuditQuery(change_id=change_id, limit=10))[0]
    assert plan.action == "plan" and plan.target == model_key(MODEL)
    assert plan.parameters["pipeline_parameters"]["epochs"] == 3
    # the requester may not approve it; an approver of prod does
    assert not bot.run(ALICE, f"/aiops approve {change_id}").ok
    assert bot.run(BOB, f"/aiops approve {change_id}").ok

    done = bot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.kind is ChangeKind.RETRAIN and done.plan.registered_version == f"{MODEL}@1.2.2"
    assert done.version is None  # the run's outcome is not written into the approved plan
    assert done.operation and "/pipelineJobs/" in done.operation
    assert done.operation.startswith("projects/lender-aiops-prod/locations/australia-southeast1/")
    assert [r.payload["labels"]["aiops_change"] for r in runs(bot.rt.store.engine)] == [
        change_id.lower()
    ]
    assert actions(bot.rt, change_id) == [
        "plan",
        "approval_requested",
        "decision_refused",  # the requester's own click
        "approve",
        "execution_started",
        "pipeline_submitted",
        "model_registered",
        "execution_finished",
    ]
    lines = thread_lines(bot.rt, change_id)
    assert any("submitted in `lender-aiops-prod`" in line for line in lines)
    assert any(f"`{MODEL}@1.2.2` is registered, validation pending" in line for line in lines)

    # the new version in /aiops models: its lineage is this run, validation pending
    models = text_of(bot.run(ALICE, f"/aiops models {MODEL}"))
    assert "*1.2.2*  `v1-2-2` — not deployed" in models
    assert f"Lineage: pipeline run {done.operation}" in models
    assert "dataset bq://lender-ml-data.loans.applications_deid_latest" in models
    assert bot.rt.registry is not None
    registered = bot.rt.registry.version(MODEL, "1.2.2")
    assert registered is not None and registered.validation.status is ValidationStatus.PENDING

    # staging takes it (no validation required); prod's gate refuses it until signed off
    assert bot.run(ALICE, f"/deploy loan-assessor-stg {MODEL}@1.2.2 canary=25").ok
    assert bot.split("loan-assessor-stg") == {"1.2.0": 75, "1.2.2": 25}
    refused = bot.run(ALICE, f'/deploy loan-assessor {MODEL}@1.2.2 reason="retrained"')
    assert not refused.ok and "may not go into `prod`" in refused.text
    assert "pending (no sign-off recorded)" in refused.text
    assert bot.rt.store.open_change("loan-assessor") is None
    # model risk signs it off (the sandbox's registry: its card in the config)
    raw = copy.deepcopy(bot.rt.config.raw)
    raw["models"][MODEL]["versions"].append("1.2.2")
    raw["models"][MODEL]["cards"]["1.2.2"] = {
        "description": "Retrained on the latest de-identified applications",
        "validation": "approved",
        "validated_by": "carol",
        "validated_at": "2026-11-27",
    }
    bot.rt.config = parse_config(raw, source="test.toml")
    bot.rt.registry = SandboxRegistry(bot.rt.store.engine, bot.rt.config, bot.clock)
    allowed = bot.run(ALICE, f'/deploy loan-assessor {MODEL}@1.2.2 reason="retrained"')
    assert allowed.ok and allowed.text.endswith("waiting for approval"), allowed.text

    # the dossier keeps what ran
    dossier = build(bot.rt.store, bot.rt.config, change_id)
    assert dossier["request"]["model"] == MODEL
    assert dossier["plan"]["pipeline"]["template"].endswith("/gemma-ft-loans/v3")
    markdown = to_markdown(dossier)
    assert f"- What: retrain of model `{MODEL}` (prod)" in markdown
    assert "- Training pipeline: `https://australia-southeast1-kfp.pkg.dev/" in markdown
    # what ran is what was approved: the registered version is the run's outcome
    assert dossier["plan"]["plan_unchanged"] is True
    assert "- Plan unchanged since: yes" in markdown
    assert dossier["execution"]["registered_version"] == f"{MODEL}@1.2.2"
    assert f"- Registered version: `{MODEL}@1.2.2`" in markdown
    assert f"→ registered {MODEL}@1.2.2" in text_of(bot.run(ALICE, "/aiops changes"))


def test_a_failed_pipeline_fails_the_change_saying_why_and_registers_nothing(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = bot_on(sqlite_engine, clock, config_with(retrain_fails=True))
    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    assert bot.run(CAROL, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.FAILED
    assert done.error == (
        "the pipeline job failed: the pipeline's training task failed: the trainer exited with"
        " code 1 (loss diverged at epoch 2)"
    )
    assert done.version is None and done.operation
    assert "model_registered" not in actions(bot.rt, change_id)
    finished = bot.rt.store.audit(AuditQuery(change_id=change_id))[-1]
    assert finished.action == "execution_finished" and finished.outcome.startswith("failed:")
    assert any(
        f"No version of `{MODEL}` was registered from it." in line
        for line in thread_lines(bot.rt, change_id)
    )
    models = text_of(bot.run(ALICE, f"/aiops models {MODEL}"))
    assert "1.2.2" not in models
    card = text_of(bot.run(ALICE, "/aiops changes"))
    assert f"*{change_id}* retrain `{MODEL}` · failed" in card
    assert bot.rt.platform.model_versions(MODEL)[-1] == "1.3.0-rc2"
    # the model is free again: another retrain may be requested
    assert bot.run(ALICE, RETRAIN).ok


def test_a_worker_that_dies_after_submitting_is_taken_over_and_its_job_adopted_not_resubmitted(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    dead = bot_on(sqlite_engine, clock)
    assert dead.run(ALICE, RETRAIN).ok
    change_id = open_retrain(dead)
    # the worker's process ends right after the job reached the platform, before its name
    # was stored
    dead.rt.registry = DiesAfter(dead.rt.registry, "begin_pipeline")  # type: ignore[assignment]
    with contextlib.suppress(Stopped):
        dead.run(BOB, f"/aiops approve {change_id}")
    stranded = dead.change(change_id)
    assert stranded.state is ChangeState.RUNNING and stranded.operation is None
    assert len(runs(sqlite_engine)) == 1
    assert dead.rt.store.take_lease(change_id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)

    taker = bot_on(sqlite_engine, clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    (run,) = runs(sqlite_engine)  # adopted: no second job
    assert done.operation == run.name and done.plan.registered_version == f"{MODEL}@1.2.2"
    submitted = [
        e
        for e in taker.rt.store.audit(AuditQuery(change_id=change_id))
        if e.action == AuditAction.PIPELINE_SUBMITTED
    ]
    assert [e.outcome for e in submitted] == ["adopted"]
    assert "execution_resumed" in actions(taker.rt, change_id)


def test_a_worker_that_dies_while_polling_is_taken_over_and_the_taker_polls_the_same_job(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    dead = bot_on(sqlite_engine, clock)
    assert dead.run(ALICE, RETRAIN).ok
    change_id = open_retrain(dead)

    def stop(_seconds: float) -> None:
        raise Stopped  # the process ends at its first wait between polls

    dead.rt.sleep = stop
    with contextlib.suppress(Stopped):
        dead.run(BOB, f"/aiops approve {change_id}")
    stranded = dead.change(change_id)
    assert stranded.state is ChangeState.RUNNING and stranded.operation
    assert dead.rt.store.take_lease(change_id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)

    taker = bot_on(sqlite_engine, clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(change_id)
    assert done.state is ChangeState.SUCCEEDED and done.operation == stranded.operation
    assert len(runs(sqlite_engine)) == 1
    assert actions(taker.rt, change_id).count("pipeline_submitted") == 1  # by the dead worker
    assert "execution_resumed" in actions(taker.rt, change_id)


def test_a_job_of_another_database_with_the_same_change_id_is_not_adopted(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """Adoption needs the change's id *and* its request's run key on the job."""
    bot = bot_on(sqlite_engine, clock)
    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    env = bot.rt.config.environments["prod"]
    assert bot.rt.registry is not None
    bot.rt.registry.begin_pipeline(
        MODEL,
        "gs://elsewhere/old/pipeline.json",
        {},
        {"aiops_change": change_id.lower(), "aiops_run": "0ld0ld0ld0ld", "aiops_model": MODEL},
        env,
        display_name="an old run",
    )
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED
    assert len(runs(sqlite_engine)) == 2
    spec = RetrainSpec.from_json(done.plan.pipeline)
    assert spec is not None
    mine = [r for r in runs(sqlite_engine) if r.payload["labels"]["aiops_run"] == spec.run_key]
    assert [r.name for r in mine] == [done.operation]


def test_a_running_retrain_holds_no_endpoint_and_a_second_retrain_of_the_model_is_refused(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    first = bot_on(sqlite_engine, clock)  # the process running the retrain
    gate, polling = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        if seconds == PIPELINE_POLL_SECONDS and not gate.is_set():
            polling.set()  # the pipeline job is submitted and running
            assert gate.wait(30)
        clock.advance(seconds)

    first.rt.sleep = sleep
    typed(first, ALICE, RETRAIN)
    change_id = open_retrain(first)
    typed(first, BOB, f"/aiops approve {change_id}")
    assert polling.wait(10)
    running = first.change(change_id)
    assert running.state is ChangeState.RUNNING and running.operation

    other = bot_on(sqlite_engine, clock)  # another process: deploys, rollbacks, a 2nd retrain
    again = other.run(CAROL, RETRAIN)
    assert not again.ok
    assert f"`{MODEL}` is being retrained by {change_id}" in again.text
    assert "Deploys and rollbacks" in text_of(again)
    refused = [e for e in other.rt.store.audit(AuditQuery()) if e.action == "command"][-1]
    assert refused.parameters["code"] == "locked"
    # the model's endpoints move as if nothing ran: a prod deploy, approved and run, then a
    # rollback; a staging deploy and promote
    deploy = other.run(ALICE, f'/deploy loan-assessor {MODEL}@1.2.1 canary=10 reason="fix"')
    assert deploy.ok, deploy.text
    deploy_id = other.rt.store.open_change("loan-assessor")
    assert deploy_id is not None
    assert other.run(CAROL, f"/aiops approve {deploy_id.id}").ok
    assert other.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}
    assert other.run(ALICE, '/rollback loan-assessor reason="P95 up"').ok
    assert other.split("loan-assessor") == {"1.2.0": 100}
    assert other.run(ALICE, f"/deploy loan-assessor-stg {MODEL}@1.2.1 canary=25").ok
    assert other.run(ALICE, "/promote loan-assessor-stg").ok
    assert other.split("loan-assessor-stg") == {"1.2.1": 100}
    # status shows the retrain beside the endpoints it does not hold
    status = text_of(other.run(ALICE, "/aiops status loan-assessor"))
    assert f"model retraining: 🔄 {change_id} (running)" in status
    assert f"{change_id}" not in text_of(other.run(ALICE, "/aiops changes loan-assessor"))
    assert f"*{change_id}* retrain `{MODEL}` · running" in text_of(
        other.run(ALICE, f"/aiops changes {MODEL}")
    )
    assert f"retraining: {change_id} (running)" in text_of(other.run(ALICE, "/aiops models"))
    assert first.change(change_id).state is ChangeState.RUNNING

    gate.set()
    first.rt.background.wait_idle(30)
    assert first.change(change_id).state is ChangeState.SUCCEEDED
    # once it ended, the model may be retrained again
    assert other.run(CAROL, RETRAIN).ok


def test_retrain_refuses_what_it_cannot_do(bot: Bot) -> None:
    unknown = bot.run(ALICE, "/aiops retrain gemma-3-1b")
    assert not unknown.ok and "did you mean `gemma-3-1b-it`" in unknown.text
    no_reason = bot.run(ALICE, f"/aiops retrain {MODEL}")
    assert not no_reason.ok and "a retrain in `prod` needs a reason" in no_reason.text
    dave = bot.run(DAVE, f'/aiops retrain {MODEL} reason="x"')
    assert not dave.ok and "may not request changes in `prod`" in dave.text
    glass = bot.run(BOB, f'/aiops retrain {MODEL} break_glass=true reason="x"')
    assert not glass.ok  # nothing serves from a training run: no glass to break
    by_endpoint = bot.run(ALICE, '/aiops retrain loan-assessor-stg reason="drift on staging"')
    assert by_endpoint.ok and open_retrain(bot)
    assert "Run a model's training pipeline" in text_of(bot.run(ALICE, "/aiops retrain help"))

    raw = copy.deepcopy(bot.rt.config.raw)
    del raw["models"][MODEL]["retrain_template"]
    bot.rt.config = parse_config(raw, source="test.toml")
    bot.run(ALICE, f"/aiops cancel {open_retrain(bot)}")
    none = bot.run(ALICE, RETRAIN)
    assert not none.ok and "has no training pipeline configured" in none.text
    assert "`retrain_template`" in text_of(none)


def test_the_retrain_environment_defaults_to_the_strictest_and_the_config_is_checked() -> None:
    raw = copy.deepcopy(example_config().raw)
    del raw["models"][MODEL]["retrain_environment"]
    assert parse_config(raw).models[MODEL].retrain_environment == "prod"
    only_staging = copy.deepcopy(raw)
    del only_staging["endpoints"]["loan-assessor"]
    del only_staging["runbooks"]["endpoints"]["loan-assessor"]
    assert parse_config(only_staging).models[MODEL].retrain_environment == "staging"
    assert config_with(retrain_environment="dev").models[MODEL].retrain_environment == "dev"
    no_template = copy.deepcopy(raw)
    del no_template["models"][MODEL]["retrain_template"]
    assert parse_config(no_template).models[MODEL].retrain_environment is None

    with pytest.raises(ConfigError) as bad:
        config_with(retrain_environment="qa")
    assert "retrain_environment: `qa` is not an environment" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        config_with(retrain_template="https://example.com/pipeline.yaml")
    assert "retrain_template" in str(bad.value)
    assert config_with(retrain_template="gs://lender-ml/gemma/pipeline.json")
    lonely = copy.deepcopy(raw)
    lonely["models"]["orphan"] = {
        "versions": ["1.0.0"],
        "retrain_template": "gs://lender-ml/orphan/pipeline.json",
    }
    with pytest.raises(ConfigError) as bad:
        parse_config(lonely)
    assert "no endpoint serves this model" in str(bad.value)
    colon = copy.deepcopy(raw)
    colon["endpoints"]["model:x"] = dict(colon["endpoints"]["loan-assessor-stg"])
    with pytest.raises(ConfigError) as bad:
        parse_config(colon)
    assert "holds `:`" in str(bad.value)


def test_the_next_patch_follows_the_newest_release() -> None:
    versions = ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1", "1.3.0-rc2"]
    assert next_patch(versions) == "1.2.2"
    assert next_patch([*versions, "1.2.2"]) == "1.2.3"
    assert next_patch(["2.0.0-rc1"]) == "0.0.1"


# --- drift: the digest's line and button, the alert's lineage -----------------------------


class Drifting:
    """The sandbox, with the figures set by the test (drift on some endpoints)."""

    def __init__(self, inner: Any, health: dict[str, EndpointHealth]) -> None:
        self.inner = inner
        self._health = health

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        return {e.slug: self._health[e.slug] for e in endpoints if e.slug in self._health}


MORNING = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)  # Tuesday 08:30 in Sydney


def buttons_of(body: dict[str, Any], action_id: str) -> list[dict[str, Any]]:
    return [
        e
        for b in body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    ]


def test_the_digest_names_the_drifting_versions_training_pipeline_and_offers_a_retrain_button(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    clock = FakeClock(MORNING)
    notifier = SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url))
    rt = make_runtime(sqlite_engine, clock, notifier)
    bot = Bot(rt, clock)
    rt.platform = Drifting(  # type: ignore[assignment]
        rt.platform,
        {
            "loan-assessor": endpoint_health("loan-assessor", drift=0.142),
            "loan-assessor-stg": endpoint_health("loan-assessor-stg", drift=0.05),
        },
    )
    post(rt, DigestKind.MORNING, "prod")
    (body,) = [c.body for c in stub.of("chat.postMessage") if "Drift: retrain?" in str(c.body)]
    text = json.dumps(body, ensure_ascii=False)
    assert (
        ":ocean: *loan-assessor* drift 0.142 > 0.1 · serves 1.2.0, from its training pipeline"
        " run gemma-ft-loans-20260904 (dataset bq://lender-ml-data.loans.applications_deid_2026q2)"
        f" · `/aiops retrain {MODEL}`"
    ) in text
    assert "loan-assessor-stg" not in text.split("Drift: retrain?")[1].split("*")[0]
    (button,) = buttons_of(body, "retrain")
    assert button["text"]["text"] == f"Retrain {MODEL}"
    assert button["value"] == (
        f'{MODEL} reason="drift 0.142 above 0.1 on loan-assessor (morning digest)"'
    )
    assert button["confirm"]["title"]["text"] == f"Request a retrain of {MODEL}?"
    assert len(button["value"]) <= 2000
    # the click is a request under prod's rules (its reason is the one prod requires)
    clicked = bot.run(ALICE, f"/aiops retrain {button['value']}")
    assert clicked.ok and clicked.text.endswith("waiting for approval"), clicked.text
    change_id = open_retrain(bot)
    # with a retrain open, the next digest says so and offers no second one
    stub.calls.clear()
    clock.advance(days=1)
    post(rt, DigestKind.MORNING, "prod")
    (again,) = [c.body for c in stub.of("chat.postMessage") if "Drift: retrain?" in str(c.body)]
    assert f"`{MODEL}` is being retrained: {change_id}" in json.dumps(again, ensure_ascii=False)
    assert buttons_of(again, "retrain") == []
    # a pending retrain waits in prod's digest like any approval
    assert f"*{change_id}* retrain `{MODEL}`" in json.dumps(again, ensure_ascii=False)


def test_a_drift_alert_names_the_serving_versions_training_pipeline_and_the_retrain(
    bot: Bot,
) -> None:
    notice = AlertNotice(
        key="health-watch:loan-assessor:drift:2026-11-26T22:50:00+00:00",
        source=AlertSource.HEALTH_WATCH,
        state=AlertState.OPEN,
        policy="health watch: drift",
        condition="drift above 0.100 for 2 window(s) of 5m",
        endpoint="loan-assessor",
        environment="prod",
        summary="loan-assessor: drift 0.142 above 0.100 for 2 window(s) (10m)",
        observed="drift 0.142 > 0.100",
        labels={"metric": "drift", "threshold": "0.1"},
    )
    record = receive_alert(bot.rt, notice)
    assert record.notice.labels["aiops_training_pipeline"] == "gemma-ft-loans-20260904"
    assert isinstance(bot.rt.notifier, NullNotifier)
    message = json.dumps(render_message(bot.rt.notifier.posts[-1].reply), ensure_ascii=False)
    assert (
        "*Trained by:* 1.2.0 came from training pipeline run gemma-ft-loans-20260904 (dataset"
        " bq://lender-ml-data.loans.applications_deid_2026q2). Retrain it on fresh data:"
        f' `/aiops retrain {MODEL} reason=\\"…\\"`'
    ) in message
    # an alert about something else carries no lineage
    latency = receive_alert(
        bot.rt,
        AlertNotice(
            key="health-watch:loan-assessor:p95_latency_ms",
            source=AlertSource.HEALTH_WATCH,
            state=AlertState.OPEN,
            policy="health watch: P95 latency",
            endpoint="loan-assessor",
            labels={"metric": "p95_latency_ms"},
        ),
    )
    assert "aiops_training_pipeline" not in latency.notice.labels


def test_unknown_lineage_is_said_so(bot: Bot) -> None:
    """A version the registry knows no training run of: the line says `unknown`."""
    raw = copy.deepcopy(bot.rt.config.raw)
    del raw["models"][MODEL]["cards"]["1.2.0"]["pipeline_run"]
    bot.rt.config = parse_config(raw, source="test.toml")
    bot.rt.registry = SandboxRegistry(bot.rt.store.engine, bot.rt.config, bot.clock)
    record = receive_alert(
        bot.rt,
        AlertNotice(
            key="cloud-monitoring:7",
            source=AlertSource.CLOUD_MONITORING,
            state=AlertState.OPEN,
            policy="[prod] loan-assessor: feature drift",
            endpoint="loan-assessor",
            environment="prod",
        ),
    )
    assert record.notice.labels["aiops_training_pipeline"] == "unknown"
    assert record.notice.labels["aiops_serving_version"] == "1.2.0"


def test_a_pending_retrain_on_the_home_tab_and_its_approve_dialog(bot: Bot) -> None:
    from commands.reports.home import home_view
    from tests.flows.test_home import buttons, texts, view

    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    bob = view(home_view(bot.rt, BOB.id))
    shown = texts(bob)
    assert f"*{change_id}* · Retrain *{MODEL}*: run its training pipeline (prod)" in shown
    assert "*Traffic:* no traffic moves (a training pipeline run)" in shown
    assert ("approve", change_id) in buttons(bob)
    dialog = next(
        e["confirm"]
        for b in bob["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "approve"
    )
    assert dialog["text"]["text"].startswith(
        f"model {MODEL}: no traffic moves (retrain in prod: run the training pipeline of"
        f" {MODEL} in lender-aiops-prod (australia-southeast1))"
    )
    alice = texts(view(home_view(bot.rt, ALICE.id)))
    assert f"*{change_id}* retrain `{MODEL}` · pending approval" in alice
