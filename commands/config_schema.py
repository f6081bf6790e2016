"""The schema of the config file: one typed description of every table and key of the TOML,
checked before anything is built from it, so that a typo or a wrong type stops the bot at
start instead of being read as a default.

- Every table forbids unknown keys; types are strict (TOML gives real booleans and
  integers, so `"false"` is not a boolean and `1.7` is not a whole number).
- Ranges and formats are checked per key; cross-table rules (people, environments,
  models, channels, freezes, digests) are checked by `cross_checks`, on the raw document,
  so that they run even when some keys are wrong and every problem is reported at once.
- Each problem is one line: `<file>: [environments.prod] aprovals_required: not a key of
  [environments.prod]; did you mean `approvals_required`?`.

The validated document (`ConfigFile`) is turned into the frozen dataclasses the rest of
the code reads by `commands.config.parse_config`. `json_schema()` is what `aiops-bot config
schema` prints (editors validate the TOML with it) and `markdown()` the key tables of the
README.

Daylight saving (one rule, for digests and every other local wall-clock time): a local
time the clocks skip runs as if they had not changed yet — shifted forward by the gap
(02:30 on the night Sydney moves to summer time is 03:30 summer time); a local time that
occurs twice runs at its first occurrence. A digest is keyed by its local date, so it is
posted once per local date whatever the clock does. A dated freeze bound that falls into
a gap or an overlap is refused (it names one moment and that moment would be ambiguous).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from commands.durations import FORMS, PATTERN, DurationError, parse_duration
from commands.freezes import FreezeConfigError, _local, _weekly


class ConfigError(ValueError):
    """A config that cannot run. `problems` holds one line per problem; `str()` all of them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems) if problems else [message]
        super().__init__("\n".join(self.problems) if problems else message)


# --- formats --------------------------------------------------------------------------

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_WORDS = {
    **{d: i for i, d in enumerate(DAY_NAMES)},
    **{
        w: i
        for i, ws in enumerate(
            (
                ("monday",),
                ("tues", "tuesday"),
                ("wednesday",),
                ("thur", "thurs", "thursday"),
                ("friday",),
                ("saturday",),
                ("sunday",),
            )
        )
        for w in ws
    },
}
_DAY_SETS = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekends": (5, 6)}
DAY_FORMS = '`mon-fri`, `daily`, `weekdays`, `weekends`, `"mon,thu"` or `["mon", "thu"]`'

CHANNEL_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_RE = re.compile(r"^[UW][A-Z0-9]{2,}$")
GROUP_RE = re.compile(r"^S[A-Z0-9]{2,}$")
_CLOCK_RE = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_days(value: Any) -> tuple[int, ...]:
    """`"mon-fri"` → (0, 1, 2, 3, 4); a list, a comma-separated string, ranges (wrapping
    past Sunday: `fri-mon`), `daily`, `weekdays`, `weekends`. Unknown words are refused."""
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = value.split(",")
    else:
        raise ValueError(f"`{value!r}` is not a list of days; write e.g. {DAY_FORMS}")
    days: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"`{item!r}` is not a day; write e.g. {DAY_FORMS}")
        text = item.strip().lower()
        if text in _DAY_SETS:
            days.update(_DAY_SETS[text])
        elif "-" in text:
            a, _, b = (s.strip() for s in text.partition("-"))
            if a not in _DAY_WORDS or b not in _DAY_WORDS:
                raise ValueError(f"`{item}` is not a day range; write e.g. {DAY_FORMS}")
            i, j = _DAY_WORDS[a], _DAY_WORDS[b]
            days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif text in _DAY_WORDS:
            days.add(_DAY_WORDS[text])
        else:
            raise ValueError(f"`{item}` is not a day; write e.g. {DAY_FORMS}")
    if not days:
        raise ValueError(f"no days given; write e.g. {DAY_FORMS}")
    return tuple(sorted(days))


def parse_clock(value: str) -> time | None:
    """`"08:30"` → 08:30; `"off"` → None (no digest of that kind)."""
    if value.strip().lower() == "off":
        return None
    match = _CLOCK_RE.fullmatch(value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"`{value}` is not a time of day; write e.g. `08:30` (24 h), or `off`")
    return time(int(match[1]), int(match[2]))


def zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"`{value}` is not a time zone; write an IANA name, e.g. `Australia/Sydney`"
        ) from None


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_clock(value: str) -> str:
    parse_clock(value)
    return value


def _check_zone(value: str) -> str:
    zone(value)
    return value


def _channel(value: str) -> str:
    if not CHANNEL_RE.match(value):
        raise ValueError(f"`{value}` is not a Slack channel id; write e.g. `C0123ABCD`")
    return value


def _user(value: str) -> str:
    if not USER_RE.match(value):
        raise ValueError(f"`{value}` is not a Slack user id; write e.g. `U0123ABCD`")
    return value


def _days(value: str | list[str]) -> str | list[str]:
    parse_days(value)
    return value


Duration = Annotated[
    str,
    AfterValidator(_duration),
    Field(json_schema_extra={"pattern": PATTERN}),
]
ClockTime = Annotated[str, AfterValidator(_check_clock)]
Zone = Annotated[str, AfterValidator(_check_zone)]
ChannelId = Annotated[str, AfterValidator(_channel)]
UserId = Annotated[str, AfterValidator(_user)]
Days = Annotated[Any, AfterValidator(_days), Field(json_schema_extra={"type": ["string", "array"]})]


class Table(BaseModel):
    """Every table: unknown keys refused, no coercion between types, and every number
    finite (TOML's `inf`, `nan` and a float too large for a double, `1e400`, are refused:
    no budget, threshold, price or timeout is meaningful at infinity)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=False, allow_inf_nan=False
    )


# --- tables ---------------------------------------------------------------------------


class SlackTable(Table):
    team_id: str | None = Field(
        None,
        pattern=r"^[TE][A-Z0-9]{2,}$",
        description="the workspace (`T…`); requests from any other are refused",
    )
    enterprise_id: str | None = Field(
        None,
        pattern=r"^E[A-Z0-9]{2,}$",
        description="an Enterprise Grid org (`E…`); requests must also come from it",
    )
    approvals_channel: ChannelId = Field(
        "C0APPROVALS", description="channel id where production plans wait for a decision"
    )
    ops_channel: ChannelId = Field("C0OPS", description="channel id for digests and announcements")


class ThresholdsTable(Table):
    p95_latency_ms: float = Field(2000.0, gt=0, description="P95 latency above this pages")
    error_rate: float = Field(0.01, ge=0, le=1, description="error rate (0–1) above this pages")
    drift: float = Field(0.1, ge=0, description="drift score above this alerts the team")
    daily_budget_usd: float = Field(
        100.0,
        ge=0,
        description="deprecated: the daily budget (USD) of each environment without its own"
        " `daily_budget_usd`; set it per environment instead",
    )


class PersonTable(Table):
    slack_id: UserId = Field(description="the person's Slack user id (`U…` or `W…`)")
    title: str = Field("", description="shown next to the name")


class EnvironmentTable(Table):
    project: str = Field(description="GCP project id", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str = Field("australia-southeast1", description="the environment's GCP region")
    allowed_regions: list[str] | None = Field(
        None,
        description="data residency: an endpoint outside them stops the bot at start"
        " (default: `[region]`)",
    )
    requesters: list[str] = Field(
        default_factory=list, description="who may request: config names or Slack ids"
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve: config names of `[people]` or Slack user-group ids (`S…`)",
    )
    approvals_required: int | None = Field(
        None,
        ge=0,
        le=10,
        description="distinct approvals a change needs (default: 1 when `approvers` are"
        " named, else 0; `0` must then be written)",
    )
    approval_ttl: Duration = Field("4h", description="unanswered requests expire after this")
    rollback_requires_approval: bool = Field(
        False, description="false: a rollback runs at once and is announced"
    )
    require_reason: bool | None = Field(
        None, description="a change needs `reason=` (default: when it needs an approval)"
    )
    require_ticket: bool = Field(False, description="a change needs `ticket=CHG-1234`")
    break_glass: list[str] = Field(
        default_factory=list,
        description="may run a change without approval, announced: people or user groups",
    )
    request_channels: list[ChannelId] = Field(
        default_factory=list, description="channel ids requests may come from (empty: any)"
    )
    canary_auto_rollback: Literal["yes", "page", "ask"] | None = Field(
        None, description="after N breaches: `yes`, `page` or `ask` (default: `page` in prod)"
    )
    promote_steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50, 100],
        description="the plan `steps=default` uses: percents, strictly rising, 1–100",
    )
    canary_promote_gate: bool | None = Field(
        None, description="`/promote` needs a passing analysis (default: in prod)"
    )
    daily_budget_usd: float | None = Field(
        None,
        ge=0,
        description="this environment's daily budget in USD: the morning digest compares"
        " yesterday's cost with it and `[cost] budget_alerts` are percentages of it"
        " (default: `[thresholds] daily_budget_usd`)",
    )
    dashboard_url: str | None = Field(
        None,
        pattern=r"^https://console\.cloud\.google\.com/monitoring/dashboards/\S+$",
        description="the environment's Cloud Monitoring dashboard (Terraform's `dashboard_url`);"
        " `/aiops status` and the digests link to it",
    )
    require_validation: bool = Field(
        False,
        description="model-risk gate: a deploy or promote here needs the version's validation"
        " `approved` in the registry (break glass overrides it, flagged)",
    )
    validators: list[str] = Field(
        default_factory=list,
        description="who may sign a version off for this environment (people of [people]):"
        " with any named, a validation counts only if its `validated_by` is one of them",
    )
    move_serving_alias: bool | None = Field(
        None,
        description="after a change leaves one version at 100 %, move the registry alias"
        " `[vertex] serving_alias` to it (default: in `prod`)",
    )

    @field_validator("promote_steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= s <= 100 for s in value) or value != sorted(set(value)):
            raise ValueError(f"{value} must rise strictly, each step 1–100, e.g. [10, 25, 50, 100]")
        return value


def _moment(value: Any) -> Any:
    """A date, or a date-time (local to `timezone` without an offset)."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(
        f"`{value}` is not a date or date-time, e.g. 2026-11-20 or 2026-11-20T09:30:00"
    )


Moment = Annotated[
    Any,
    AfterValidator(_moment),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


class VersionCardTable(Table):
    """`[models.<name>.cards."<version>"]`: what the sandbox's model registry holds for one
    version (on Vertex AI the Model Registry itself says it): its model card summary,
    training lineage, latest evaluation and model-risk validation."""

    description: str = Field("", description="what the version is, in a sentence")
    intended_use: str = Field("", description="what it is for (and what not)")
    limitations: str = Field("", description="known limitations")
    pipeline_run: str | None = Field(
        None, description="lineage: the training pipeline run that produced it (absent: unknown)"
    )
    dataset: str | None = Field(None, description="lineage: the training dataset (absent: unknown)")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="its latest evaluation: metric → value"
    )
    evaluated_at: Moment | None = Field(None, description="when that evaluation ran")
    validation: Literal["approved", "pending", "rejected"] = Field(
        "pending", description="model-risk validation: `approved`, `pending` or `rejected`"
    )
    validated_by: str | None = Field(None, description="who decided it (a person of [people])")
    validated_at: Moment | None = Field(None, description="when")


# `[models.X] retrain_template`: a compiled pipeline spec in JSON on Cloud Storage, or an
# Artifact Registry KFP template (the only registry Vertex AI's `template_uri` takes).
RETRAIN_TEMPLATE_PATTERN = (
    r"^(gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/\S+\.json"
    r"|https://[a-z0-9-]+-kfp\.pkg\.dev/[a-z][a-z0-9-]{4,28}[a-z0-9]/\S+)$"
)


class ModelTable(Table):
    versions: list[str] = Field(min_length=1, description="the versions that may be deployed")
    initial: str | None = Field(
        None, description="what the sandbox serves at first (default: the first version)"
    )
    faulty: dict[str, Literal["deploy_fails", "canary_breach"]] = Field(
        default_factory=dict, description="sandbox only: version → `deploy_fails` | `canary_breach`"
    )
    cards: dict[str, VersionCardTable] = Field(
        default_factory=dict,
        description="sandbox only: version → its card, lineage, evaluation and validation"
        ' (`[models.<name>.cards."<version>"]`)',
    )
    retrain_template: str | None = Field(
        None,
        pattern=RETRAIN_TEMPLATE_PATTERN,
        description="its training pipeline, which `/aiops retrain` runs as a Vertex AI"
        " PipelineJob: a compiled pipeline spec in JSON on Cloud Storage (`gs://…/x.json`)"
        " or an Artifact Registry template (`https://<region>-kfp.pkg.dev/<project>/<repo>/"
        "<package>/<tag or version>`); absent: the model cannot be retrained from Slack",
    )
    retrain_parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="the pipeline's runtime parameters (name → value), shown on the plan",
    )
    retrain_environment: str | None = Field(
        None,
        description="whose project, region and approval rules a retrain runs under"
        " (default: of the environments its endpoints are in, the one needing the most"
        " approvals: prod in the example)",
    )
    retrain_pipeline_root: str | None = Field(
        None,
        pattern=r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/\S*)?$",
        description="where a run writes its artifacts (`gs://…`; default: the spec's own"
        " pipeline root)",
    )
    retrain_cost_usd: float | None = Field(
        None, ge=0, description="what one run costs, as estimated (shown on the plan)"
    )
    retrain_fails: bool = Field(
        False, description="sandbox only: its simulated training run fails (a demo of a failure)"
    )

    @model_validator(mode="after")
    def _known_versions(self) -> ModelTable:
        if self.initial is not None and self.initial not in self.versions:
            raise ValueError(f"initial `{self.initial}` is not one of its versions {self.versions}")
        unknown = sorted(set(self.faulty) - set(self.versions))
        if unknown:
            raise ValueError(f"faulty names versions that are not in `versions`: {unknown}")
        unknown = sorted(set(self.cards) - set(self.versions))
        if unknown:
            raise ValueError(f"cards names versions that are not in `versions`: {unknown}")
        return self


class EndpointTable(Table):
    environment: str = Field(description="a table of `[environments]`")
    model: str = Field(description="a table of `[models]`")
    display_name: str = Field("", description="shown in messages")
    machine_type: str = Field("g2-standard-8", description="Vertex AI machine type")
    accelerator_type: str = Field("NVIDIA_L4", description="accelerator, or empty for none")
    accelerator_count: int = Field(1, ge=0, le=16, description="accelerators per replica")
    min_replicas: int = Field(1, ge=0, le=1000, description="minimum replicas")
    max_replicas: int = Field(3, ge=1, le=1000, description="maximum replicas")
    region: str | None = Field(None, description="default: the environment's region")
    vertex_id: str | None = Field(
        None, pattern=r"^[0-9]+$", description="the Vertex AI endpoint id (platform `vertex`)"
    )
    scale_to_zero: bool = Field(
        False,
        description="its deployed models may scale to min 0 replicas (Vertex AI: deployments"
        " made with its Scale To Zero preview only)",
    )
    customer_facing: bool = Field(
        False,
        description="customers depend on it: in prod, an alert on its errors suggests P1",
    )

    @model_validator(mode="after")
    def _replicas(self) -> EndpointTable:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}"
            )
        return self


class SandboxTable(Table):
    operation_seconds: float = Field(
        3.0, ge=0, le=3600, description="how long a simulated deploy or undeploy takes"
    )


class AuditTable(Table):
    retention_days: int = Field(
        7 * 365 + 2, ge=1, description="each row's retain_until (seven years by default)"
    )


class CanaryTable(Table):
    interval: Duration = Field("5m", description="analysis window and check interval (≥ 1m)")
    min_requests: int = Field(
        30,
        ge=1,
        le=10**9,
        description="canary requests the evidence needs before a test speaks (stable: ≥ 100)",
    )
    consecutive_breaches: int = Field(
        3, ge=1, le=100, description="kept for old configs; the sequential judge does not use it"
    )
    baseline_p95_ratio: float = Field(
        1.5, ge=1, description="canary P95 ≤ this × the stable version's"
    )
    baseline_error_margin: float = Field(
        0.005, ge=0, le=1, description="canary error rate ≤ the stable version's + this"
    )
    max_undecided: Duration = Field(
        "1h", description="undecided longer than this asks people (≥ one `interval`)"
    )
    confidence: float = Field(
        0.95, ge=0.5, lt=1, description='"no regression" needs this confidence (0.5–<1)'
    )

    @model_validator(mode="after")
    def _undecided_at_least_one_window(self) -> CanaryTable:
        if parse_duration(self.max_undecided) < parse_duration(self.interval):
            raise ValueError("`max_undecided` is shorter than one `interval`")
        return self

    @field_validator("interval")
    @classmethod
    def _at_least_a_minute(cls, value: str) -> str:
        if parse_duration(value) < timedelta(minutes=1):
            raise ValueError(f"`{value}` is shorter than 1m (Monitoring's shortest period)")
        return value


class StrategiesTable(Table):
    replace_soak: Duration = Field(
        "10m",
        description="`strategy=replace`: how long the new version must stay healthy before"
        " the old one is undeployed (≥ 1m)",
    )
    blue_green_soak: Duration = Field(
        "10m",
        description="`strategy=blue-green`: how long the new version is watched after the"
        " switch (P95 and errors within `[thresholds]`); unhealthy, traffic switches back to"
        " the old version in one update and the change fails (≥ 1m)",
    )

    @field_validator("replace_soak", "blue_green_soak")
    @classmethod
    def _soak_at_least_a_minute(cls, value: str) -> str:
        if parse_duration(value) < timedelta(minutes=1):
            raise ValueError(f"`{value}` is shorter than 1m (Monitoring's shortest period)")
        return value


class CostTable(Table):
    """`[cost]`: idle capacity in the morning digest, and budget alerts."""

    idle_requests_per_day: int = Field(
        10,
        ge=0,
        le=10**9,
        description="an endpoint that answered fewer requests than this yesterday (a whole"
        " local day) is idle in the morning digest; `0`: none is",
    )
    budget_alerts: list[int] = Field(
        default_factory=lambda: [50, 100],
        description="percentages of an environment's daily budget: the ops channel hears once"
        " per environment, day and percentage when yesterday's billed cost reaches one"
        " (`[]`: no alerts)",
    )
    budget_check_every: Duration = Field(
        "1h",
        description="how often the billed cost of the last two days is read for budget"
        " alerts (5m–24h; the billing export lags by hours)",
    )

    @field_validator("budget_alerts")
    @classmethod
    def _percentages(cls, value: list[int]) -> list[int]:
        if any(not 1 <= p <= 1000 for p in value) or value != sorted(set(value)):
            raise ValueError(
                f"{value} must rise strictly, each a whole percentage 1–1000, e.g. [50, 100]"
            )
        return value

    @field_validator("budget_check_every")
    @classmethod
    def _sensible_cadence(cls, value: str) -> str:
        if not timedelta(minutes=5) <= parse_duration(value) <= timedelta(hours=24):
            raise ValueError(
                f"`{value}` is outside 5m–24h (the billing export changes hourly at most)"
            )
        return value


class DigestOverride(Table):
    channel: ChannelId | None = Field(
        None, description="channel id (default: `[slack] ops_channel`)"
    )
    timezone: Zone | None = Field(
        None, description="zone of the times (default: top-level `timezone`)"
    )
    days: Days | None = Field(None, description=f"{DAY_FORMS} (default `mon-fri`)")
    morning: ClockTime | None = Field(None, description="local time, or `off` (default `08:30`)")
    eod: ClockTime | None = Field(None, description="local time, or `off` (default `17:30`)")
    enabled: bool = Field(True, description="false: no digests for this environment")


class DigestsTable(DigestOverride):
    """`[digests]`: the defaults, plus `[digests.<environment>]` tables that override them."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, DigestOverride]
    EXTRA_TABLE: ClassVar[type[BaseModel]] = DigestOverride

    environments: list[str] | None = Field(
        None, description="one digest each (default: every environment with endpoints)"
    )
    misfire_grace: Duration = Field("2h", description="how late a missed digest is still posted")
    late_after: Duration = Field("2m", description="a run later than this is marked late")
    spike_factor: float = Field(
        1.5, gt=1, description="yesterday's cost above this × the 7-day average is a spike"
    )
    chart: bool = Field(True, description="attach a PNG of breaching endpoints")
    housekeeping_seconds: float = Field(
        30.0, gt=0, le=3600, description="how often expiry and scheduled changes are checked"
    )

    @property
    def overrides(self) -> dict[str, DigestOverride]:
        return dict(self.__pydantic_extra__ or {})


class WeeklyWindow(Table):
    from_: str = Field(alias="from", description="e.g. `fri 16:00` (local)")
    until: str = Field(description="e.g. `mon 08:00` (local)")


def _freeze_moment(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError(
                "write a local date-time without an offset; freezes are in the configured timezone"
            )
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return _freeze_moment(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ValueError(f"`{value}` is not a date or local date-time, e.g. 2026-12-23T17:00:00")


FreezeMoment = Annotated[
    Any,
    AfterValidator(_freeze_moment),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


class FreezeTable(Table):
    name: str | None = Field(None, description="shown when a change is refused")
    weekly: WeeklyWindow | None = Field(
        None, description='`{ from = "fri 16:00", until = "mon 08:00" }`'
    )
    from_: FreezeMoment | None = Field(None, alias="from", description="dated: local start")
    until: FreezeMoment | None = Field(None, description="dated: local end")
    environments: list[str] = Field(
        default_factory=lambda: ["prod"], description='where it applies (default `["prod"]`)'
    )

    @model_validator(mode="after")
    def _window(self) -> FreezeTable:
        try:
            if self.weekly is not None:
                if self.from_ is not None or self.until is not None:
                    raise ValueError("a freeze is weekly or dated, not both")
                if _weekly(self.weekly.from_, "weekly.from") == _weekly(
                    self.weekly.until, "weekly.until"
                ):
                    raise ValueError("weekly `from` and `until` are the same time")
                return self
            if self.from_ is None or self.until is None:
                raise ValueError("give `weekly = {…}`, or both `from` and `until`")
            if _local(self.until, "until") <= _local(self.from_, "from"):
                raise ValueError("`until` must be after `from`")
        except FreezeConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class IncidentsTable(Table):
    channel: ChannelId | None = Field(
        None, description="channel id of the incidents' threads (default: `[slack] ops_channel`)"
    )
    channel_per_incident: bool = Field(
        False,
        description="true: each incident gets a channel of its own (`inc-<n>-<endpoint>`;"
        " needs the `channels:manage` scope), announced in `channel`",
    )
    pager: Literal["pagerduty", "none"] = Field(
        "none",
        description="`pagerduty`: P1 and P2 incidents page through PagerDuty's Events API v2;"
        " `none`: an `@here` in the incident's thread is the alarm",
    )


class VertexPrices(Table):
    machine: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="USD per node-hour by machine type"
    )
    accelerator: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="USD per accelerator-hour by type"
    )


class VertexAlerts(Table):
    severity: dict[str, str] = Field(
        default_factory=dict, description="policy severity → P1 | P2 | P3"
    )
    label: str = Field("priority", description="a policy user label that overrides it")
    default: str = Field("P3", description="P-level when nothing says")


class VertexTable(Table):
    models: dict[str, Any] = Field(
        default_factory=dict,
        description="model name → registry id or resource name, or a table of them per environment",
    )
    registry_project: str | None = Field(None, description="where bare registry ids live")
    registry_region: str | None = Field(None, description="their region")
    deploy_service_account: str | None = Field(None, description="the serving container's identity")
    pipeline_service_account: str | None = Field(
        None,
        description="the identity `/aiops retrain`'s pipeline jobs run as (default: the"
        " project's Compute Engine default service account, which is best avoided)",
    )
    logging_project: str | None = Field(None, description="project of the `aiops-audit` log copy")
    read_timeout_s: float = Field(
        30.0, gt=0, description="total budget of a read, retries included"
    )
    write_timeout_s: float = Field(120.0, gt=0, description="one attempt of a write")
    monitoring_url: str = Field("https://monitoring.googleapis.com", description="alerts REST API")
    metrics_lag_seconds: float = Field(
        300.0, ge=0, description="health windows end this long before now"
    )
    drift_lookback_hours: float = Field(
        48.0, gt=0, description="newest drift stats no older than this"
    )
    billing_export_table: str | None = Field(
        None, description="`project.dataset.table` (detailed export)"
    )
    billing_query_project: str | None = Field(
        None, description="runs the query (default: the table's)"
    )
    billing_label: str = Field(
        "aiops_endpoint", description="endpoint label for rows without a resource"
    )
    billing_cache_seconds: float = Field(3600.0, ge=0, description="cache of the billing query")
    bigquery_url: str = Field("https://bigquery.googleapis.com", description="BigQuery REST API")
    prices: VertexPrices = Field(default_factory=VertexPrices, description="cost estimate prices")
    alerts: VertexAlerts = Field(default_factory=VertexAlerts, description="alert severities")
    serving_alias: str = Field(
        "prod",
        pattern=r"^[a-z][a-z0-9-]{0,126}[a-z0-9]$",
        description="the registry alias naming what prod serves; moved when a change leaves"
        " one version at 100 % (the sandbox keeps its own)",
    )

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, ref in value.items():
            if isinstance(ref, str):
                continue
            if isinstance(ref, dict) and all(isinstance(v, str) for v in ref.values()):
                continue
            raise ValueError(
                f"`{name}` must be a registry model id or resource name, or a table of them"
                " per environment"
            )
        return value


def _runbook_link(value: str) -> str:
    """A runbook link: an absolute `https://` URL with a host, nothing that would break
    the Slack link it is shown in (`<url|label>`) or the Markdown of a review."""
    bad = next((ch for ch in value if ch.isspace() or ch in '<>|"`'), None)
    if bad is not None:
        shown = repr(bad) if bad.isspace() else f"`{bad}`"
        raise ValueError(
            f"`{value}` holds {shown}, which a link may not; percent-encode it (e.g. `%20`)"
        )
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"`{value}` is not an https link; write e.g. `https://wiki.example.com/runbooks/p95`"
            " (http and other schemes are refused)"
        )
    return value


RunbookLink = Annotated[
    str,
    AfterValidator(_runbook_link),
    Field(max_length=2000, json_schema_extra={"format": "uri", "pattern": "^https://"}),
]


class RunbooksTable(Table):
    """`[runbooks]`: what to do for an alert, by its policy first, then by its endpoint
    (`commands.incidents.runbooks.runbook_for`)."""

    policies: dict[str, RunbookLink] = Field(
        default_factory=dict,
        description="alert policy name (as Cloud Monitoring or the health watch names it)"
        " → https link",
    )
    endpoints: dict[str, RunbookLink] = Field(
        default_factory=dict, description="endpoint slug → https link, when no policy has one"
    )


class AlertsTable(Table):
    """`[alerts]`: the bot's own health watch of `[thresholds]`
    (`commands.incidents.health_watch`), and which endpoint a Cloud Monitoring alert concerns
    (`bot.alerts.cloud_monitoring`)."""

    watch: bool | list[Literal["p95_latency_ms", "error_rate", "drift"]] = Field(
        True,
        description="what the bot's own health watch judges: `true` all three metrics,"
        " `false` none, or a list of them. Where Cloud Monitoring's policies (terraform/:"
        ' P95 latency and error rate) post through the webhook, `["drift"]`: a breach'
        " watched by both is posted twice",
    )
    watch_interval: Duration = Field(
        "5m", description="one health-watch window, and how often each endpoint is judged (≥ 1m)"
    )
    open_after: int = Field(
        2, ge=1, le=100, description="consecutive breaching windows before an alert opens"
    )
    close_after: int = Field(
        3, ge=1, le=100, description="consecutive clear windows before an open alert closes"
    )
    clear_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description="a window is clear at or below this share of its threshold (0–1)",
    )
    policies: dict[str, str] = Field(
        default_factory=dict,
        description="Cloud Monitoring alert policy name → endpoint slug, for policies whose"
        " alerts carry neither the endpoint's `endpoint_id` resource label nor an"
        " `aiops_endpoint` policy label",
    )

    @field_validator("watch_interval")
    @classmethod
    def _at_least_a_minute(cls, value: str) -> str:
        if parse_duration(value) < timedelta(minutes=1):
            raise ValueError(f"`{value}` is shorter than 1m (Monitoring's shortest period)")
        return value


class ConfigFile(Table):
    """The whole file. `[environments]` is required; every other table has defaults."""

    platform: Literal["sandbox", "vertex"] = Field(
        "sandbox", description="`sandbox` (embedded simulation) or `vertex` (Vertex AI)"
    )
    allow_sandbox: bool = Field(
        False,
        description="`serve` with real Slack credentials refuses `sandbox` unless this is true",
    )
    timezone: Zone = Field(
        "Australia/Sydney", description="digests, freezes and `at=` times are in this zone"
    )
    slack: SlackTable = Field(default_factory=SlackTable, description="the workspace and channels")
    thresholds: ThresholdsTable = Field(default_factory=ThresholdsTable, description="breaches")
    people: dict[str, PersonTable] = Field(default_factory=dict, description="config name → person")
    environments: dict[str, EnvironmentTable] = Field(
        min_length=1, description="`dev`, `staging`, `prod`…"
    )
    models: dict[str, ModelTable] = Field(default_factory=dict, description="model name → versions")
    endpoints: dict[str, EndpointTable] = Field(default_factory=dict, description="slug → endpoint")
    sandbox: SandboxTable = Field(default_factory=SandboxTable, description="the simulation")
    audit: AuditTable = Field(default_factory=AuditTable, description="retention")
    canary: CanaryTable = Field(default_factory=CanaryTable, description="canary analysis")
    strategies: StrategiesTable = Field(
        default_factory=StrategiesTable, description="deployment strategies"
    )
    digests: DigestsTable = Field(default_factory=DigestsTable, description="digests")
    incidents: IncidentsTable = Field(
        default_factory=IncidentsTable, description="incidents and paging"
    )
    cost: CostTable = Field(
        default_factory=CostTable, description="idle capacity and budget alerts"
    )
    freezes: list[FreezeTable] = Field(default_factory=list, description="change freezes")
    vertex: VertexTable = Field(default_factory=VertexTable, description="the vertex platform")
    runbooks: RunbooksTable = Field(
        default_factory=RunbooksTable, description="runbook links for alerts"
    )
    alerts: AlertsTable = Field(
        default_factory=AlertsTable,
        description="the health watch; which endpoint an alert concerns",
    )


# --- problems -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (table path, key) and what, with what is allowed."""

    table: tuple[str | int, ...]
    key: str
    message: str

    def render(self, source: str) -> str:
        where = f"[{_path(self.table)}] " if self.table else ""
        key = f"{self.key}: " if self.key else ""
        return f"{source}: {where}{key}{self.message}"


def _segment(elem: str | int) -> str:
    if isinstance(elem, int):
        return f"[{elem}]"
    return elem if _BARE_KEY.match(elem) else f'"{elem}"'


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        seg = _segment(p)
        out += seg if seg.startswith("[") or not out else "." + seg
    return out


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _step(tp: Any, elem: str | int) -> Any:
    tp = _unwrap(tp)
    if _is_model(tp):
        for name, f in tp.model_fields.items():
            if (f.alias or name) == elem:
                return f.annotation
        return getattr(tp, "EXTRA_TABLE", None)
    origin = get_origin(tp)
    if origin is dict:
        return get_args(tp)[1]
    if origin is list:
        return get_args(tp)[0]
    return None


def _locate(
    loc: tuple[str | int, ...], whole_table: bool = True
) -> tuple[tuple[str | int, ...], tuple[str | int, ...], Any]:
    """Split an error location into (table path, key path, the model owning the key). An
    error about a whole table (`whole_table`) is located at the table itself."""
    cur: Any = ConfigFile
    split, owner = 0, ConfigFile
    for i, elem in enumerate(loc):
        if _is_model(_unwrap(cur)):
            split, owner = i, _unwrap(cur)
        cur = _step(cur, elem)
        if cur is None:
            break
    else:
        if whole_table and _is_model(_unwrap(cur)) and loc:
            return loc, (), _unwrap(cur)
    return loc[:split], loc[split:], owner


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"`{value}`"


def suggest(key: str, choices: Iterable[str], noun: str = "keys") -> str:
    """`; did you mean `x`?` for the closest choice, or the list of choices."""
    options = sorted(choices)
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; {noun} are {', '.join(f'`{o}`' for o in options)}" if options else ""


def _message(err: Mapping[str, Any], owner: Any, table: tuple[str | int, ...]) -> str:
    kind, got = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    here = f"[{_path(table)}]" if table else "the top level"
    if kind == "extra_forbidden" or (
        kind in ("model_type", "dict_type")
        and getattr(owner, "EXTRA_TABLE", None)
        and err["loc"]
        and err["loc"][-1] not in _keys(owner)
    ):
        key = str(err["loc"][-1])
        hint = suggest(key, _keys(owner))
        if getattr(owner, "EXTRA_TABLE", None) and "did you mean" not in hint:
            hint += f" (a table `[{_path(table)}.<environment>]` overrides one environment)"
        return f"not a key of {here}{hint}"
    if kind == "missing":
        return "is required"
    if kind == "bool_type":
        return f"must be `true` or `false` (a TOML boolean, not a string), not {_show(got)}"
    if kind in ("int_type", "int_from_float"):
        return f"must be a whole number, not {_show(got)}"
    if kind == "float_type":
        return f"must be a number, not {_show(got)}"
    if kind == "finite_number":
        return f"must be a finite number, not {_show(got)}"
    if kind == "string_type":
        return f"must be a string in quotes, not {_show(got)}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list `[…]`, not {_show(got)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a table, not {_show(got)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}, not {_show(got)}"
    if kind == "string_pattern_mismatch":
        what = _PATTERN_TEXT.get(
            str(ctx.get("pattern")), f"a string matching `{ctx.get('pattern')}`"
        )
        return f"{_show(got)} is not {what}"
    bounds = {
        "greater_than": "> {gt}",
        "greater_than_equal": "≥ {ge}",
        "less_than": "< {lt}",
        "less_than_equal": "≤ {le}",
    }
    if kind in bounds:
        return f"must be {bounds[kind].format(**ctx)}, not {_show(got)}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return f"{err['msg'].lower()}, not {_show(got)}"


_PATTERN_TEXT = {
    r"^[TE][A-Z0-9]{2,}$": "a Slack team id, e.g. `T0123ABCD`",
    r"^E[A-Z0-9]{2,}$": "a Slack Enterprise Grid id, e.g. `E0123ABCD`",
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$": "a GCP project id (6–30 lowercase letters, digits and"
    " hyphens, starting with a letter)",
    r"^[0-9]+$": "a Vertex AI endpoint id (digits only)",
    r"^[a-z][a-z0-9-]{0,126}[a-z0-9]$": "a Model Registry alias (lowercase letters, digits and"
    " hyphens, starting with a letter)",
}

_NOT_A_TABLE = ("model_type", "dict_type", "model_attributes_type", "missing")


def from_validation_error(
    exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        table, key, owner = _locate(loc, err["type"] not in _NOT_A_TABLE)
        # An unknown key names the key itself; anything else names the key it concerns.
        out.append(Problem(table, _path(key), _message(err, owner, table)))
    return out


# --- cross-table rules -----------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def is_slack_ref(ref: str) -> bool:
    return bool(USER_RE.match(ref) or GROUP_RE.match(ref))


def wall_clock_trouble(moment: datetime, tz: ZoneInfo) -> str | None:
    """`"does not exist"` / `"occurs twice"` for a local wall-clock time in `tz`, else None."""
    first = moment.replace(tzinfo=tz, fold=0)
    second = moment.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    back = first.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None)
    return "does not exist" if back != moment else "occurs twice"


def clock_changes(tz: ZoneInfo, at: time, start: date, days: int = 366) -> list[tuple[date, str]]:
    """The dates in `[start, start + days)` on which the local time `at` does not exist or
    occurs twice in `tz`: where the daylight-saving rule above decides when a digest runs."""
    found = []
    for i in range(days):
        day = start + timedelta(days=i)
        trouble = wall_clock_trouble(datetime.combine(day, at), tz)
        if trouble:
            found.append((day, trouble))
    return found


def cross_checks(data: Mapping[str, Any]) -> list[Problem]:
    """Rules between tables, on the raw document (whatever else is wrong with it)."""
    problems: list[Problem] = []
    people = _dict(data.get("people"))
    envs = _dict(data.get("environments"))
    models = _dict(data.get("models"))
    known_ids = {p.get("slack_id") for p in map(_dict, people.values())}

    for name, env in envs.items():
        env = _dict(env)
        table = ("environments", name)
        for key in ("requesters", "approvers", "break_glass"):
            for i, ref in enumerate(_strs(env.get(key))):
                bare = ref.lstrip("@")
                if ref in people or GROUP_RE.match(bare):
                    continue
                if key == "requesters" and USER_RE.match(bare):
                    continue
                if USER_RE.match(bare) and bare in known_ids:
                    continue  # a person of [people], written by Slack id
                what = (
                    "a Slack user id (`U…`/`W…`) or user-group id (`S…`)"
                    if key == "requesters"
                    else "a Slack user-group id (`S…`): who may approve must be a known person"
                )
                problems.append(
                    Problem(
                        table,
                        f"{key}[{i}]",
                        f"`{ref}` is neither a person of [people] nor {what}"
                        f"{suggest(bare, people, 'people')}",
                    )
                )
        for i, ref in enumerate(_strs(env.get("validators"))):
            if ref.lstrip("@") not in people:
                problems.append(
                    Problem(
                        table,
                        f"validators[{i}]",
                        f"`{ref}` is not a person of [people]: a validator signs a version off"
                        f" by name{suggest(ref.lstrip('@'), people, 'people')}",
                    )
                )
        region = env.get("region", "australia-southeast1")
        allowed = env.get("allowed_regions")
        if isinstance(region, str) and isinstance(allowed, list) and region not in allowed:
            problems.append(
                Problem(table, "region", f"`{region}` is not in its allowed_regions {allowed}")
            )
        approvers = _strs(env.get("approvers"))
        required = env.get("approvals_required")
        if isinstance(required, int) and not isinstance(required, bool):
            groups = any(GROUP_RE.match(a) for a in approvers)
            if required > 0 and not approvers:
                problems.append(
                    Problem(
                        table,
                        "approvals_required",
                        f"{required} approval(s) needed but no `approvers` named: nobody could approve",
                    )
                )
            elif approvers and not groups and required > len(set(approvers)):
                problems.append(
                    Problem(
                        table,
                        "approvals_required",
                        f"{required} distinct approvals needed but only {len(set(approvers))}"
                        " approver(s) named",
                    )
                )

    for slug, ep in _dict(data.get("endpoints")).items():
        ep = _dict(ep)
        table = ("endpoints", slug)
        env_name = ep.get("environment")
        if isinstance(env_name, str) and env_name not in envs:
            problems.append(
                Problem(
                    table,
                    "environment",
                    f"`{env_name}` is not an environment{suggest(env_name, envs, 'environments')}",
                )
            )
        model = ep.get("model")
        if isinstance(model, str) and model not in models:
            problems.append(
                Problem(
                    table, "model", f"`{model}` is not a model{suggest(model, models, 'models')}"
                )
            )
        env = _dict(envs.get(env_name)) if isinstance(env_name, str) else {}
        env_region = env.get("region", "australia-southeast1")
        allowed = env.get("allowed_regions", [env_region])
        region = ep.get("region") or env_region
        if env and isinstance(allowed, list) and region not in allowed:
            problems.append(
                Problem(
                    table,
                    "region",
                    f"`{region}` is outside the allowed regions of `{env_name}` {allowed}"
                    " (data residency)",
                )
            )

    digests = _dict(data.get("digests"))
    for i, name in enumerate(_strs(digests.get("environments"))):
        if name not in envs:
            problems.append(
                Problem(
                    ("digests",),
                    f"environments[{i}]",
                    f"`{name}` is not an environment{suggest(name, envs, 'environments')}",
                )
            )
    for key, value in digests.items():
        if isinstance(value, dict) and key not in envs:
            problems.append(
                Problem(
                    ("digests", key),
                    "",
                    f"unknown environment `{key}`: `[digests.<environment>]` overrides one"
                    f" environment{suggest(key, envs, 'environments')}",
                )
            )

    tz: ZoneInfo | None = None
    try:
        tz = zone(data["timezone"]) if isinstance(data.get("timezone"), str) else None
    except ValueError:
        tz = None
    if "timezone" not in data:
        tz = ZoneInfo("Australia/Sydney")
    freezes = data.get("freezes")
    for i, item in enumerate(freezes if isinstance(freezes, list) else []):
        item = _dict(item)
        for j, env_name in enumerate(_strs(item.get("environments"))):
            if env_name not in envs:
                problems.append(
                    Problem(
                        ("freezes", i),
                        f"environments[{j}]",
                        f"`{env_name}` is not an environment{suggest(env_name, envs, 'environments')}",
                    )
                )
        for key in ("from", "until"):
            moment = item.get(key)
            if tz is not None and isinstance(moment, datetime) and moment.tzinfo is None:
                trouble = wall_clock_trouble(moment, tz)
                if trouble:
                    problems.append(
                        Problem(
                            ("freezes", i),
                            key,
                            f"{moment.isoformat()} {trouble} in {tz.key} (daylight saving);"
                            " pick a time outside the change of clocks",
                        )
                    )

    endpoints = _dict(data.get("endpoints"))
    for slug in endpoints:
        if ":" in slug:
            problems.append(
                Problem(
                    ("endpoints", slug),
                    "",
                    f"`{slug}` holds `:`, which an endpoint's name may not (`model:<name>` names"
                    " a model's retrain); use letters, digits and `-`",
                )
            )
    for name, model in models.items():
        model = _dict(model)
        env_name = model.get("retrain_environment")
        if isinstance(env_name, str) and env_name not in envs:
            problems.append(
                Problem(
                    ("models", name),
                    "retrain_environment",
                    f"`{env_name}` is not an environment{suggest(env_name, envs, 'environments')}",
                )
            )
        serving = [e for e in map(_dict, endpoints.values()) if e.get("model") == name]
        if model.get("retrain_template") and env_name is None and not serving:
            problems.append(
                Problem(
                    ("models", name),
                    "retrain_environment",
                    "no endpoint serves this model, so whose project and approval rules a"
                    " retrain runs under cannot be inferred; name one of [environments]",
                )
            )
    for slug in _dict(_dict(data.get("runbooks")).get("endpoints")):
        if slug not in endpoints:
            problems.append(
                Problem(
                    ("runbooks",),
                    _path(("endpoints", slug)),
                    f"`{slug}` is not an endpoint of [endpoints]"
                    f"{suggest(slug, endpoints, 'endpoints')}",
                )
            )
    for policy, slug in _dict(_dict(data.get("alerts")).get("policies")).items():
        if isinstance(slug, str) and slug not in endpoints:
            problems.append(
                Problem(
                    ("alerts",),
                    _path(("policies", policy)),
                    f"`{slug}` is not an endpoint of [endpoints]"
                    f"{suggest(slug, endpoints, 'endpoints')}",
                )
            )

    vertex_models = _dict(_dict(data.get("vertex")).get("models"))
    for name, ref in vertex_models.items():
        for env_name in _dict(ref):
            if env_name not in envs:
                problems.append(
                    Problem(
                        ("vertex", "models", name),
                        env_name,
                        f"not an environment{suggest(env_name, envs, 'environments')}",
                    )
                )
    return problems


def check(data: Mapping[str, Any]) -> tuple[ConfigFile | None, list[Problem]]:
    """Validate the whole document: every key's problems, then the cross-table rules."""
    problems: list[Problem] = []
    doc: ConfigFile | None = None
    try:
        doc = ConfigFile.model_validate(dict(data))
    except ValidationError as exc:
        problems.extend(from_validation_error(exc))
    problems.extend(cross_checks(data))
    problems.sort(key=lambda p: _position(data, p))  # in the order of the file
    return (doc if not problems else None), problems


def _position(data: Mapping[str, Any], problem: Problem) -> tuple[int, ...]:
    """Where a problem's key sits in the document (insertion order, as the TOML reads)."""
    path: tuple[str | int, ...] = problem.table
    if problem.key:
        path += (re.split(r"[\[.]", problem.key, maxsplit=1)[0],)
    out: list[int] = []
    cur: Any = data
    for elem in path:
        if isinstance(cur, dict) and elem in cur:
            out.append(list(cur).index(elem))
            cur = cur[elem]
        elif isinstance(cur, list) and isinstance(elem, int) and elem < len(cur):
            out.append(elem)
            cur = cur[elem]
        else:
            out.append(1 << 30)
            break
    return tuple(out)


def validate(data: Mapping[str, Any], source: str) -> ConfigFile:
    """The validated document, or `ConfigError` listing every problem, one line each."""
    doc, problems = check(data)
    if problems or doc is None:
        lines = [p.render(source) for p in problems]
        raise ConfigError(lines[0], lines)
    return doc


def validate_table(
    model: type[Table], value: Any, table: tuple[str | int, ...], source: str
) -> Any:
    """One table on its own (`[digests]`, `[canary]`, an environment), as the readers of
    those tables re-check `config.raw`; problems rendered as `validate` does."""
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        lines = [p.render(source) for p in from_validation_error(exc, table)]
        raise ConfigError(lines[0], lines) from None


# --- JSON Schema and Markdown -----------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the TOML (draft 2020-12), for editors (Taplo, Even Better TOML)."""
    schema = ConfigFile.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "aiops-bot config",
        **schema,
    }


_TYPE_NAMES: dict[Any, str] = {
    _duration: "duration",
    _check_clock: "`HH:MM` or `off`",
    _check_zone: "time zone",
    _channel: "channel id",
    _user: "user id",
    _days: "days",
    _freeze_moment: "local date-time",
    _moment: "date or date-time",
    _runbook_link: "https link",
}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        for meta in get_args(tp)[1:]:
            if isinstance(meta, AfterValidator) and meta.func in _TYPE_NAMES:
                return _TYPE_NAMES[meta.func]
        return _type_name(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "table"
    if _is_model(tp):
        return "table"
    return {bool: "boolean", int: "integer", float: "number", str: "string", Any: "any"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return ""
    elif field.is_required():
        return "required"
    else:
        value = field.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dict | list) and not value:
        return "`[]`" if isinstance(value, list) else "`{}`"
    return f"`{value}`"


def _rows(model: type[BaseModel]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if _is_model(_unwrap(field.annotation)) and model is ConfigFile:
            continue  # a table of its own, below
        desc = (field.description or "").replace("|", "\\|")
        kind = next(
            (
                _TYPE_NAMES[m.func]
                for m in field.metadata
                if isinstance(m, AfterValidator) and m.func in _TYPE_NAMES
            ),
            None,
        )
        kind = kind or _type_name(field.annotation)
        rows.append(f"| `{key}` | {kind} | {_default_text(field)} | {desc} |")
    return rows


_TABLES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("top level", ConfigFile),
    ("[slack]", SlackTable),
    ("[thresholds]", ThresholdsTable),
    ("[people.<name>]", PersonTable),
    ("[environments.<name>]", EnvironmentTable),
    ("[models.<name>]", ModelTable),
    ('[models.<name>.cards."<version>"]', VersionCardTable),
    ("[endpoints.<slug>]", EndpointTable),
    ("[sandbox]", SandboxTable),
    ("[audit]", AuditTable),
    ("[canary]", CanaryTable),
    ("[strategies]", StrategiesTable),
    ("[digests]", DigestsTable),
    ("[digests.<environment>]", DigestOverride),
    ("[cost]", CostTable),
    ("[[freezes]]", FreezeTable),
    ("[incidents]", IncidentsTable),
    ("[vertex]", VertexTable),
    ("[vertex.prices]", VertexPrices),
    ("[vertex.alerts]", VertexAlerts),
    ("[runbooks]", RunbooksTable),
    ("[alerts]", AlertsTable),
)


def markdown() -> str:
    """The key tables of README's Configuration section, generated from this schema (a
    test holds the README to it)."""
    out = [
        "<!-- generated by `aiops-bot config docs` from commands/config_schema.py -->",
        "",
    ]
    for title, model in _TABLES:
        out += [f"#### `{title}`" if title != "top level" else "#### Top level", ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        out += _rows(model)
        out.append("")
    out.append(
        f"Durations: {FORMS}. Days: {DAY_FORMS}. Channel ids look like `C0123ABCD`;"
        " people and approvers are config names of `[people]` or Slack user (`U…`) and"
        " user-group (`S…`) ids."
    )
    out.append("")
    return "\n".join(out)
