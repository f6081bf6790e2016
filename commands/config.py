"""The bot's configuration: environments, endpoints, models, people, channels, thresholds.

Parsed from one TOML document into frozen dataclasses; any mistake is a `ConfigError`
that names the key, so a bad config stops the bot at start, never mid-change.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commands.freezes import Freeze, FreezeConfigError, parse_freezes


class ConfigError(ValueError):
    pass


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

    @property
    def needs_approval(self) -> bool:
        return self.approvals_required > 0


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


@dataclass(frozen=True)
class Model:
    name: str
    versions: tuple[str, ...]
    initial: str
    # version → "deploy_fails" | "canary_breach", honoured by the sandbox platform
    faulty: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Channels:
    approvals: str
    ops: str


@dataclass(frozen=True)
class SandboxSettings:
    operation_seconds: float = 3.0


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

    def display_name(self, slack_id: str) -> str:
        person = self.person_by_id(slack_id)
        return person.name if person else slack_id


def _duration(value: Any, key: str) -> timedelta:
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and value[:-1].replace(".", "", 1).isdigit():
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(value[-1])
        if unit:
            return timedelta(seconds=float(value[:-1]) * unit)
    raise ConfigError(f"{key}: `{value}` is not a duration; write e.g. `30m`, `4h` or `2d`")


def _ids(config_people: dict[str, Person], names: list[str], key: str) -> tuple[str, ...]:
    out = []
    for name in names:
        if name in config_people:
            out.append(config_people[name].slack_id)
        elif name[:1] in ("U", "W", "S") and name.isalnum() and name.isupper():
            out.append(name)  # a Slack user or user-group id written directly
        else:
            raise ConfigError(f"{key}: `{name}` is neither a person in [people] nor a Slack id")
    return tuple(out)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"`{key}` must be a table")
    return value


def parse_config(data: dict[str, Any], source: str = "<memory>") -> Config:
    try:
        tz = ZoneInfo(str(data.get("timezone", "Australia/Sydney")))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timezone: unknown time zone `{data.get('timezone')}`") from exc

    people = {
        name: Person(name=name, slack_id=str(p["slack_id"]), title=str(p.get("title", "")))
        for name, p in _table(data, "people").items()
    }
    slack = _table(data, "slack")
    channels = Channels(
        approvals=str(slack.get("approvals_channel", "C0APPROVALS")),
        ops=str(slack.get("ops_channel", "C0OPS")),
    )
    th = _table(data, "thresholds")
    thresholds = Thresholds(**{k: float(v) for k, v in th.items()})

    environments: dict[str, Environment] = {}
    for name, env in _table(data, "environments").items():
        region = str(env.get("region", "australia-southeast1"))
        environments[name] = Environment(
            name=name,
            project=str(env["project"]),
            region=region,
            allowed_regions=tuple(env.get("allowed_regions", [region])),
            approvals_required=int(env.get("approvals_required", 0)),
            requesters=_ids(
                people, list(env.get("requesters", [])), f"environments.{name}.requesters"
            ),
            approvers=_ids(
                people, list(env.get("approvers", [])), f"environments.{name}.approvers"
            ),
            rollback_requires_approval=bool(env.get("rollback_requires_approval", False)),
            approval_ttl=_duration(
                env.get("approval_ttl", "4h"), f"environments.{name}.approval_ttl"
            ),
            require_reason=bool(
                env.get("require_reason", int(env.get("approvals_required", 0)) > 0)
            ),
            require_ticket=bool(env.get("require_ticket", False)),
            break_glass=_ids(
                people, list(env.get("break_glass", [])), f"environments.{name}.break_glass"
            ),
            request_channels=tuple(str(c) for c in env.get("request_channels", [])),
        )
        if region not in environments[name].allowed_regions:
            raise ConfigError(
                f"environments.{name}: region `{region}` is not in its allowed_regions"
                f" {list(environments[name].allowed_regions)}"
            )

    models: dict[str, Model] = {}
    for name, m in _table(data, "models").items():
        versions = tuple(str(v) for v in m.get("versions", []))
        faulty = {str(k): str(v) for k, v in dict(m.get("faulty", {})).items()}
        for version, kind in faulty.items():
            if kind not in ("deploy_fails", "canary_breach"):
                raise ConfigError(
                    f"models.{name}.faulty.{version}: `{kind}` must be deploy_fails or canary_breach"
                )
        initial = str(m.get("initial", versions[0] if versions else ""))
        if initial not in versions:
            raise ConfigError(f"models.{name}.initial: `{initial}` is not one of its versions")
        models[name] = Model(name=name, versions=versions, initial=initial, faulty=faulty)

    endpoints: dict[str, Endpoint] = {}
    for slug, ep in _table(data, "endpoints").items():
        env_name = str(ep.get("environment", ""))
        if env_name not in environments:
            raise ConfigError(f"endpoints.{slug}.environment: unknown environment `{env_name}`")
        model = str(ep.get("model", ""))
        if model not in models:
            raise ConfigError(f"endpoints.{slug}.model: unknown model `{model}`")
        known = {k for k in Endpoint.__dataclass_fields__ if k not in ("slug",)}
        unknown = set(ep) - known
        if unknown:
            raise ConfigError(f"endpoints.{slug}: unknown keys {sorted(unknown)}")
        endpoint = Endpoint(slug=slug, **{k: v for k, v in ep.items()})
        region = endpoint.region or environments[env_name].region
        if region not in environments[env_name].allowed_regions:
            raise ConfigError(
                f"endpoints.{slug}: region `{region}` is outside the allowed regions of"
                f" `{env_name}` {list(environments[env_name].allowed_regions)} (data residency)"
            )
        endpoints[slug] = endpoint

    try:
        freezes = parse_freezes(data.get("freezes"), set(environments))
    except FreezeConfigError as exc:
        raise ConfigError(str(exc)) from None
    audit = _table(data, "audit")
    retention_days = audit.get("retention_days", 7 * 365 + 2)
    if not isinstance(retention_days, int) or retention_days < 1:
        raise ConfigError(
            f"audit.retention_days: `{retention_days}` must be a whole number of days"
        )

    platform = str(data.get("platform", "sandbox"))
    if platform not in ("sandbox", "vertex"):
        raise ConfigError(f"platform: `{platform}` must be `sandbox` or `vertex`")
    sandbox = SandboxSettings(
        operation_seconds=float(_table(data, "sandbox").get("operation_seconds", 3.0))
    )
    return Config(
        platform=platform,
        timezone=tz,
        team_id=slack.get("team_id"),
        channels=channels,
        thresholds=thresholds,
        people=people,
        environments=environments,
        endpoints=endpoints,
        models=models,
        sandbox=sandbox,
        source=source,
        enterprise_id=slack.get("enterprise_id"),
        freezes=freezes,
        audit_retention=timedelta(days=retention_days),
        raw=data,
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
    try:
        return parse_config(data, source=str(path))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: missing or malformed key {exc}") from exc
