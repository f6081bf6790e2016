"""Canary analysis: its settings, its records (a watch per canary, a check per analysis
window) and the store port that keeps them. `commands/canary.py` does the work;
`bot/store/canary_store.py` implements the port on SQLModel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from commands import config_schema
from commands.config import Config, ConfigError, Environment
from commands.durations import parse_duration


class Verdict(StrEnum):
    """The sequential judge's verdicts (`commands.canary.stats.Verdict`), as the watch keeps them."""

    REGRESSION = "regression"  # evidence the canary is worse than the tolerance allows
    NO_REGRESSION = "no_regression"  # evidence it is within the tolerance
    UNDECIDED = "undecided"  # neither yet: too little data, or too close to the tolerance

    @property
    def mark(self) -> str:
        return {
            Verdict.NO_REGRESSION: ":white_check_mark:",
            Verdict.REGRESSION: ":x:",
            Verdict.UNDECIDED: ":white_circle:",
        }[self]

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")


class WatchState(StrEnum):
    WATCHING = "watching"
    PAUSED = "paused"
    AWAITING_DECISION = "awaiting_decision"  # N breaches and the policy says ask
    ROLLING_BACK = "rolling_back"
    PROMOTED = "promoted"  # the canary serves alone
    ROLLED_BACK = "rolled_back"
    ENDED = "ended"  # the canary went away some other way

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES


ACTIVE_STATES = frozenset(
    {
        WatchState.WATCHING,
        WatchState.PAUSED,
        WatchState.AWAITING_DECISION,
        WatchState.ROLLING_BACK,
    }
)

TERMINAL_STATES = frozenset(WatchState) - ACTIVE_STATES

# The moves a watch may make: between its active states as people and the analysis
# decide, from any of them to an end; an ended watch never moves again.
WATCH_TRANSITIONS: dict[WatchState, frozenset[WatchState]] = {
    **{s: frozenset(WatchState) - {s} for s in ACTIVE_STATES},
    **{s: frozenset() for s in TERMINAL_STATES},
}


def can_move_watch(old: WatchState, new: WatchState) -> bool:
    """Staying in a state is not a move (a watch's other fields change under its `rev`)."""
    return old == new or new in WATCH_TRANSITIONS[old]


AUTO_ROLLBACK = ("yes", "page", "ask")


@dataclass(frozen=True)
class CanarySettings:
    """`[canary]`: how often and how strictly every canary is judged."""

    interval: timedelta = timedelta(minutes=5)
    # canary requests the evidence needs before a test speaks (the stable version: at least
    # 100, `MIN_STABLE`); the settings `bench/bench_canary.py` measured
    min_requests: int = 30
    consecutive_breaches: int = 3
    baseline_p95_ratio: float = 1.5  # canary P95 ≤ ratio × stable P95
    baseline_error_margin: float = 0.005  # canary error rate ≤ stable + margin
    max_undecided: timedelta = timedelta(hours=1)  # undecided longer than this: ask people
    confidence: float = 0.95  # "no regression" needs this confidence (1 − alpha_pass)


@dataclass(frozen=True)
class EnvCanaryPolicy:
    """Per environment: what the bot may do on its own."""

    auto_rollback: str  # yes | page | ask
    promote_steps: tuple[int, ...]
    promote_gate: bool  # /promote refuses a canary that has not passed (force=true overrides)


def check_steps(steps: list[int] | tuple[int, ...], key: str) -> tuple[int, ...]:
    """Shares in percent, strictly increasing, each 1–100."""
    out = tuple(steps)
    if not out or any(isinstance(s, bool) or not isinstance(s, int) for s in out):
        raise ConfigError(f"{key}: write whole percents, e.g. [10, 25, 50, 100]")
    if any(not 1 <= s <= 100 for s in out) or list(out) != sorted(set(out)):
        raise ConfigError(f"{key}: {list(out)} must rise strictly, each step 1–100")
    return out


def canary_settings(config: Config) -> CanarySettings:
    """`[canary]`, checked against the schema (ranges, the 1m floor of `interval`)."""
    table: config_schema.CanaryTable = config_schema.validate_table(
        config_schema.CanaryTable, config.raw.get("canary"), ("canary",), config.source
    )
    return CanarySettings(
        interval=parse_duration(table.interval),
        min_requests=table.min_requests,
        consecutive_breaches=table.consecutive_breaches,
        baseline_p95_ratio=float(table.baseline_p95_ratio),
        baseline_error_margin=float(table.baseline_error_margin),
        max_undecided=parse_duration(table.max_undecided),
        confidence=float(table.confidence),
    )


def env_policy(config: Config, env: Environment) -> EnvCanaryPolicy:
    raw = config.raw.get("environments", {}).get(env.name)
    prod = env.name == "prod"
    if raw is None:  # an environment built in code, not read from the file
        return EnvCanaryPolicy(
            "page" if prod else "yes", (10, 25, 50, 100), prod or env.needs_approval
        )
    table: config_schema.EnvironmentTable = config_schema.validate_table(
        config_schema.EnvironmentTable, raw, ("environments", env.name), config.source
    )
    gate = table.canary_promote_gate
    return EnvCanaryPolicy(
        auto_rollback=table.canary_auto_rollback or ("page" if prod else "yes"),
        promote_steps=tuple(table.promote_steps),
        promote_gate=gate if gate is not None else prod or env.needs_approval,
    )


def validate(config: Config) -> None:
    """Stop the bot at start on a bad `[canary]` table or per-environment policy."""
    canary_settings(config)
    for env in config.environments.values():
        env_policy(config, env)


@dataclass
class Figures:
    p95_latency_ms: float | None
    error_rate: float | None
    requests: int

    def text(self) -> str:
        p95 = f"{self.p95_latency_ms:.0f} ms" if self.p95_latency_ms is not None else "n/a"
        err = f"{self.error_rate:.2%}" if self.error_rate is not None else "n/a"
        return f"P95 {p95}, errors {err}, {self.requests:,} req"


@dataclass
class Watch:
    """One canary under analysis: from its deploy until it serves alone or is gone."""

    id: int
    endpoint: str
    environment: str
    change_id: str  # the deploy that put the canary there; checks go to its thread
    canary_id: str
    stable_id: str
    canary_version: str
    stable_version: str
    state: WatchState
    started_at: datetime
    next_check_at: datetime
    checks: int = 0
    consecutive_breaches: int = 0
    last_verdict: Verdict | None = None
    steps: list[int] = field(default_factory=list)  # the step plan, empty without one
    step_index: int = -1  # the last step reached
    plan_change_id: str | None = None
    action: str | None = None  # step | rollback | promote: a change the bot is seeing through
    action_key: str | None = None  # idempotency key, stored in the change's extra
    action_change_id: str | None = None
    decision_channel: str | None = None
    decision_ts: str | None = None
    note: str | None = None
    # The sequential judge's state (`commands.canary.stats.Evidence.to_json()` plus the share it
    # was gathered at): only windows after `share_since` count, so a step is judged on
    # traffic at its own share.
    evidence: dict[str, Any] | None = None
    share_since: datetime | None = None
    rev: int = 0
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"CAN-{self.id}"

    @property
    def versions(self) -> str:
        """`1.3.0-rc1 vs 1.2.0`; a canary first seen serving alone had no stable version to
        compare with, and says so rather than an empty "vs"."""
        if self.stable_version:
            return f"{self.canary_version} vs {self.stable_version}"
        return f"{self.canary_version} (no stable version beside it)"


@dataclass
class Check:
    """One look at the evidence: the windows it added, the canary against stable over all
    windows at this share, the verdict, and the regressions in a row after it."""

    watch_id: int
    seq: int
    at: datetime
    window_seconds: int
    source: str  # `scheduler`, or the Slack id of whoever ran it
    canary_share: int
    canary: Figures
    stable: Figures
    verdict: Verdict
    reasons: list[str]
    consecutive_breaches: int
    windows: int = 0  # windows in the evidence after this check (at this share)
    counted: int = 0  # of which counted by this check
    id: int | None = None
