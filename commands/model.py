"""The domain's vocabulary as plain types: model versions, changes and their states,
traffic splits, deployed models, health, actors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

_VERSION_RE = re.compile(
    r"^(?P<model>[a-z0-9][a-z0-9._-]*)@(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)$"
)


class InvalidModelVersion(ValueError):
    pass


@dataclass(frozen=True, order=True)
class ModelVersion:
    """`gemma-3-1b-it@1.2.1`: a model and a semantic version in the registry."""

    model: str
    version: str

    @classmethod
    def parse(cls, text: str) -> ModelVersion:
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise InvalidModelVersion(
                f"`{text}` is not a model version; write it as `<model>@<major.minor.patch>`,"
                " e.g. `gemma-3-1b-it@1.2.1`"
            )
        return cls(match["model"], match["version"])

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


class ChangeKind(StrEnum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    SCALE = "scale"  # a deployed model's min / max replicas (`/aiops scale`)
    UNDEPLOY = "undeploy"  # a deployed model serving 0 % removed (`/aiops undeploy`)
    RETRAIN = "retrain"  # a model's training pipeline run (`/aiops retrain`): no endpoint


# A retrain acts on a model, not an endpoint: its change's `endpoint` column holds this key
# instead of a slug (endpoint slugs may not contain `:`, `commands.config_schema`), so the
# one-open-change lock (`Store.create_change`) refuses only a second retrain of the same
# model while deploys, promotes and rollbacks of the model's endpoints go on.
MODEL_KEY = "model:"


def model_key(model: str) -> str:
    """`gemma-3-1b-it` → `model:gemma-3-1b-it`: the lock key of a model's retrain."""
    return f"{MODEL_KEY}{model}"


class Strategy(StrEnum):
    """How a deploy takes a version live (`/deploy … strategy=`).

    `canary`: deployed beside the serving version with a share of traffic, judged by the
    canary analysis, promoted in steps. `blue-green`: deployed at 0 %, switched to 100 %
    in one traffic update once ready; the old version stays deployed (ready) until a
    promote undeploys it or a rollback switches back. `replace`: deployed at 100 %; the
    old version is undeployed once the new one has been healthy for `[strategies]
    replace_soak`, or traffic goes back to it if the new one is not."""

    CANARY = "canary"
    BLUE_GREEN = "blue-green"
    REPLACE = "replace"


class ChangeState(StrEnum):
    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATES

    @property
    def mark(self) -> str:
        return _MARKS[self]


OPEN_STATES = frozenset(
    {ChangeState.REQUESTED, ChangeState.PENDING_APPROVAL, ChangeState.APPROVED, ChangeState.RUNNING}
)

_MARKS = {
    ChangeState.REQUESTED: "🆕",
    ChangeState.PENDING_APPROVAL: "⏳",
    ChangeState.APPROVED: "👍",
    ChangeState.RUNNING: "🔄",
    ChangeState.SUCCEEDED: "✅",
    ChangeState.FAILED: "❌",
    ChangeState.REJECTED: "🚫",
    ChangeState.EXPIRED: "⌛",
    ChangeState.CANCELLED: "🗑️",
}

# The only moves a change may make; every one is a compare-and-set in the store.
TRANSITIONS: dict[ChangeState, frozenset[ChangeState]] = {
    ChangeState.REQUESTED: frozenset(
        {ChangeState.PENDING_APPROVAL, ChangeState.APPROVED, ChangeState.CANCELLED}
    ),
    ChangeState.PENDING_APPROVAL: frozenset(
        {ChangeState.APPROVED, ChangeState.REJECTED, ChangeState.EXPIRED, ChangeState.CANCELLED}
    ),
    ChangeState.APPROVED: frozenset(
        {ChangeState.RUNNING, ChangeState.CANCELLED, ChangeState.FAILED}
    ),
    ChangeState.RUNNING: frozenset({ChangeState.SUCCEEDED, ChangeState.FAILED}),
}


def can_move(old: ChangeState, new: ChangeState) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


class IllegalTransition(ValueError):
    """A move the state table does not allow: a bug in the caller, never a race (a race is
    a compare-and-set that finds another state and returns None)."""

    def __init__(self, what: str, old: str, new: str) -> None:
        super().__init__(f"{what} may not move {old} → {new}")
        self.old = old
        self.new = new


TrafficSplit = dict[str, int]
NEW = "0"  # in a deploy's split, the model being deployed (as Vertex AI reads it)
"""Deployed-model id → percent; always sums to 100 (or is empty for an empty endpoint)."""


class InvalidSplit(ValueError):
    pass


def check_split(split: TrafficSplit) -> TrafficSplit:
    """Refuse any split that does not sum to 100 or has shares outside 0–100."""
    if not split:
        return split
    for key, share in split.items():
        if not 0 <= share <= 100:
            raise InvalidSplit(f"share {share} for {key} is outside 0–100")
    if sum(split.values()) != 100:
        raise InvalidSplit(f"traffic split {split} sums to {sum(split.values())}, not 100")
    return {k: v for k, v in split.items() if v > 0}


@dataclass(frozen=True)
class DeployedModel:
    """A model version on an endpoint. `replicas` is its minimum replica count (what it
    holds however quiet it is, and what it costs at least); `max_replicas` the most it
    may scale to, None where the platform did not say."""

    id: str
    version: ModelVersion
    replicas: int = 1
    max_replicas: int | None = None


@dataclass(frozen=True)
class EndpointState:
    """What an endpoint serves right now, as the platform reports it."""

    slug: str
    deployed: tuple[DeployedModel, ...]
    traffic: TrafficSplit

    def model(self, deployed_model_id: str) -> DeployedModel | None:
        return next((d for d in self.deployed if d.id == deployed_model_id), None)

    def by_version(self, version: ModelVersion) -> DeployedModel | None:
        return next((d for d in self.deployed if d.version == version), None)

    def describe(self, split: TrafficSplit | None = None) -> str:
        """`1.2.0 90% · 1.2.1 10%`, largest share first. Without `split`: every deployed
        model, a model deployed at 0 % included (it still holds replicas)."""
        if split is None:
            split = {d.id: 0 for d in self.deployed} | dict(self.traffic)
        if not split:
            return "nothing deployed"
        parts = []
        for dm_id, share in sorted(split.items(), key=lambda kv: (-kv[1], kv[0])):
            dm = self.model(dm_id)
            label = dm.version.version if dm else dm_id
            parts.append(f"{label} {share}%")
        return " · ".join(parts)


@dataclass(frozen=True)
class ModelHealth:
    p95_latency_ms: float | None
    error_rate: float | None
    request_count: int


@dataclass(frozen=True)
class EndpointHealth:
    slug: str
    p95_latency_ms: float | None
    error_rate: float | None
    request_count: int
    replicas: int
    max_replicas: int
    duty_cycle: float | None
    drift: float | None  # None: not monitored
    cost_today_usd: float | None
    cost_is_estimate: bool = True
    by_model: dict[str, ModelHealth] = field(default_factory=dict)


@dataclass(frozen=True)
class Actor:
    """Who did something: a Slack user id (or `scheduler` / `bot`) and, for display, a name."""

    id: str
    name: str | None = None

    @property
    def display(self) -> str:
        return self.name or self.id


BOT = Actor("bot", "aiops-bot")
SCHEDULER = Actor("scheduler", "scheduler")


@dataclass(frozen=True)
class Invocation:
    """One typed command: who, what, from where (the edge builds it, the domain runs it)."""

    actor: Actor
    command: str
    text: str
    channel_id: str | None = None
    request_id: str | None = None


@dataclass
class ChangePlan:
    """What a change carries beyond its columns, typed: how it runs, what it names, what
    it was shown with, where its execution got to.

    Stored as the flat string map it replaced (`to_extra` / `from_extra`, one JSON
    column), key for key, so rows written before it load unchanged and an approval's plan
    hash (`commands.changes.rules.plan_hash`) stays byte-identical. Keys it does not know
    are kept in `other` and written back as they were.
    """

    mode: str | None = None  # deploy | shift | redeploy: what the executor does
    labels: dict[str, str] = field(default_factory=dict)  # deployed-model id → version
    stable_id: str | None = None
    canary_id: str | None = None
    undeploy: tuple[str, ...] = ()  # deployed models undeployed after the traffic move
    redeploy_version: str | None = None  # a rollback after a full promote redeploys this
    replaced_version: str | None = None  # a promote to 100 %: the version it replaced
    ticket: str | None = None
    run_at: datetime | None = None  # scheduled with `at=` (UTC)
    break_glass: bool = False
    plan_hash: str | None = None  # what approvers were shown
    health: str | None = None  # the endpoint's health line when it was planned
    canary: str | None = None  # the canary analysis summary when it was requested
    canary_steps: tuple[int, ...] = ()  # a step plan's shares
    canary_key: str | None = None  # the watch action this change fulfils
    forced_promote: str | None = None  # why the promote gate was overridden
    forced: str | None = None  # why another refusal was overridden with `force=true`
    phase: str | None = None  # where the execution got to (deploy, traffic, undeploy, done)
    strategy: str | None = None  # a deploy's `Strategy` (None: a canary, as before strategies)
    target_id: str | None = None  # the deployed model a scale or undeploy acts on
    replicas_before: tuple[int, int] | None = None  # a scale's (min, max) before → after
    replicas_after: tuple[int, int] | None = None
    # USD a day at minimum replicas: now, while old and new are both deployed (a deploy),
    # and once the change is through; None where the platform has no price for it.
    cost_before: float | None = None
    cost_during: float | None = None
    cost_after: float | None = None
    soak_until: datetime | None = None  # a replace: the soak's end, set when it starts (UTC)
    soak: str | None = None  # a replace: why the soak failed (the change then rolls back)
    incident: str | None = None  # the incident open on its endpoint when requested (INC-N)
    # JSON (commands.models): the version's card, evaluation and validation when planned,
    # with the validation gate's outcome; and the serving alias' move after it ran
    model_review: str | None = None
    serving_alias: str | None = None
    # JSON (commands.models.model.RetrainSpec): a retrain's pipeline, parameters and where
    # it runs, as shown to approvers
    pipeline: str | None = None
    # A retrain's outcome, `model@x.y.z`: the version its run registered. Written after
    # approval, so kept out of `version` and every field the plan hash covers.
    registered_version: str | None = None
    other: dict[str, str] = field(default_factory=dict)

    _TEXT = (
        "mode",
        "stable_id",
        "canary_id",
        "redeploy_version",
        "replaced_version",
        "ticket",
        "plan_hash",
        "health",
        "canary",
        "canary_key",
        "forced_promote",
        "forced",
        "phase",
        "strategy",
        "target_id",
        "soak",
        "incident",
        "model_review",
        "serving_alias",
        "pipeline",
        "registered_version",
    )
    _REPLICAS = ("replicas_before", "replicas_after")
    _COSTS = ("cost_before", "cost_during", "cost_after")

    def to_extra(self) -> dict[str, str]:
        out = {f"label:{k}": v for k, v in self.labels.items()}
        for key in self._TEXT:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.undeploy:
            out["undeploy"] = ",".join(self.undeploy)
        if self.run_at is not None:
            out["run_at"] = self.run_at.isoformat()
        if self.break_glass:
            out["break_glass"] = "true"
        if self.canary_steps:
            out["canary_steps"] = ",".join(map(str, self.canary_steps))
        for key in self._REPLICAS:
            pair = getattr(self, key)
            if pair is not None:
                out[key] = f"{pair[0]}:{pair[1]}"
        for key in self._COSTS:
            cost = getattr(self, key)
            if cost is not None:
                out[key] = repr(float(cost))
        if self.soak_until is not None:
            out["soak_until"] = self.soak_until.isoformat()
        return out | self.other

    @classmethod
    def from_extra(cls, extra: dict[str, str]) -> ChangePlan:
        plan = cls()
        for key, value in extra.items():
            if key.startswith("label:"):
                plan.labels[key.removeprefix("label:")] = value
            elif key in cls._TEXT:
                setattr(plan, key, value)
            elif key == "undeploy":
                plan.undeploy = tuple(i for i in value.split(",") if i)
            elif key == "run_at":
                plan.run_at = datetime.fromisoformat(value)
            elif key == "break_glass":
                plan.break_glass = bool(value)
            elif key == "canary_steps":
                plan.canary_steps = tuple(int(s) for s in value.split(",") if s)
            elif key in cls._REPLICAS:
                low, _, high = value.partition(":")
                setattr(plan, key, (int(low), int(high)))
            elif key in cls._COSTS:
                setattr(plan, key, float(value))
            elif key == "soak_until":
                plan.soak_until = datetime.fromisoformat(value)
            else:
                plan.other[key] = value
        return plan


@dataclass
class Change:
    """One requested deploy / promote / rollback / scale / undeploy / retrain, with its
    plan and state. `endpoint` is the endpoint's slug, or for a retrain the model's key
    (`model_key`): read `model_retrained` and `subject` rather than assuming a slug."""

    id: str
    kind: ChangeKind
    endpoint: str
    environment: str
    requester_id: str
    state: ChangeState
    created_at: datetime
    reason: str | None = None
    version: str | None = None  # deploy: the model version being deployed
    canary_percent: int | None = None  # deploy: the new model's share; promote: the target share
    split_before: TrafficSplit = field(default_factory=dict)
    split_after: TrafficSplit = field(
        default_factory=dict
    )  # "0" stands for a model not yet deployed
    restore_split: TrafficSplit = field(
        default_factory=dict
    )  # what a rollback of this change restores
    expires_at: datetime | None = None
    operation: str | None = None
    new_deployed_model_id: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    error: str | None = None
    channel: str | None = None  # where its approval message lives, once posted
    message_ts: str | None = None
    updated_at: datetime | None = None
    plan: ChangePlan = field(default_factory=lambda: ChangePlan())
    # The lease on its background work, as last read (only the store's lease methods
    # write it): who runs it, their last heartbeat, when the lease lapses without one.
    lease_owner: str | None = None
    lease_heartbeat_at: datetime | None = None
    lease_expires_at: datetime | None = None
    # Who asked it to stop and roll back while it ran (a `/rollback` during a soak), and
    # why: written only by `Store.request_stop`; the worker honours it.
    stop_requested_by: str | None = None
    stop_reason: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Deployed-model id → version, as recorded on the change when it was planned/run."""
        return self.plan.labels

    @property
    def model_retrained(self) -> str | None:
        """The model a retrain runs the training pipeline of; None for a change of an
        endpoint."""
        if self.endpoint.startswith(MODEL_KEY):
            return self.endpoint.removeprefix(MODEL_KEY)
        return None

    @property
    def subject(self) -> str:
        """What the change acts on, for people: the endpoint's slug, or the model's name
        for a retrain."""
        return self.model_retrained or self.endpoint


# A deploy made by a change carries a deployed-model id derived from the change's number,
# so a process that takes the change over can find it on the endpoint instead of deploying
# twice. Vertex AI accepts a chosen id of at most 10 digits; the ids it makes itself are
# longer, and the sandbox's are 13 digits, so these collide with neither.
_CHANGE_DM_PREFIX = "9"
_CHANGE_DM_DIGITS = 9


def change_deployed_model_id(change_id: str) -> str | None:
    """`CHG-12` → `9000000012`: the deployed-model id a deploy by that change carries.
    None for an id that is not `CHG-<n>` or whose number needs more than 9 digits."""
    number = change_id.strip().upper().removeprefix("CHG-")
    if not (number.isascii() and number.isdigit()) or len(str(int(number))) > _CHANGE_DM_DIGITS:
        return None
    return f"{_CHANGE_DM_PREFIX}{int(number):0{_CHANGE_DM_DIGITS}d}"


def stranded_since(change: Change, now: datetime, settle: timedelta) -> datetime | None:
    """When a change's background work was left without a live worker; None while it has
    one, or needs none.

    RUNNING with no lease, or one expired at `now`: since the lease expired (or, never
    leased, since the change last moved). APPROVED and due but not started `settle` after
    it became due (approved, or its `at=` time came): since it became due. REQUESTED
    `settle` after it was created: since then (a change is `requested` only for the moments
    its opener takes to put it up for approval or approve it by policy; one left there
    was opened by a process that died, and holds its endpoint). Every other state has no
    background work."""
    leased = change.lease_owner is not None and change.lease_expires_at is not None
    if leased and change.lease_expires_at is not None and change.lease_expires_at > now:
        return None  # a live worker holds it
    if change.state is ChangeState.RUNNING:
        if leased:
            return change.lease_expires_at
        return change.updated_at or change.decided_at or change.created_at
    if change.state is ChangeState.REQUESTED:
        return change.created_at if change.created_at + settle <= now else None
    if change.state is ChangeState.APPROVED:
        due = max(
            change.decided_at or change.updated_at or change.created_at,
            change.plan.run_at or change.created_at,
        )
        return due if due + settle <= now else None
    return None
