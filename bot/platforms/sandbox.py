"""The embedded sandbox platform: endpoints, a model registry, traffic splits,
long-running operations and plausible metrics, kept in the bot's own database.

It behaves like Vertex AI where the domain can tell: operations take a while and are
polled by name (also after a restart), splits must sum to 100, and "0" in a deploy's
split stands for the model being deployed. Versions marked faulty in the config fail to
deploy (`deploy_fails`) or serve badly once they take traffic (`canary_breach`).

The canary analysis reads `canary_window`: per-request draws from `sandbox_traffic.py`,
seeded by endpoint, deployed models and the window's place in the canary's life, so a window
reads the same however often it is asked for (and a console walkthrough every time). A `canary_breach` version is the stable behaviour with every latency × 5
and the error rate × 11; healthy versions differ only by a small per-version P95 offset.
Traffic is flat per environment (`_RATE_PER_HOUR`: staging 5,000 requests an hour) and
split by the endpoint's current traffic split.

`SandboxClock` is the console's clock: wall time plus an offset kept in the database, which
`/aiops canary` in the console moves one `[canary] interval` ahead (the console has no
scheduler, so that is how its canary windows close).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, update
from sqlmodel import Session, SQLModel, col, select

from bot.store.sandbox_tables import (
    SandboxClockRow,
    SandboxDeployedModelRow,
    SandboxEndpointRow,
    SandboxOperationRow,
)
from commands.canary.stats import CanaryWindow
from commands.config import Config, Endpoint
from commands.model import (
    DeployedModel,
    EndpointHealth,
    EndpointState,
    InvalidSplit,
    ModelHealth,
    ModelVersion,
    TrafficSplit,
    change_deployed_model_id,
    check_split,
)
from commands.ports import (
    Alert,
    DeployedModelCost,
    OperationStatus,
    PlatformError,
    ScaleLimits,
    UnknownVersion,
)

from .sandbox_history import REPLICA_HOUR_USD, TRAFFIC_KIND  # one price for every figure
from .sandbox_registry import registered_versions

if TYPE_CHECKING:
    from commands.ports import SeriesPoint

    from .sandbox_traffic import Traffic

Clock = Callable[[], datetime]

# Requests per second an endpoint serves, by environment, before time-of-day shaping.
_RPS = {"prod": 24.0, "staging": 2.5, "dev": 0.5}
# Requests an hour the canary analysis sees per environment (flat, no time-of-day shape).
_RATE_PER_HOUR = {"prod": 40_000.0, "staging": 5_000.0, "dev": 500.0}
# How a `canary_breach` version serves compared with a healthy one.
_BREACH_P95_FACTOR = 5.0
_BREACH_ERROR_FACTOR = 11.0
# The configured initial version stands for what served before the bot was installed: its
# metric history (the digest's chart) reaches back this far, a deployed model's only to
# when it was deployed.
_SEEDED_BEFORE = timedelta(days=30)
# A cancelled operation's error, as Vertex AI reports one (google.rpc.Code CANCELLED).
CANCELLED = "the operation was cancelled"
# The most replicas a deployed model may have (Vertex AI's own bound on a request's max is
# not published; the config's schema caps `max_replicas` at 1000 too).
MAX_REPLICAS = 1000


def traffic_shape(local_hours: float) -> float:
    """The time-of-day shape of the sandbox's traffic (× the environment's `_RPS`):
    quietest at night, busiest at 13:00 local."""
    return 0.35 + 0.65 * max(0.0, 1 - abs(local_hours - 13) / 9)


def _insert_ignoring_duplicates(engine: Engine) -> Callable[[type[SQLModel]], Any]:
    """`INSERT … ON CONFLICT DO NOTHING` on either dialect, as a function of the table."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return lambda table: pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return lambda table: sqlite_insert(table).on_conflict_do_nothing()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class SandboxPlatform:
    name = "sandbox"

    def __init__(self, engine: Engine, config: Config, clock: Clock | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.calls = 0  # platform calls made, for the digest benchmark
        self.seed()

    # registry & state ----------------------------------------------------------------

    def seed(self) -> None:
        """Create every configured endpoint serving its model's initial version at 100 %.

        Idempotent across processes: replicas starting together on a new database each
        insert what is missing with ON CONFLICT DO NOTHING, and only the one whose
        endpoint row went in adds that endpoint's first deployed model."""
        with Session(self.engine) as session:
            existing = set(session.exec(select(SandboxEndpointRow.slug)).all())
            missing = [slug for slug in self.config.endpoints if slug not in existing]
            if not missing:
                return  # a warm start writes nothing
            insert = _insert_ignoring_duplicates(self.engine)
            for slug in missing:
                ep = self.config.endpoints[slug]
                model = self.config.models[ep.model]
                dm_id = self._dm_id(slug, 1)
                added = session.execute(
                    insert(SandboxEndpointRow)
                    .values(slug=slug, traffic={dm_id: 100}, next_id=2)
                    .returning(SandboxEndpointRow.slug)  # no row back: it was there
                ).first()
                if added is None:
                    continue  # another process seeded it first
                session.execute(
                    insert(SandboxDeployedModelRow).values(
                        id=dm_id,
                        endpoint=slug,
                        model=model.name,
                        version=model.initial,
                        replicas=ep.min_replicas,
                        deployed_at=self.clock() - _SEEDED_BEFORE,
                    )
                )
            session.commit()

    @staticmethod
    def _dm_id(slug: str, n: int) -> str:
        # the whole CRC: a 4-digit prefix collided once a config had ~100 endpoints
        return f"{zlib.crc32(slug.encode()):010d}{n:03d}"

    def endpoint_state(self, endpoint: Endpoint) -> EndpointState:
        self.calls += 1
        self._settle(endpoint.slug)
        with Session(self.engine) as session:
            row = session.get(SandboxEndpointRow, endpoint.slug)
            if row is None:
                raise PlatformError(f"endpoint `{endpoint.slug}` does not exist", kind="not_found")
            models = session.exec(
                select(SandboxDeployedModelRow)
                .where(SandboxDeployedModelRow.endpoint == endpoint.slug)
                .order_by(col(SandboxDeployedModelRow.deployed_at))
            ).all()
            ceilings = self._max_replicas(session, endpoint.slug)
            return EndpointState(
                slug=endpoint.slug,
                deployed=tuple(
                    DeployedModel(
                        m.id,
                        ModelVersion(m.model, m.version),
                        m.replicas,
                        ceilings.get(m.id, endpoint.max_replicas),
                    )
                    for m in models
                ),
                traffic=dict(row.traffic),
            )

    @staticmethod
    def _max_replicas(session: Session, slug: str) -> dict[str, int]:
        """Each deployed model's max replicas as its last finished scale set it (the row
        keeps the min as `replicas`; the max lives in the scale's operation, so the
        sandbox's tables need no new column). Models never scaled: the endpoint's config."""
        scaled = session.exec(
            select(SandboxOperationRow)
            .where(
                SandboxOperationRow.endpoint == slug,
                SandboxOperationRow.kind == "mutate",
                col(SandboxOperationRow.done).is_(True),
                col(SandboxOperationRow.error).is_(None),
            )
            .order_by(col(SandboxOperationRow.finishes_at))
        ).all()
        return {
            str(op.payload["deployed_model_id"]): int(op.payload["max_replicas"]) for op in scaled
        }

    def model_versions(self, model: str) -> list[str]:
        """The config's versions, then those the sandbox's training runs registered."""
        self.calls += 1
        found = self.config.models.get(model)
        if found is None:
            return []
        trained = [v for v, _ in registered_versions(self.engine, model) if v not in found.versions]
        return [*found.versions, *trained]

    def _require_version(self, version: ModelVersion) -> None:
        known = self.model_versions(version.model)
        if version.version not in known:
            raise UnknownVersion(version, known)

    # operations ----------------------------------------------------------------------

    def _operation_name(self, endpoint: Endpoint, kind: str) -> str:
        env = self.config.environment_of(endpoint)
        suffix = random.getrandbits(48)
        return f"projects/{env.project}/locations/{env.region}/operations/{kind}-{suffix}"

    def _start(
        self,
        endpoint: Endpoint,
        kind: str,
        payload: dict[str, object],
        deployed_model_id: str | None = None,
    ) -> str:
        now = self.clock()
        name = self._operation_name(endpoint, kind)
        with Session(self.engine) as session:
            if deployed_model_id is not None:
                # Checked in the transaction that inserts, one at a time per endpoint (its
                # row locked on PostgreSQL; SQLite's BEGIN IMMEDIATE does the same), as
                # Vertex refuses a second deploy of one id, and a second undeploy of a
                # model whose undeploy is running.
                session.exec(
                    select(SandboxEndpointRow)
                    .where(SandboxEndpointRow.slug == endpoint.slug)
                    .with_for_update()
                ).first()
                if kind == "deploy":
                    self._refuse_taken(session, endpoint, deployed_model_id)
                else:
                    self._refuse_running(session, endpoint, kind, deployed_model_id)
            session.add(
                SandboxOperationRow(
                    name=name,
                    kind=kind,
                    endpoint=endpoint.slug,
                    started_at=now,
                    finishes_at=now + timedelta(seconds=self.config.sandbox.operation_seconds),
                    payload=payload,
                )
            )
            session.commit()
        return name

    @staticmethod
    def _refuse_taken(session: Session, endpoint: Endpoint, deployed_model_id: str) -> None:
        deployed = session.get(SandboxDeployedModelRow, deployed_model_id)
        running = session.exec(
            select(SandboxOperationRow).where(
                SandboxOperationRow.endpoint == endpoint.slug,
                SandboxOperationRow.kind == "deploy",
                col(SandboxOperationRow.done).is_(False),
            )
        ).all()
        if deployed is not None or any(
            op.payload.get("deployed_model_id") == deployed_model_id for op in running
        ):
            raise PlatformError(
                f"deployed model {deployed_model_id} already exists on `{endpoint.slug}`"
                " (deployed, or a deploy of it is running)",
                kind="already_exists",
            )

    @staticmethod
    def _refuse_running(
        session: Session, endpoint: Endpoint, kind: str, deployed_model_id: str
    ) -> None:
        """A second undeploy (or scale) of a model while one is running: refused."""
        running = session.exec(
            select(SandboxOperationRow).where(
                SandboxOperationRow.endpoint == endpoint.slug,
                SandboxOperationRow.kind == kind,
                col(SandboxOperationRow.done).is_(False),
            )
        ).all()
        if any(op.payload.get("deployed_model_id") == deployed_model_id for op in running):
            doing = "undeployed" if kind == "undeploy" else "scaled"
            raise PlatformError(
                f"deployed model {deployed_model_id} on `{endpoint.slug}` is being {doing} already",
                kind="already_exists",
            )

    def begin_deploy(
        self,
        endpoint: Endpoint,
        version: ModelVersion,
        traffic_split: TrafficSplit,
        change_id: str | None = None,
    ) -> str:
        self.calls += 1
        self._require_version(version)
        state = self.endpoint_state(endpoint)
        try:
            check_split(traffic_split)
        except InvalidSplit as exc:
            raise PlatformError(str(exc), kind="precondition") from exc
        unknown = set(traffic_split) - {d.id for d in state.deployed} - {"0"}
        if unknown:
            raise PlatformError(
                f"traffic split names deployed models {sorted(unknown)} that are not on"
                f" `{endpoint.slug}`",
                kind="precondition",
            )
        payload: dict[str, object] = {
            "model": version.model,
            "version": version.version,
            "split": traffic_split,
        }
        dm_id = change_deployed_model_id(change_id) if change_id else None
        if dm_id is not None:
            payload |= {"deployed_model_id": dm_id, "change_id": change_id}
        return self._start(endpoint, "deploy", payload, dm_id)

    def begin_undeploy(
        self, endpoint: Endpoint, deployed_model_id: str, traffic_split: TrafficSplit
    ) -> str:
        self.calls += 1
        state = self.endpoint_state(endpoint)
        if state.model(deployed_model_id) is None:
            raise PlatformError(
                f"deployed model {deployed_model_id} is not on `{endpoint.slug}`", kind="not_found"
            )
        if traffic_split.get(deployed_model_id, 0):
            raise PlatformError(
                f"deployed model {deployed_model_id} still has traffic; move it first",
                kind="precondition",
            )
        check_split(traffic_split)
        return self._start(
            endpoint,
            "undeploy",
            {"deployed_model_id": deployed_model_id, "split": traffic_split},
            deployed_model_id,
        )

    def scale_limits(self, endpoint: Endpoint) -> ScaleLimits:
        """Min 0 only on an endpoint whose config says `scale_to_zero = true` (standing for
        a Vertex AI deployment made with its Scale To Zero preview)."""
        if endpoint.scale_to_zero:
            return ScaleLimits(0, MAX_REPLICAS)
        return ScaleLimits(
            1,
            MAX_REPLICAS,
            zero_refused="its deployed models keep at least one replica (as on Vertex AI,"
            " where only deployments made with the Scale To Zero preview may go to 0); its"
            f" config does not say `scale_to_zero = true` ([endpoints.{endpoint.slug}])",
        )

    def begin_mutate(
        self, endpoint: Endpoint, deployed_model_id: str, min_replicas: int, max_replicas: int
    ) -> str:
        self.calls += 1
        state = self.endpoint_state(endpoint)
        if state.model(deployed_model_id) is None:
            raise PlatformError(
                f"deployed model {deployed_model_id} is not on `{endpoint.slug}`", kind="not_found"
            )
        limits = self.scale_limits(endpoint)
        if not limits.lowest_min <= min_replicas <= max_replicas <= limits.highest_max:
            raise PlatformError(
                f"replicas min {min_replicas} · max {max_replicas} are not allowed on"
                f" `{endpoint.slug}`" + (f": {limits.zero_refused}" if min_replicas == 0 else ""),
                kind="precondition",
            )
        return self._start(
            endpoint,
            "mutate",
            {
                "deployed_model_id": deployed_model_id,
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
            },
            deployed_model_id,
        )

    def replica_hour_usd(self, endpoint: Endpoint) -> float | None:
        """The sandbox's one price for a replica-hour (its health's cost estimate)."""
        return REPLICA_HOUR_USD

    def operation(self, name: str) -> OperationStatus:
        self.calls += 1
        now = self.clock()
        with Session(self.engine) as session:
            op = session.get(SandboxOperationRow, name)
            if op is None:
                raise PlatformError(f"operation `{name}` does not exist", kind="not_found")
            if not op.done and now >= _utc(op.finishes_at):
                self._finish(session, op)
                session.refresh(op)
            span = (_utc(op.finishes_at) - _utc(op.started_at)).total_seconds() or 1.0
            progress = (
                100
                if op.done
                else int(min(99, 100 * (now - _utc(op.started_at)).total_seconds() / span))
            )
            return OperationStatus(
                name=name,
                done=op.done,
                progress=max(progress, 0),
                error=op.error,
                deployed_model_id=op.deployed_model_id,
            )

    def _settle(self, slug: str) -> None:
        """Apply the endpoint's operations whose time has come, polled or not: as on
        Vertex AI, a deploy lands whether or not the process that started it still
        watches (it may have died)."""
        now = self.clock().astimezone(UTC)  # stored in UTC; SQLite compares the text
        with Session(self.engine) as session:
            due = session.exec(
                select(SandboxOperationRow.name).where(
                    SandboxOperationRow.endpoint == slug,
                    col(SandboxOperationRow.done).is_(False),
                    col(SandboxOperationRow.finishes_at) <= now,
                )
            ).all()
        for name in due:
            with Session(self.engine) as session:
                op = session.get(SandboxOperationRow, name)
                if op is not None and not op.done:
                    self._finish(session, op)

    def _finish(self, session: Session, op: SandboxOperationRow) -> None:
        """Apply an operation's effect exactly once (a compare-and-set on `done`)."""
        error: str | None = None
        dm_id: str | None = None
        endpoint = session.get(SandboxEndpointRow, op.endpoint)
        assert endpoint is not None
        split = dict(op.payload.get("split", {}))
        if op.kind == "deploy":
            model, version = str(op.payload["model"]), str(op.payload["version"])
            faulty = self.config.models.get(model)
            if faulty and faulty.faulty.get(version) == "deploy_fails":
                error = (
                    f"deploying {model}@{version} failed: the model server did not become"
                    " healthy (container exited during start-up)"
                )
            else:
                chosen = op.payload.get("deployed_model_id")
                dm_id = str(chosen) if chosen else self._dm_id(op.endpoint, endpoint.next_id)
        # What the effect replaces, kept on the operation for the figures of the days
        # before it (`sandbox_history`): an undeployed model's row goes, a scale's min moves.
        kept: dict[str, object] = {"applied_at": self.clock().astimezone(UTC).isoformat()}
        if op.kind in ("undeploy", "mutate"):
            held = session.get(SandboxDeployedModelRow, str(op.payload["deployed_model_id"]))
            if held is not None and op.kind == "undeploy":
                kept["removed"] = {
                    "model": held.model,
                    "version": held.version,
                    "replicas": held.replicas,
                    "deployed_at": _utc(held.deployed_at).isoformat(),
                }
            elif held is not None:
                kept["replicas_before"] = held.replicas
        claimed = session.execute(
            update(SandboxOperationRow)
            .where(
                col(SandboxOperationRow.name) == op.name, col(SandboxOperationRow.done).is_(False)
            )
            .values(done=True, error=error, deployed_model_id=dm_id, payload=op.payload | kept)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return
        if op.kind == "deploy" and dm_id is not None:
            ep_cfg = self.config.endpoints.get(op.endpoint)
            session.add(
                SandboxDeployedModelRow(
                    id=dm_id,
                    endpoint=op.endpoint,
                    model=str(op.payload["model"]),
                    version=str(op.payload["version"]),
                    replicas=ep_cfg.min_replicas if ep_cfg else 1,
                    deployed_at=self.clock(),
                )
            )
            endpoint.next_id += 1
            after = {(dm_id if k == "0" else k): v for k, v in split.items() if v}
            self._traffic_moved(session, endpoint, after)
        elif op.kind == "undeploy":
            dm = session.get(SandboxDeployedModelRow, str(op.payload["deployed_model_id"]))
            if dm is not None:
                session.delete(dm)
            self._traffic_moved(session, endpoint, {k: v for k, v in split.items() if v})
        elif op.kind == "mutate":
            dm = session.get(SandboxDeployedModelRow, str(op.payload["deployed_model_id"]))
            if dm is not None:
                dm.replicas = int(op.payload["min_replicas"])
                session.add(dm)
        session.commit()

    def cancel_operation(self, name: str) -> None:
        """Mark a running operation cancelled (it applies nothing); a finished one stays."""
        self.calls += 1
        with Session(self.engine) as session:
            if session.get(SandboxOperationRow, name) is None:
                raise PlatformError(f"operation `{name}` does not exist", kind="not_found")
            session.execute(
                update(SandboxOperationRow)
                .where(
                    col(SandboxOperationRow.name) == name,
                    col(SandboxOperationRow.done).is_(False),
                )
                .values(done=True, error=CANCELLED)
            )
            session.commit()

    def set_traffic(self, endpoint: Endpoint, traffic_split: TrafficSplit) -> None:
        self.calls += 1
        state = self.endpoint_state(endpoint)
        try:
            split = check_split(traffic_split)
        except InvalidSplit as exc:
            raise PlatformError(str(exc), kind="precondition") from exc
        unknown = set(split) - {d.id for d in state.deployed}
        if unknown:
            raise PlatformError(
                f"traffic split names deployed models {sorted(unknown)} that are not on"
                f" `{endpoint.slug}`",
                kind="precondition",
            )
        with Session(self.engine) as session:
            row = session.get(SandboxEndpointRow, endpoint.slug)
            assert row is not None
            self._traffic_moved(session, row, split)
            session.commit()

    def _traffic_moved(
        self, session: Session, endpoint: SandboxEndpointRow, after: dict[str, int]
    ) -> None:
        """Set an endpoint's split, and record the one it replaces with the time (a done
        `traffic` operation): yesterday's figures are read from the split of yesterday."""
        before = dict(endpoint.traffic)
        endpoint.traffic = after
        session.add(endpoint)
        if before == after:
            return
        now = self.clock()
        session.add(
            SandboxOperationRow(
                name=f"traffic-{random.getrandbits(64):016x}",
                kind=TRAFFIC_KIND,
                endpoint=endpoint.slug,
                started_at=now,
                finishes_at=now,
                payload={"before": before, "after": after},
                done=True,
            )
        )

    def history_rows(self, slugs: list[str], since: datetime) -> list[SandboxOperationRow]:
        """The endpoints' finished traffic moves, undeploys and scales since about `since`
        (a day before it: an operation's effect lands when it is next looked at, after its
        end), oldest first: what `sandbox_history` walks back from now to the days before."""
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(SandboxOperationRow)
                    .where(
                        col(SandboxOperationRow.endpoint).in_(slugs),
                        col(SandboxOperationRow.kind).in_((TRAFFIC_KIND, "undeploy", "mutate")),
                        col(SandboxOperationRow.done).is_(True),
                        col(SandboxOperationRow.error).is_(None),
                        col(SandboxOperationRow.finishes_at)
                        > (since - timedelta(days=1)).astimezone(UTC),
                    )
                    .order_by(col(SandboxOperationRow.finishes_at))
                ).all()
            )

    # metrics -------------------------------------------------------------------------

    def _model_figures(
        self, slug: str, version: ModelVersion, bucket: int
    ) -> tuple[float, float, float]:
        """P95 ms, error rate and drift for one model version in one time bucket."""
        rng = random.Random(f"{slug}|{version}|{bucket}")
        model = self.config.models.get(version.model)
        if model and model.faulty.get(version.version) == "canary_breach":
            return (
                3100 + rng.uniform(0, 900),
                0.035 + rng.uniform(0, 0.03),
                0.14 + rng.uniform(0, 0.08),
            )
        # Healthy versions stay within the canary analysis' baseline ratio of each other
        # (worst case 950 / 650 ms < 1.5×), so only a faulty version breaches it.
        base = 700 + (zlib.crc32(version.version.encode()) % 150)
        return (
            base + rng.uniform(-50, 100),
            0.001 + rng.uniform(0, 0.004),
            0.02 + rng.uniform(0, 0.05),
        )

    def rows_for(
        self, slugs: list[str]
    ) -> tuple[dict[str, SandboxEndpointRow], dict[str, list[SandboxDeployedModelRow]]]:
        """The endpoints' rows by slug and their deployed models, in two queries."""
        with Session(self.engine) as session:
            rows = {
                r.slug: r
                for r in session.exec(
                    select(SandboxEndpointRow).where(col(SandboxEndpointRow.slug).in_(slugs))
                ).all()
            }
            models: dict[str, list[SandboxDeployedModelRow]] = {}
            for m in session.exec(
                select(SandboxDeployedModelRow).where(
                    col(SandboxDeployedModelRow.endpoint).in_(slugs)
                )
            ).all():
                models.setdefault(m.endpoint, []).append(m)
        return rows, models

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        self.calls += 1  # one "query" for every endpoint, as the real platform does per metric
        now = self.clock()
        bucket = int(now.timestamp() // 300)
        rows, models = self.rows_for([e.slug for e in endpoints])
        local = now.astimezone(self.config.timezone)
        hours_today = local.hour + local.minute / 60
        shape = traffic_shape(local.hour + local.minute / 60)
        out: dict[str, EndpointHealth] = {}
        for ep in endpoints:
            row = rows.get(ep.slug)
            if row is None:
                continue
            rps = _RPS.get(ep.environment, 1.0) * shape
            total = int(rps * window.total_seconds())
            by_model: dict[str, ModelHealth] = {}
            p95 = 0.0
            err = 0.0
            drift = 0.0
            replicas = 0
            for m in models.get(ep.slug, []):
                share = row.traffic.get(m.id, 0)
                replicas += m.replicas
                mp95, merr, mdrift = self._model_figures(
                    ep.slug, ModelVersion(m.model, m.version), bucket
                )
                count = int(total * share / 100)
                by_model[m.id] = ModelHealth(
                    mp95 if count else None, merr if count else None, count
                )
                if share >= 5:
                    p95 = max(p95, mp95)
                err += merr * share / 100
                drift = max(drift, mdrift) if share else drift
            rng = random.Random(f"{ep.slug}|{bucket}|capacity")
            out[ep.slug] = EndpointHealth(
                slug=ep.slug,
                p95_latency_ms=round(p95, 1) if total else None,
                error_rate=round(err, 5) if total else None,
                request_count=total,
                replicas=replicas,
                max_replicas=ep.max_replicas * max(1, len(models.get(ep.slug, []))),
                duty_cycle=round(0.3 + 0.45 * shape + rng.uniform(-0.05, 0.05), 3),
                drift=round(drift, 4),
                cost_today_usd=round(replicas * REPLICA_HOUR_USD * hours_today, 2),
                cost_is_estimate=True,
                by_model=by_model,
            )
        return out

    # the canary analysis' windows -----------------------------------------------------

    def _traffic(self, version: ModelVersion) -> Traffic:
        from .sandbox_traffic import Traffic

        healthy = Traffic(p95_ms=700.0 + zlib.crc32(version.version.encode()) % 150)
        model = self.config.models.get(version.model)
        if model and model.faulty.get(version.version) == "canary_breach":
            return replace(
                healthy,
                p95_ms=healthy.p95_ms * _BREACH_P95_FACTOR,
                error_rate=min(1.0, healthy.error_rate * _BREACH_ERROR_FACTOR),
            )
        return healthy

    def canary_window(
        self, endpoint: Endpoint, canary_id: str, stable_id: str, start: datetime, end: datetime
    ) -> CanaryWindow | None:
        """Seeded draws for [start, end) at the endpoint's current split; None until `end`
        has passed on the sandbox's clock."""
        import numpy as np

        from .sandbox_traffic import draw_sample

        self.calls += 1
        if end > self.clock():
            return None
        state = self.endpoint_state(endpoint)
        canary, stable = state.model(canary_id), state.model(stable_id)
        if canary is None or stable is None:
            return None
        with Session(self.engine) as session:
            row = session.get(SandboxDeployedModelRow, canary_id)
            deployed_at = _utc(row.deployed_at) if row else _utc(start)
        # seeded by the window's place in the canary's life (whole minutes since it was
        # deployed), not by wall time: a console walkthrough draws the same traffic every run
        age = round((_utc(start) - deployed_at).total_seconds() / 60)
        length = round((end - start).total_seconds())
        seed = zlib.crc32(f"{endpoint.slug}|{canary_id}|{stable_id}|{age}|{length}".encode())
        rng = np.random.default_rng(seed)
        rate = _RATE_PER_HOUR.get(endpoint.environment, 1_000.0)
        total = int(rng.poisson(rate * (end - start).total_seconds() / 3600))
        share = state.traffic.get(canary_id, 0)
        rest = share + state.traffic.get(stable_id, 0)
        n_canary = int(rng.binomial(total, share / 100))
        n_stable = int(rng.binomial(total - n_canary, (rest - share) / max(1, 100 - share)))
        return CanaryWindow(
            canary=draw_sample(rng, self._traffic(canary.version), n_canary, start, end),
            stable=draw_sample(rng, self._traffic(stable.version), n_stable, start, end),
        )

    # history for the digests (bot/platforms/sandbox_history.py) -------------------------

    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        from .sandbox_history import health_series

        return health_series(self, endpoints, since, until, step)

    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        from .sandbox_history import daily_costs

        return daily_costs(self, endpoints, days)

    def deployed_model_costs(
        self, endpoints: Sequence[Endpoint]
    ) -> dict[str, list[DeployedModelCost]]:
        from .sandbox_history import deployed_model_costs

        return deployed_model_costs(self, endpoints, _RPS, traffic_shape)

    def alerts(self, since: datetime) -> list[Alert]:
        """Alerts open now, derived from the thresholds the sandbox's metrics breach."""
        self.calls += 1
        th = self.config.thresholds
        now = self.clock()
        found: list[Alert] = []
        for slug, h in self.health(list(self.config.endpoints.values())).items():
            opened = now - timedelta(minutes=20)
            if h.p95_latency_ms and h.p95_latency_ms > th.p95_latency_ms:
                found.append(
                    Alert(
                        "P95 latency > 2 s",
                        "P1",
                        "open",
                        opened,
                        None,
                        slug,
                        f"P95 {h.p95_latency_ms:.0f} ms",
                    )
                )
            if h.error_rate and h.error_rate > th.error_rate:
                found.append(
                    Alert(
                        "Error rate > 1 %",
                        "P1",
                        "open",
                        opened,
                        None,
                        slug,
                        f"errors {h.error_rate:.2%}",
                    )
                )
            if h.drift and h.drift > th.drift:
                found.append(
                    Alert("Drift > 0.1", "P3", "open", opened, None, slug, f"drift {h.drift:.3f}")
                )
        return found


class SandboxClock:
    """The console's clock on the sandbox: wall time plus an offset stored in the database
    (`sandbox_clock`), moved forward by `advance` and never back."""

    NAME = "console"

    def __init__(self, engine: Engine, wall: Clock | None = None) -> None:
        self.engine = engine
        self.wall: Clock = wall or (lambda: datetime.now(UTC))
        with Session(engine) as session:
            row = session.get(SandboxClockRow, self.NAME)
            self.offset = timedelta(seconds=row.offset_seconds if row else 0.0)

    def __call__(self) -> datetime:
        return self.wall() + self.offset

    def advance(self, by: timedelta) -> datetime:
        with Session(self.engine) as session:
            row = session.get(SandboxClockRow, self.NAME) or SandboxClockRow(name=self.NAME)
            offset = max(self.offset, timedelta(seconds=row.offset_seconds)) + by
            row.offset_seconds = offset.total_seconds()
            session.add(row)
            session.commit()
        self.offset = offset
        return self()
