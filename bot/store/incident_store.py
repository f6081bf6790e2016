"""`commands.incidents.ports.IncidentStore` on SQLModel (SQLite and PostgreSQL).

Atomic where replicas race: the first notice of an alert is the one INSERT the unique
`key` lets through (the others fall back to updating it); an incident from an alert is
the one INSERT the unique `alert_id` lets through; every later move is an UPDATE … WHERE
rev = :rev that bumps `rev`. Free text is written through `commands.text.outbound`
(PII masked, invisible characters visible) whoever the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from commands.incidents.model import (
    AlertNotice,
    AlertRecord,
    AlertSource,
    AlertState,
    Handoff,
    Incident,
    IncidentState,
    Severity,
)
from commands.incidents.ports import AlertDeclared, WatchState
from commands.text import outbound, outbound_value

from .incident_tables import AlertRow, HandoffRow, HealthWatchRow, IncidentRow
from .sql_store import compare_and_set, utc

ALERT_PREFIX = "ALERT-"
INCIDENT_PREFIX = "INC-"

# Columns of a notice, as the alert row holds them (the rest is the record's own).
_NOTICE_FIELDS = (
    "source",
    "state",
    "policy",
    "condition",
    "started_at",
    "ended_at",
    "endpoint",
    "environment",
    "summary",
    "observed",
    "url",
    "documentation",
    "labels",
)
_ALERT_TEXT = frozenset({"policy", "condition", "summary", "observed", "documentation"})
_ALERT_UPDATABLE = frozenset(
    {
        "channel",
        "message_ts",
        "acknowledged_by",
        "acknowledged_at",
        "incident_id",
        "closed_at",
        "paged_at",
        "posting_by",
        "posting_until",
    }
)
_INCIDENT_TEXT = frozenset({"summary", "root_cause"})
_INCIDENT_FIELDS = set(IncidentRow.model_fields) - {"seq", "rev"}
_RESOLVED = IncidentState.RESOLVED.value


def seq_of(ref: str, prefix: str) -> int | None:
    """`INC-12` (any case, spaces around) → 12; None for anything else."""
    ref = ref.strip().upper()
    if not ref.startswith(prefix):
        return None
    number = ref[len(prefix) :]
    return int(number) if number.isdigit() and len(number) <= 12 else None


def _stored(key: str, value: Any, text: frozenset[str]) -> Any:
    if isinstance(value, datetime):
        return utc(value)
    if key in text and isinstance(value, str):
        return outbound(value)
    if key == "labels" and isinstance(value, dict):
        return outbound_value({str(k): str(v) for k, v in value.items()})
    if key == "url" and isinstance(value, str):
        return outbound(value)
    if isinstance(value, Severity | IncidentState | AlertState | AlertSource):
        return value.value
    return value


def _notice_values(notice: AlertNotice) -> dict[str, Any]:
    return {k: _stored(k, getattr(notice, k), _ALERT_TEXT) for k in _NOTICE_FIELDS}


def _to_alert(row: AlertRow) -> AlertRecord:
    assert row.seq is not None
    notice = AlertNotice(
        key=row.key,
        source=AlertSource(row.source),
        state=AlertState(row.state),
        policy=row.policy,
        condition=row.condition,
        started_at=utc(row.started_at),
        ended_at=utc(row.ended_at),
        endpoint=row.endpoint,
        environment=row.environment,
        summary=row.summary,
        observed=row.observed,
        url=row.url,
        documentation=row.documentation,
        labels=dict(row.labels),
    )
    return AlertRecord(
        id=f"{ALERT_PREFIX}{row.seq}",
        notice=notice,
        received_at=utc(row.received_at) or row.received_at,
        updated_at=utc(row.updated_at) or row.updated_at,
        channel=row.channel,
        message_ts=row.message_ts,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=utc(row.acknowledged_at),
        incident_id=row.incident_id,
        closed_at=utc(row.closed_at),
        paged_at=utc(row.paged_at),
        posting_by=row.posting_by,
        posting_until=utc(row.posting_until),
        rev=row.rev,
    )


def _to_incident(row: IncidentRow) -> Incident:
    assert row.seq is not None
    return Incident(
        id=f"{INCIDENT_PREFIX}{row.seq}",
        severity=Severity(row.severity),
        state=IncidentState(row.state),
        summary=row.summary,
        declared_by=row.declared_by,
        declared_at=utc(row.declared_at) or row.declared_at,
        endpoint=row.endpoint,
        environment=row.environment,
        commander=row.commander,
        on_call=row.on_call,
        suggested_severity=Severity(row.suggested_severity) if row.suggested_severity else None,
        alert_id=row.alert_id,
        detected_at=utc(row.detected_at),
        acknowledged_at=utc(row.acknowledged_at),
        mitigated_at=utc(row.mitigated_at),
        resolved_at=utc(row.resolved_at),
        root_cause=row.root_cause,
        channel=row.channel,
        thread_ts=row.thread_ts,
        runbook=row.runbook,
        paged_at=utc(row.paged_at),
        rev=row.rev,
    )


def _to_handoff(row: HandoffRow) -> Handoff:
    assert row.id is not None
    return Handoff(
        id=row.id,
        author=row.author,
        at=utc(row.at) or row.at,
        text=row.text,
        environment=row.environment,
    )


class SqlIncidentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- alerts -------------------------------------------------------------------------

    def record_alert(self, notice: AlertNotice, at: datetime) -> tuple[AlertRecord, bool]:
        values = _notice_values(notice)
        now = utc(at) or at
        row = AlertRow(key=notice.key, received_at=now, updated_at=now, **values)
        with Session(self.engine) as session:
            # A known key is the common case (retries, the closing notice): looked up first
            # so that it burns no number of PostgreSQL's sequence (ALERT-N without gaps
            # but for true races, which the unique key settles).
            if session.exec(select(AlertRow.seq).where(AlertRow.key == notice.key)).first():
                session.rollback()
                return self._update_notice(notice, values, at), False
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # another replica (or a retry) stored this key first
                session.rollback()
            else:
                session.refresh(row)
                return _to_alert(row), True
        return self._update_notice(notice, values, at), False

    def _update_notice(
        self, notice: AlertNotice, values: dict[str, Any], at: datetime
    ) -> AlertRecord:
        """The notice of a known alert over the stored one, in one UPDATE; a closed alert
        is not reopened by a late `open` notice (nothing is written then)."""
        where = [col(AlertRow.key) == notice.key]
        if notice.state is AlertState.OPEN:
            where.append(col(AlertRow.state) == AlertState.OPEN.value)
        with Session(self.engine) as session:
            session.execute(
                update(AlertRow)
                .where(*where)
                .values(updated_at=utc(at), rev=col(AlertRow.rev) + 1, **values)
            )
            session.commit()
            found = session.exec(select(AlertRow).where(AlertRow.key == notice.key)).one()
            return _to_alert(found)

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        seq = seq_of(alert_id, ALERT_PREFIX)
        with Session(self.engine) as session:
            if seq is not None:
                row = session.get(AlertRow, seq)
            else:
                row = session.exec(select(AlertRow).where(AlertRow.key == alert_id)).first()
            return _to_alert(row) if row else None

    def update_alert(self, alert_id: str, rev: int, **fields: Any) -> AlertRecord | None:
        unknown = set(fields) - _ALERT_UPDATABLE
        if unknown:
            raise ValueError(f"not alert fields a caller may set: {sorted(unknown)}")
        seq = seq_of(alert_id, ALERT_PREFIX)
        if seq is None:
            return None
        values = {k: _stored(k, v, _ALERT_TEXT) for k, v in fields.items()}
        with Session(self.engine) as session:
            key = col(AlertRow.seq) == seq
            if not compare_and_set(session, AlertRow, key, AlertRow.rev, rev, values):
                return None
            row = session.get(AlertRow, seq)
            assert row is not None
            return _to_alert(row)

    def list_alerts(self, since: datetime, endpoint: str | None = None) -> list[AlertRecord]:
        query = select(AlertRow).where(
            or_(
                col(AlertRow.received_at) >= utc(since),
                col(AlertRow.state) == AlertState.OPEN.value,
            )
        )
        if endpoint is not None:
            query = query.where(col(AlertRow.endpoint) == endpoint)
        with Session(self.engine) as session:
            rows = session.exec(query.order_by(col(AlertRow.seq).desc())).all()
            return [_to_alert(r) for r in rows]

    # --- incidents ----------------------------------------------------------------------

    def create_incident(self, incident: Incident) -> Incident:
        values = {
            k: _stored(k, v, _INCIDENT_TEXT)
            for k, v in vars(incident).items()
            if k in _INCIDENT_FIELDS
        }
        row = IncidentRow(**values)
        with Session(self.engine) as session:
            if incident.alert_id:  # looked up first: a refused repeat burns no INC number
                found = session.exec(
                    select(IncidentRow).where(IncidentRow.alert_id == incident.alert_id)
                ).first()
                if found is not None:
                    raise AlertDeclared(_to_incident(found))
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = (
                    session.exec(
                        select(IncidentRow).where(IncidentRow.alert_id == incident.alert_id)
                    ).first()
                    if incident.alert_id
                    else None
                )
                if existing is None:
                    raise
                raise AlertDeclared(_to_incident(existing)) from None
            session.refresh(row)
            return _to_incident(row)

    def get_incident(self, incident_id: str) -> Incident | None:
        seq = seq_of(incident_id, INCIDENT_PREFIX)
        if seq is None:
            return None
        with Session(self.engine) as session:
            row = session.get(IncidentRow, seq)
            return _to_incident(row) if row else None

    def update_incident(self, incident_id: str, rev: int, **fields: Any) -> Incident | None:
        unknown = set(fields) - _INCIDENT_FIELDS
        if unknown:
            raise ValueError(f"unknown incident fields {sorted(unknown)}")
        seq = seq_of(incident_id, INCIDENT_PREFIX)
        if seq is None:
            return None
        values = {k: _stored(k, v, _INCIDENT_TEXT) for k, v in fields.items()}
        with Session(self.engine) as session:
            key = col(IncidentRow.seq) == seq
            if not compare_and_set(session, IncidentRow, key, IncidentRow.rev, rev, values):
                return None
            row = session.get(IncidentRow, seq)
            assert row is not None
            return _to_incident(row)

    def list_incidents(
        self,
        *,
        states: frozenset[IncidentState] | None = None,
        since: datetime | None = None,
        endpoint: str | None = None,
        resolved_since: datetime | None = None,
    ) -> list[Incident]:
        query = select(IncidentRow)
        if states is not None:
            query = query.where(col(IncidentRow.state).in_(sorted(s.value for s in states)))
        if since is not None:
            kept = [
                col(IncidentRow.declared_at) >= utc(since),
                col(IncidentRow.state) != IncidentState.RESOLVED.value,
            ]
            if resolved_since is not None:
                kept.append(col(IncidentRow.resolved_at) >= utc(resolved_since))
            query = query.where(or_(*kept))
        if endpoint is not None:
            query = query.where(col(IncidentRow.endpoint) == endpoint)
        with Session(self.engine) as session:
            rows = session.exec(query.order_by(col(IncidentRow.seq).desc())).all()
            return [_to_incident(r) for r in rows]

    def open_incidents_for(self, endpoint: str) -> list[Incident]:
        # On the path of every change (the link to an open incident): one indexed query.
        query = (
            select(IncidentRow)
            .where(
                col(IncidentRow.endpoint) == endpoint,
                col(IncidentRow.state) != _RESOLVED,
            )
            .order_by(col(IncidentRow.seq).desc())
        )
        with Session(self.engine) as session:
            return [_to_incident(r) for r in session.exec(query).all()]

    # --- hand-off -----------------------------------------------------------------------

    def add_handoff(self, note: Handoff) -> Handoff:
        row = HandoffRow(
            author=note.author,
            at=utc(note.at) or note.at,
            text=outbound(note.text),
            environment=note.environment,
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return _to_handoff(row)

    def handoffs(self, since: datetime, environment: str | None = None) -> Sequence[Handoff]:
        query = select(HandoffRow).where(col(HandoffRow.at) >= utc(since))
        if environment is not None:
            query = query.where(
                or_(
                    col(HandoffRow.environment) == environment,
                    col(HandoffRow.environment).is_(None),
                )
            )
        with Session(self.engine) as session:
            rows = session.exec(query.order_by(col(HandoffRow.at), col(HandoffRow.id))).all()
            return [_to_handoff(r) for r in rows]


class SqlHealthWatchStore:
    """`commands.incidents.ports.HealthWatchStore` on the `health_watch` table: the first
    state of an endpoint is the one INSERT its primary key lets through; every later one
    an UPDATE … WHERE rev = :rev that bumps `rev`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def watch_state(self, endpoint: str) -> WatchState:
        with Session(self.engine) as session:
            row = session.get(HealthWatchRow, endpoint)
            if row is None:
                return WatchState(endpoint, {})
            return WatchState(endpoint, dict(row.state), utc(row.window_end), row.rev)

    def save_watch_state(
        self,
        endpoint: str,
        rev: int,
        state: dict[str, Any],
        window_end: datetime,
        at: datetime,
    ) -> WatchState | None:
        with Session(self.engine) as session:
            if rev == 0:
                session.add(
                    HealthWatchRow(
                        endpoint=endpoint,
                        state=state,
                        window_end=utc(window_end),
                        updated_at=utc(at) or at,
                        rev=1,
                    )
                )
                try:
                    session.commit()
                except IntegrityError:  # another replica stored the first state
                    session.rollback()
                    return None
                return WatchState(endpoint, state, window_end, 1)
            moved = compare_and_set(
                session,
                HealthWatchRow,
                col(HealthWatchRow.endpoint) == endpoint,
                HealthWatchRow.rev,
                rev,
                {"state": state, "window_end": utc(window_end), "updated_at": utc(at)},
            )
            if not moved:
                return None
            return WatchState(endpoint, state, window_end, rev + 1)
