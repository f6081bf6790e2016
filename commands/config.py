"""The bot's configuration: environments, endpoints, models, people, channels, thresholds.

One TOML document, validated against `commands.config_schema` (unknown keys, wrong types,
ranges, cross-table rules: every problem at once), then built into the frozen dataclasses
the rest of the code reads. A bad config stops the bot at start, never mid-change.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from commands import config_schema
from commands.config_schema import ConfigError
from commands.durations import parse_duration
from commands.freezes import Freeze, FreezeConfigError, parse_freezes

__all__ = ["Config", "ConfigError", "Endpoint", "Environment", "load_config", "parse_config"]


@dataclass(frozen=True)
class Thresholds:
    p95_latency_ms: float = 2000.0
    error_rate: float = 0.01
    drift: float = 0.1
    daily_budget_usd: float = 100.0


@dataclass(frozen=True)
class Person:
    name: str
    slack_id: str
    title: str = ""


@dataclass(frozen=True)
class Environment:
    name: str
    project: str
    region: str
    allowed_regions: tuple[str, ...]
    approvals_required: int = 0
    requesters: tuple[str, ...] = ()  # Slack ids (users or user groups)
    approvers: tuple[str, ...] = ()
    rollback_requires_approval: bool = False
    approval_ttl: timedelta = timedelta(hours=4)
    require_reason: bool = False
    require_ticket: bool = False  # a change must carry `ticket=CHG-1234`
    break_glass: tuple[str, ...] = ()  # may run a change without approval, announced
    request_channels: tuple[str, ...] = ()  # channels requests may come from (empty: any)
    dashboard_url: str | None = None  # its Cloud Monitoring dashboard, linked from status
    # USD a day: the digest's comparison and `[cost] budget_alerts` (commands/cost/budget.py)
    daily_budget_usd: float = 100.0
    # model risk (commands/models/gate.py): deploys and promotes need a validated version
    require_validation: bool = False
    validators: tuple[str, ...] = ()  # config names whose sign-off counts (empty: any)
    move_serving_alias: bool | None = None  # None: only in `prod`

    @property
    def needs_approval(self) -> bool:
        return self.approvals_required > 0

    @property
    def moves_serving_alias(self) -> bool:
        """Whether a change leaving one version at 100 % here moves the registry's serving
        alias to it (commands/models/alias.py): as configured, else in `prod` only."""
        if self.move_serving_alias is None:
            return self.name == "prod"
        return self.move_serving_alias


@dataclass(frozen=True)
class Endpoint:
    slug: str
    environment: str
    model: str
    display_name: str = ""
    machine_type: str = "g2-standard-8"
    accelerator_type: str = "NVIDIA_L4"
    accelerator_count: int = 1
    min_replicas: int = 1
    max_replicas: int = 3
    region: str | None = None  # defaults to the environment's region
    vertex_id: str | None = None  # the Vertex AI endpoint id, for the vertex platform
    # Its deployed models may run with min replicas 0 (`/aiops scale … min=0`): on Vertex
    # AI only deployments made with its Scale To Zero preview may (docs: predictions/
    # autoscaling); the sandbox lets exactly the endpoints that say so.
    scale_to_zero: bool = False
    customer_facing: bool = False  # customers depend on it (incident severity rules)


@dataclass(frozen=True)
class Model:
    name: str
    versions: tuple[str, ...]
    initial: str
    # version → "deploy_fails" | "canary_breach", honoured by the sandbox platform
    faulty: dict[str, str] = field(default_factory=dict)
    # version → its card, lineage, evaluation and validation: the sandbox's registry
    cards: dict[str, config_schema.VersionCardTable] = field(default_factory=dict)
    # `/aiops retrain` (commands/models/retrain.py): its training pipeline and runtime
    # parameters, the environment whose project and approval rules a run is under (None:
    # no template), where runs write, what one costs; the sandbox's simulated failure
    retrain_template: str | None = None
    retrain_parameters: dict[str, str | int | float | bool] = field(default_factory=dict)
    retrain_environment: str | None = None
    retrain_pipeline_root: str | None = None
    retrain_cost_usd: float | None = None
    retrain_fails: bool = False


@dataclass(frozen=True)
class Channels:
    approvals: str
    ops: str


@dataclass(frozen=True)
class SandboxSettings:
    operation_seconds: float = 3.0


@dataclass(frozen=True)
class StrategySettings:
    """`[strategies]`: `replace_soak`, how long a `strategy=replace` deploy's new version
    must stay healthy before the old one is undeployed; `blue_green_soak`, how long a
    `strategy=blue-green` deploy's new version is watched after the switch (unhealthy:
    traffic switches back to the old version, still deployed)."""

    replace_soak: timedelta = timedelta(minutes=10)
    blue_green_soak: timedelta = timedelta(minutes=10)

    def soak(self, strategy: str | None) -> timedelta:
        """The soak of a deploy of `strategy` (`Strategy` value); replace's by default."""
        if strategy == "blue-green":
            return self.blue_green_soak
        return self.replace_soak


@dataclass(frozen=True)
class Runbooks:
    """`[runbooks]`: alert policy name → link, endpoint slug → link (https, checked by the
    schema). Read through `commands.incidents.runbooks.runbook_for`."""

    policies: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    platform: str
    timezone: ZoneInfo
    team_id: str | None
    channels: Channels
    thresholds: Thresholds
    people: dict[str, Person]
    environments: dict[str, Environment]
    endpoints: dict[str, Endpoint]
    models: dict[str, Model]
    sandbox: SandboxSettings
    source: str = "<memory>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    enterprise_id: str | None = None  # an Enterprise Grid org: requests must come from it
    freezes: tuple[Freeze, ...] = ()
    audit_retention: timedelta = timedelta(days=7 * 365 + 2)  # seven years by default
    allow_sandbox: bool = False  # `serve` with real Slack credentials may run the sandbox
    strategies: StrategySettings = field(default_factory=StrategySettings)
    runbooks: Runbooks = field(default_factory=Runbooks)

    def environment_of(self, endpoint: Endpoint) -> Environment:
        return self.environments[endpoint.environment]

    def person_by_id(self, slack_id: str) -> Person | None:
        return next((p for p in self.people.values() if p.slack_id == slack_id), None)

    def resolve_person(self, ref: str) -> str | None:
        """A person's Slack id from a config name (`bob`), `@bob` or a Slack id."""
        ref = ref.lstrip("@")
        if ref in self.people:
            return self.people[ref].slack_id
        if self.person_by_id(ref):
            return ref
        return None

    def concerned(self, environment: str, requester_id: str) -> tuple[str, ...]:
        """Who a change in `environment` concerns: its requester and whoever may approve
        there (Slack user and user-group ids): the people whose Home tab shows it."""
        env = self.environments.get(environment)
        return (requester_id, *(env.approvers if env else ()))

    def display_name(self, slack_id: str) -> str:
        person = self.person_by_id(slack_id)
        return person.name if person else slack_id


def user_groups(ids: tuple[str, ...]) -> tuple[str, ...]:
    """The Slack user groups (`S…`) among `ids` (requesters, approvers, break glass): their
    members are read from Slack when a request or a click is checked, never from here."""
    return tuple(i for i in ids if i.startswith("S"))


def _ids(people: dict[str, Person], refs: list[str]) -> tuple[str, ...]:
    """Config names → Slack ids; Slack user / user-group ids pass as they are (the schema
    has checked that each is one or the other)."""
    return tuple(people[r].slack_id if r in people else r.lstrip("@") for r in refs)


def _environment(
    name: str,
    env: config_schema.EnvironmentTable,
    people: dict[str, Person],
    default_budget_usd: float,
) -> Environment:
    # Fail closed: naming approvers means approval is needed unless `0` is written.
    required = env.approvals_required
    if required is None:
        required = 1 if env.approvers else 0
    return Environment(
        name=name,
        project=env.project,
        region=env.region,
        allowed_regions=tuple(env.allowed_regions or [env.region]),
        approvals_required=required,
        requesters=_ids(people, env.requesters),
        approvers=_ids(people, env.approvers),
        rollback_requires_approval=env.rollback_requires_approval,
        approval_ttl=parse_duration(env.approval_ttl),
        require_reason=env.require_reason if env.require_reason is not None else required > 0,
        require_ticket=env.require_ticket,
        break_glass=_ids(people, env.break_glass),
        request_channels=tuple(env.request_channels),
        dashboard_url=env.dashboard_url,
        # `[thresholds] daily_budget_usd` (deprecated) is the budget of environments
        # without their own, as it was every environment's before.
        daily_budget_usd=float(
            env.daily_budget_usd if env.daily_budget_usd is not None else default_budget_usd
        ),
        require_validation=env.require_validation,
        validators=tuple(v.lstrip("@") for v in env.validators),
        move_serving_alias=env.move_serving_alias,
    )


def _retrain_environment(
    name: str,
    model: config_schema.ModelTable,
    doc: config_schema.ConfigFile,
    environments: dict[str, Environment],
) -> str | None:
    """Whose project, region and approval rules a retrain of `name` runs under: as
    configured, else (fail closed) the strictest of the environments its endpoints are in:
    the most approvals required, then a reason required, then `prod`, then by name. None
    for a model without a training pipeline."""
    if model.retrain_template is None:
        return None
    if model.retrain_environment is not None:
        return model.retrain_environment
    names = {ep.environment for ep in doc.endpoints.values() if ep.model == name}
    serving = [environments[n] for n in sorted(names) if n in environments]
    strictest = max(
        serving,
        key=lambda e: (e.approvals_required, e.require_reason, e.name == "prod"),
        default=None,
    )
    return strictest.name if strictest else None


def parse_config(data: dict[str, Any], source: str = "<memory>") -> Config:
    """Validate `data` (a parsed TOML document) against the schema and build the config.

    Every problem is reported at once in one `ConfigError`, one line each:
    `<source>: [table] key: what is wrong; what is allowed`."""
    doc = config_schema.validate(data, source)
    people = {
        name: Person(name=name, slack_id=p.slack_id, title=p.title)
        for name, p in doc.people.items()
    }
    environments = {
        name: _environment(name, env, people, doc.thresholds.daily_budget_usd)
        for name, env in doc.environments.items()
    }
    models = {
        name: Model(
            name=name,
            versions=tuple(m.versions),
            initial=m.initial if m.initial is not None else m.versions[0],
            faulty=dict(m.faulty),
            cards=dict(m.cards),
            retrain_template=m.retrain_template,
            retrain_parameters=dict(m.retrain_parameters),
            retrain_environment=_retrain_environment(name, m, doc, environments),
            retrain_pipeline_root=m.retrain_pipeline_root,
            retrain_cost_usd=m.retrain_cost_usd,
            retrain_fails=m.retrain_fails,
        )
        for name, m in doc.models.items()
    }
    endpoints = {
        slug: Endpoint(slug=slug, **ep.model_dump(by_alias=True))
        for slug, ep in doc.endpoints.items()
    }
    try:
        freezes = parse_freezes(data.get("freezes"), set(environments))
    except FreezeConfigError as exc:  # checked by the schema already; kept as a guard
        raise ConfigError(f"{source}: {exc}") from None
    th = doc.thresholds
    return Config(
        platform=doc.platform,
        timezone=ZoneInfo(doc.timezone),
        team_id=doc.slack.team_id,
        channels=Channels(approvals=doc.slack.approvals_channel, ops=doc.slack.ops_channel),
        thresholds=Thresholds(
            p95_latency_ms=float(th.p95_latency_ms),
            error_rate=float(th.error_rate),
            drift=float(th.drift),
            daily_budget_usd=float(th.daily_budget_usd),
        ),
        people=people,
        environments=environments,
        endpoints=endpoints,
        models=models,
        sandbox=SandboxSettings(operation_seconds=float(doc.sandbox.operation_seconds)),
        source=source,
        enterprise_id=doc.slack.enterprise_id,
        freezes=freezes,
        audit_retention=timedelta(days=doc.audit.retention_days),
        raw=data,
        allow_sandbox=doc.allow_sandbox,
        strategies=StrategySettings(
            replace_soak=parse_duration(doc.strategies.replace_soak),
            blue_green_soak=parse_duration(doc.strategies.blue_green_soak),
        ),
        runbooks=Runbooks(
            policies=dict(doc.runbooks.policies), endpoints=dict(doc.runbooks.endpoints)
        ),
    )


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(data, source=str(path))
