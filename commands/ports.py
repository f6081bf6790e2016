"""The interfaces the domain depends on, each with its contract.

`commands/` never imports an adapter: the edge (`bot/`) hands it objects that satisfy
these protocols. Implementations: `bot/store/` (Store, CanaryStore, People on SQLModel),
`bot/platforms/` (Platform and its optional histories: the embedded sandbox, Vertex AI
with Cloud Monitoring), `bot/slack/` (Notifier, ChartAttacher, GroupResolver) and the
console's stand-ins. A method that may find nothing says what its `None` means; a method
that must be atomic says so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable

from commands.canary.model import Check, Watch, WatchState
from commands.canary.stats import CanaryWindow
from commands.config import Endpoint
from commands.messages import Post
from commands.model import (
    Change,
    ChangeState,
    EndpointHealth,
    EndpointState,
    ModelVersion,
    TrafficSplit,
)


class EndpointLocked(Exception):
    def __init__(self, endpoint: str, holder: Change) -> None:
        super().__init__(f"{endpoint} is locked by {holder.id}")
        self.endpoint = endpoint
        self.holder = holder


@dataclass(frozen=True)
class ApprovalRecord:
    change_id: str
    approver_id: str
    decision: str  # approve | reject
    at: datetime
    reason: str | None = None
    plan_hash: str | None = None


@dataclass(frozen=True)
class Decision:
    """What `Store.decide` did with one person's decision on a change.

    `stored`: the decision took effect, and only then is its approval row there.
    `duplicate`: this person had already decided on the change (nothing stored).
    Neither: the change was no longer pending approval (nothing stored).
    `change`: the change as the decision left it (moved when the decision completed it),
    or as it was found when nothing was stored.
    `deciders`: who has made this same decision on the change, in order, this person
    included, the requester never counted (empty when nothing was stored)."""

    change: Change
    stored: bool
    duplicate: bool = False
    deciders: tuple[str, ...] = ()


@dataclass
class AuditEvent:
    """One append-only record of something that happened."""

    action: str
    actor_id: str
    outcome: str
    at: datetime
    environment: str | None = None
    target: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    justification: str | None = None
    change_id: str | None = None
    request_id: str | None = None
    id: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    retain_until: datetime | None = None
    chain_version: int | None = None  # how `hash` was computed; set by the store


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    endpoint: str | None = None
    environment: str | None = None
    actor_id: str | None = None
    change_id: str | None = None
    # only rows whose action is one of these (an index holds action and time)
    actions: frozenset[str] | None = None
    limit: int | None = None


class Store(Protocol):
    def create_change(self, change: Change) -> Change:
        """Insert a change and take its endpoint's lock; assigns `change.id`.

        Raises `EndpointLocked` naming the open change that holds the endpoint.
        """
        ...

    def get_change(self, change_id: str) -> Change | None: ...

    def open_change(self, endpoint: str) -> Change | None: ...

    def transition(
        self,
        change_id: str,
        old: ChangeState,
        new: ChangeState,
        *,
        holder: str | None = None,
        **fields: Any,
    ) -> Change | None:
        """Compare-and-set `old → new` (and `fields`); None when the change was not in `old`
        or, with `holder`, when its lease is no longer `holder`'s.

        A terminal state releases the endpoint's lock and clears the change's lease in the
        same transaction. A move that `commands.model.TRANSITIONS` does not allow raises
        `IllegalTransition` and writes nothing.
        """
        ...

    def update_change(
        self,
        change_id: str,
        *,
        holder: str | None = None,
        unless_stop_requested: bool = False,
        **fields: Any,
    ) -> bool:
        """Set `fields` (never `state`, the lease or a stop request); False when nothing
        was written: with `holder`, because the change's lease is no longer `holder`'s
        (someone took the work over, so the caller must stop writing); with
        `unless_stop_requested`, because someone asked it to stop (`request_stop`) first."""
        ...

    def request_stop(
        self, change_id: str, actor_id: str, reason: str | None, *, phase: str
    ) -> Change | None:
        """Compare-and-set a person's request that a running change stop and roll back
        (`actor_id`, `reason` masked as stored): one UPDATE that wins only while the change
        is RUNNING, in `phase` (its plan's phase as stored) and not asked before. Returns
        the change as written; None otherwise. The worker's own move out of that phase is
        written with `unless_stop_requested`, so of the two exactly one happens first."""
        ...

    # The lease on a change's background work (commands/changes/execute.py): whoever holds
    # it is the one process that may touch the platform and the change for it. Times are
    # the caller's clock; replicas' clocks must agree to well within the lease's TTL.

    def take_lease(
        self,
        change_id: str,
        owner: str,
        now: datetime,
        ttl: timedelta,
        *,
        from_state: ChangeState = ChangeState.RUNNING,
    ) -> Change | None:
        """Compare-and-set the lease to `owner` (heartbeat `now`, expiry `now + ttl`): one
        UPDATE that wins only while the change is in `from_state` and its lease is free,
        expired at `now` or already `owner`'s. From APPROVED the change also moves to
        RUNNING in that same UPDATE, so it is never RUNNING without a lease. Returns the
        change as written; None when another owner holds a live lease or the change is in
        another state. Of any number of concurrent callers, at most one wins."""
        ...

    def renew_lease(self, change_id: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Heartbeat: move the expiry to `now + ttl` if the lease is still `owner`'s and the
        change still RUNNING (an expired lease nobody took is still the owner's). False:
        it was taken over or the change ended; the owner must stop."""
        ...

    def release_lease(self, change_id: str, owner: str) -> bool:
        """Clear the lease if it is `owner`'s; False (and nothing written) otherwise."""
        ...

    def stranded(self, now: datetime, settle: timedelta) -> list[Change]:
        """Changes whose background work has no live worker at `now`, oldest first:
        RUNNING with a lease missing or expired, APPROVED ones due for more than `settle`
        and not started, and REQUESTED ones created more than `settle` ago (their opener
        died) (`commands.model.stranded_since` decides)."""
        ...

    def list_changes(
        self,
        *,
        states: Sequence[ChangeState] | None = None,
        endpoint: str | None = None,
        limit: int = 20,
    ) -> list[Change]: ...

    def last_succeeded(
        self, endpoint: str, kinds: Sequence[str] | None = None
    ) -> Change | None: ...

    def decide(
        self, record: ApprovalRecord, new: ChangeState, quorum: int, **fields: Any
    ) -> Decision:
        """One person's decision (`record`) on a change pending approval, as one atomic
        step: the approval row is stored only if the change is still pending and this
        person has not decided on it yet; once `quorum` people other than the requester
        have made `record.decision`, the change moves pending_approval → `new` (with
        `fields`) in the same transaction. Decisions on one change take turns, so each
        counts the ones stored before it. A refused decision stores nothing. The approval
        table is written by this method only. None of it raises for a race: see
        `Decision`; an unknown change raises `KeyError`.
        """
        ...

    def approvals(self, change_id: str) -> list[ApprovalRecord]: ...

    def append_audit(self, event: AuditEvent) -> AuditEvent: ...

    def audit(self, query: AuditQuery) -> list[AuditEvent]: ...


class PlatformError(Exception):
    """A fault from the platform, already turned into words a person can act on."""

    def __init__(self, message: str, *, kind: str = "error", retryable: bool = False) -> None:
        super().__init__(message)
        # quota | permission | not_found | precondition | operation | unavailable |
        # already_exists (a deploy whose deployed-model id is taken, an undeploy of a
        # model whose undeploy is running)
        self.kind = kind
        self.retryable = retryable


class UnknownVersion(PlatformError):
    def __init__(self, version: ModelVersion, known: Sequence[str]) -> None:
        super().__init__(
            f"`{version}` is not in the model registry; known versions of `{version.model}`:"
            f" {', '.join(known) or 'none'}",
            kind="not_found",
        )
        self.known = tuple(known)


@dataclass(frozen=True)
class OperationStatus:
    name: str
    done: bool
    progress: int = 0  # percent, best effort
    error: str | None = None
    deployed_model_id: str | None = None  # a finished deploy's new deployed-model id


@dataclass(frozen=True)
class ScaleLimits:
    """The replica counts a platform accepts for an endpoint's deployed models
    (`Platform.scale_limits`): min ≥ `lowest_min`, max ≤ `highest_max`, min ≤ max.
    `zero_refused`: while `lowest_min` is 1, why min 0 is not allowed there and what to do
    instead, in words (None when it is)."""

    lowest_min: int
    highest_max: int
    zero_refused: str | None = None


@dataclass(frozen=True)
class Alert:
    policy: str
    severity: str  # P1 | P2 | P3
    state: str  # open | closed
    opened_at: datetime
    closed_at: datetime | None
    endpoint: str | None
    summary: str


class Platform(Protocol):
    name: str

    def endpoint_state(self, endpoint: Endpoint) -> EndpointState:
        """What the endpoint serves now (deployed models and traffic split)."""
        ...

    def model_versions(self, model: str) -> list[str]:
        """The versions the registry holds for a model."""
        ...

    def begin_deploy(
        self,
        endpoint: Endpoint,
        version: ModelVersion,
        traffic_split: TrafficSplit,
        change_id: str | None = None,
    ) -> str:
        """Start deploying a version; `traffic_split` uses "0" for the new model.

        With `change_id`, the deployed model gets the id
        `commands.model.change_deployed_model_id(change_id)` and a display name naming the
        change, so whoever takes the change over can find it; a deploy with an id already
        on the endpoint or in a deploy still running raises `PlatformError` of kind
        `already_exists` and starts nothing. Without it the platform picks the id.

        Returns the long-running operation's name.
        """
        ...

    def begin_undeploy(
        self, endpoint: Endpoint, deployed_model_id: str, traffic_split: TrafficSplit
    ) -> str:
        """Start undeploying a model that has 0 % in `traffic_split` (the split after).

        A model not on the endpoint raises `PlatformError` of kind `not_found`; one whose
        undeploy is still running, where the platform tells, `already_exists` (the sandbox
        does; what Vertex AI answers then is not verified: NOTES.md)."""
        ...

    def begin_mutate(
        self, endpoint: Endpoint, deployed_model_id: str, min_replicas: int, max_replicas: int
    ) -> str:
        """Start changing a deployed model's min / max replicas (Vertex AI's
        MutateDeployedModel); returns the long-running operation's name. Its traffic and
        version stay as they are.

        A model not on the endpoint raises `PlatformError` of kind `not_found`; counts the
        platform refuses (see `scale_limits`), `precondition`; one whose mutate is still
        running, where the platform tells, `already_exists` (the sandbox does)."""
        ...

    def scale_limits(self, endpoint: Endpoint) -> ScaleLimits:
        """What replica counts `begin_mutate` accepts for the endpoint's deployed models."""
        ...

    def operation(self, name: str) -> OperationStatus:
        """Poll a long-running operation (also after a restart, by its stored name)."""
        ...

    def set_traffic(self, endpoint: Endpoint, traffic_split: TrafficSplit) -> None:
        """Replace the traffic split; it must sum to 100."""
        ...

    def cancel_operation(self, name: str) -> None:
        """Ask the platform to stop a long-running operation, best effort: one that already
        finished stays as it ended; a cancelled one ends with an error and applies nothing
        more. Raises `PlatformError` when the platform refuses or cannot be reached."""
        ...

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        """Health of many endpoints at once: one query per metric, never one per endpoint."""
        ...

    def alerts(self, since: datetime) -> list[Alert]:
        """Alerts open now or opened since `since`."""
        ...

    def canary_window(
        self, endpoint: Endpoint, canary_id: str, stable_id: str, start: datetime, end: datetime
    ) -> CanaryWindow | None:
        """The canary's and the stable model's requests, errors and latency distribution over
        [start, end), per deployed model; None while the window is not complete in the
        platform's metrics yet (Cloud Monitoring's lag). A model without traffic in the window
        has zero requests and no latency buckets."""
        ...


ERASED = "[erased]"


class People(Protocol):
    def remember(self, slack_id: str, name: str, at: datetime) -> None:
        """Record the name Slack gave for this id (not once it has been erased)."""
        ...

    def name(self, slack_id: str) -> str | None:
        """The remembered name; `ERASED` once erased; None when never seen."""
        ...

    def erase(self, slack_id: str, at: datetime) -> bool:
        """Forget the name; False when the id was never seen."""
        ...


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str


# Slack's answers that no retry will change: the message did not arrive and will not
# until someone acts (invite the bot, fix the channel id in the config, unarchive it).
NOT_IN_CHANNEL = "not_in_channel"
CHANNEL_NOT_FOUND = "channel_not_found"
IS_ARCHIVED = "is_archived"


@dataclass(frozen=True)
class Delivery:
    """What became of one post: where it landed (`ref`), or why it did not (`error`, the
    channel's answer: `not_in_channel`, `channel_not_found`, `is_archived`, `ratelimited`
    once the retries are spent, …). A notifier that keeps no reference may deliver with
    `ref` None."""

    ref: MessageRef | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


class Notifier(Protocol):
    """Delivers the domain's posts: Slack messages, or lines in the console.

    Rate limits and server errors are the notifier's to retry; what it reports as not
    delivered stays not delivered. Neither method raises for a refused post."""

    def deliver(self, post: Post) -> Delivery:
        """Post (or update) and say whether it arrived. Callers that tell someone where a
        message is (a change's card) use this one, so they never say "posted" when it was
        not."""
        ...

    def post(self, post: Post) -> MessageRef | None:
        """`deliver(post).ref`: None when it did not arrive (logged by the notifier) or the
        notifier keeps no reference. For lines whose loss only the log needs to know."""
        ...

    def refresh_home(self, people: Sequence[str]) -> None:
        """What these people's Home tabs show has changed (a change of theirs, or one they
        may approve, moved): show it again. `people` are Slack user ids or user-group ids
        (`S…`: its members). Best effort and possibly later (it may return before the tabs
        are refreshed, and refreshes asked for close together may be done as one); never
        raises. A notifier without a Home tab (the console) does nothing."""
        ...


# Resolves a Slack user-group id to its members at decision time (the edge supplies it).
GroupResolver = Callable[[str], set[str]]


class AuditSink(Protocol):
    """A second copy of every row (Cloud Logging's `aiops-audit` in production)."""

    def write(self, event: AuditEvent) -> None: ...


class CanaryStore(Protocol):
    def create_watch(self, watch: Watch) -> Watch | None:
        """Insert; None when a watch for that deploy change exists already (assigns `id`)."""
        ...

    def get_watch(self, watch_id: int) -> Watch | None: ...

    def watch_for_change(self, change_id: str) -> Watch | None: ...

    def latest_watch(self, endpoint: str) -> Watch | None: ...

    def list_watches(self, states: frozenset[WatchState] | None = None) -> list[Watch]: ...

    def update_watch(self, watch_id: int, rev: int, **fields: Any) -> Watch | None:
        """Compare-and-set on `rev` (which it bumps); None when someone moved it first.

        A `state` the watch may not move to (`commands.canary.model.WATCH_TRANSITIONS`)
        raises `IllegalTransition` and writes nothing."""
        ...

    def add_check(self, check: Check) -> bool:
        """False when that (watch, seq) is recorded already."""
        ...

    def checks(self, watch_id: int, limit: int = 100) -> list[Check]:
        """Oldest first; the last `limit` checks."""
        ...


# --- what a platform may offer beyond the port (optional capabilities) ----------------


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    p95_latency_ms: float | None
    error_rate: float | None


@runtime_checkable
class MetricHistory(Protocol):
    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        """P95 latency and error rate per endpoint over time: one query per metric."""
        ...


@dataclass(frozen=True)
class DeployedModelCost:
    """One deployed model's use of yesterday (the last whole day in the config's zone):
    what the morning digest reads to find idle endpoints and models at 0 % traffic.

    `cost_usd` is an estimate, never billed: `replica_hours` × the price of one replica-hour
    of the endpoint's machine type and accelerators (`[vertex.prices]` on Vertex AI, the
    sandbox's own price there); None when the platform has no price for that machine.
    The billing export itself has no deployed model in its rows."""

    deployed_model_id: str
    requests: int  # predictions answered yesterday, every response code
    replica_hours: float  # the replicas it held, summed over the hours it held them
    cost_usd: float | None


@runtime_checkable
class ReplicaPricing(Protocol):
    def replica_hour_usd(self, endpoint: Endpoint) -> float | None:
        """USD one replica of the endpoint's machine (and accelerators) costs an hour, as
        the platform's cost estimate prices it; None when it has no price for it."""
        ...


@runtime_checkable
class CostHistory(Protocol):
    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        """Cost (USD) of each of the last `days` complete days in the config's zone,
        oldest first: the last value is yesterday's. One query for all endpoints."""
        ...

    def deployed_model_costs(
        self, endpoints: Sequence[Endpoint]
    ) -> dict[str, list[DeployedModelCost]]:
        """Endpoint slug → each model deployed on it at some time yesterday, with its
        requests, replica-hours and estimated cost over yesterday (see `DeployedModelCost`).
        An endpoint the platform has no figures for is absent. A constant number of queries
        (per project on Vertex AI), never one per endpoint; raises `PlatformError`."""
        ...


@dataclass(frozen=True)
class Chart:
    """A chart the edge draws (PNG) and attaches to the digest's thread: each breaching
    endpoint's P95 and error rate over [since, until], its time axis in `timezone` (the
    digest's)."""

    title: str
    filename: str
    since: datetime
    until: datetime
    series: dict[str, list[SeriesPoint]]
    p95_threshold_ms: float
    error_threshold: float
    timezone: tzinfo = UTC


@dataclass(frozen=True)
class CanaryChartPoint:
    """One check of a canary analysis: the share and both versions' figures over the
    evidence at that moment (None: no figure yet)."""

    at: datetime
    share: int
    canary_p95_ms: float | None
    stable_p95_ms: float | None
    canary_error_rate: float | None
    stable_error_rate: float | None


@dataclass(frozen=True)
class CanaryChart:
    """A canary's analysis so far, drawn by the edge (matplotlib, in the process that ran
    the check) and attached to the deploy's thread."""

    title: str
    filename: str
    canary_label: str
    stable_label: str
    points: tuple[CanaryChartPoint, ...]
    share_changes: tuple[tuple[datetime, int], ...]  # when the canary's share moved, to what
    p95_threshold_ms: float
    error_threshold: float


@runtime_checkable
class ChartAttacher(Protocol):
    def attach_chart(
        self, channel: str, thread_ts: str, chart: Chart | CanaryChart, comment: str
    ) -> bool: ...


@runtime_checkable
class FileAttacher(Protocol):
    def attach_file(
        self, channel: str, thread_ts: str, filename: str, content: str, title: str, comment: str
    ) -> bool:
        """Upload a text file (an incident's review draft in Markdown) into a thread, with
        `comment` as its message; False when it did not arrive (logged). Never raises."""
        ...
