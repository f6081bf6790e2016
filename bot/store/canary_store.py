"""`commands.ports.CanaryStore` on SQLModel: watches move by compare-and-set."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from commands.canary.model import Check, Figures, Verdict, Watch, WatchState, can_move_watch
from commands.model import IllegalTransition
from commands.text import outbound

from .canary_tables import CanaryCheckRow, CanaryWatchRow
from .sql_store import compare_and_set, utc

_WATCH_FIELDS = set(CanaryWatchRow.model_fields) - {"id", "rev"}


def _to_watch(row: CanaryWatchRow) -> Watch:
    assert row.id is not None
    return Watch(
        id=row.id,
        endpoint=row.endpoint,
        environment=row.environment,
        change_id=row.change_id,
        canary_id=row.canary_id,
        stable_id=row.stable_id,
        canary_version=row.canary_version,
        stable_version=row.stable_version,
        state=WatchState(row.state),
        started_at=utc(row.started_at) or row.started_at,
        next_check_at=utc(row.next_check_at) or row.next_check_at,
        checks=row.checks,
        consecutive_breaches=row.consecutive_breaches,
        last_verdict=Verdict(row.last_verdict) if row.last_verdict else None,
        steps=list(row.steps),
        step_index=row.step_index,
        plan_change_id=row.plan_change_id,
        action=row.action,
        action_key=row.action_key,
        action_change_id=row.action_change_id,
        decision_channel=row.decision_channel,
        decision_ts=row.decision_ts,
        note=row.note,
        evidence=dict(row.evidence) if row.evidence is not None else None,
        share_since=utc(row.share_since),
        rev=row.rev,
        updated_at=utc(row.updated_at),
    )


def _figures(raw: dict[str, Any]) -> Figures:
    return Figures(raw.get("p95_latency_ms"), raw.get("error_rate"), int(raw.get("requests", 0)))


def _to_check(row: CanaryCheckRow) -> Check:
    return Check(
        id=row.id,
        watch_id=row.watch_id,
        seq=row.seq,
        at=utc(row.at) or row.at,
        window_seconds=row.window_seconds,
        source=row.source,
        canary_share=row.canary_share,
        canary=_figures(row.figures.get("canary", {})),
        stable=_figures(row.figures.get("stable", {})),
        verdict=Verdict(row.verdict),
        reasons=list(row.reasons),
        consecutive_breaches=row.consecutive_breaches,
        windows=int(row.figures.get("windows", 0)),
        counted=int(row.figures.get("counted", 0)),
    )


def _db(value: Any) -> Any:
    return str(value) if isinstance(value, Verdict | WatchState) else value


def _row_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Column values: enums as text, the free-text `note` through `outbound` (PII masked,
    invisible characters visible), as every stored free text is."""
    return {
        k: outbound(v) if k == "note" and isinstance(v, str) else _db(v) for k, v in fields.items()
    }


class SqlCanaryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_watch(self, watch: Watch) -> Watch | None:
        values = _row_values({k: v for k, v in asdict(watch).items() if k in _WATCH_FIELDS})
        row = CanaryWatchRow(**values)
        with Session(self.engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # another replica (or tick) saw this deploy first
                session.rollback()
                return None
            session.refresh(row)
            return _to_watch(row)

    def get_watch(self, watch_id: int) -> Watch | None:
        with Session(self.engine) as session:
            row = session.get(CanaryWatchRow, watch_id)
            return _to_watch(row) if row else None

    def watch_for_change(self, change_id: str) -> Watch | None:
        with Session(self.engine) as session:
            row = session.exec(
                select(CanaryWatchRow).where(CanaryWatchRow.change_id == change_id)
            ).first()
            return _to_watch(row) if row else None

    def latest_watch(self, endpoint: str) -> Watch | None:
        with Session(self.engine) as session:
            row = session.exec(
                select(CanaryWatchRow)
                .where(CanaryWatchRow.endpoint == endpoint)
                .order_by(col(CanaryWatchRow.id).desc())
                .limit(1)
            ).first()
            return _to_watch(row) if row else None

    def list_watches(self, states: frozenset[WatchState] | None = None) -> list[Watch]:
        query = select(CanaryWatchRow).order_by(col(CanaryWatchRow.id))
        if states is not None:
            query = query.where(col(CanaryWatchRow.state).in_(sorted(str(s) for s in states)))
        with Session(self.engine) as session:
            return [_to_watch(r) for r in session.exec(query).all()]

    def update_watch(self, watch_id: int, rev: int, **fields: Any) -> Watch | None:
        unknown = set(fields) - _WATCH_FIELDS
        if unknown:
            raise ValueError(f"unknown watch fields {sorted(unknown)}")
        values = _row_values(fields)
        with Session(self.engine) as session:
            if "state" in fields:
                current = session.get(CanaryWatchRow, watch_id)
                if current is not None and current.rev == rev:
                    old, new = WatchState(current.state), WatchState(fields["state"])
                    if not can_move_watch(old, new):
                        raise IllegalTransition(f"watch {watch_id}", old, new)
            key = col(CanaryWatchRow.id) == watch_id
            if not compare_and_set(session, CanaryWatchRow, key, CanaryWatchRow.rev, rev, values):
                return None
            row = session.get(CanaryWatchRow, watch_id)
            assert row is not None
            return _to_watch(row)

    def add_check(self, check: Check) -> bool:
        row = CanaryCheckRow(
            watch_id=check.watch_id,
            seq=check.seq,
            at=check.at,
            window_seconds=check.window_seconds,
            source=check.source,
            canary_share=check.canary_share,
            verdict=str(check.verdict),
            consecutive_breaches=check.consecutive_breaches,
            figures={
                "canary": asdict(check.canary),
                "stable": asdict(check.stable),
                "windows": check.windows,
                "counted": check.counted,
            },
            reasons=list(check.reasons),
        )
        with Session(self.engine) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            check.id = row.id
            return True

    def checks(self, watch_id: int, limit: int = 100) -> list[Check]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(CanaryCheckRow)
                .where(CanaryCheckRow.watch_id == watch_id)
                .order_by(col(CanaryCheckRow.seq).desc())
                .limit(limit)
            ).all()
            return [_to_check(r) for r in reversed(rows)]
