"""`commands.ports.Store` on SQLModel. Every state change is a compare-and-set.

Free text (a change's `reason` and `error`, the typed entries of its plan, an approval's
`reason`) is written through `commands.text.outbound`: whoever the caller, PII is masked
and invisible characters are made visible before a row holds them (PostgreSQL refuses
NUL in text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from commands.model import (
    Change,
    ChangeKind,
    ChangePlan,
    ChangeState,
    IllegalTransition,
    can_move,
    stranded_since,
)
from commands.ports import ApprovalRecord, AuditEvent, AuditQuery, Decision, EndpointLocked
from commands.text import outbound

from .audit_canon import CURRENT, chain_hash, normalise
from .tables import ApprovalRow, AuditRow, ChangeRow, EndpointLockRow

__all__ = ["GENESIS", "SqlStore", "audit_row", "chain_hash", "utc"]

GENESIS = "0" * 64
_CHANGE_PREFIX = "CHG-"


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compare_and_set(
    session: Session,
    table: type[SQLModel],
    key: ColumnElement[bool],
    rev: Any,
    expected: int,
    values: dict[str, Any],
) -> bool:
    """Move the row `key` selects only while its `rev` column is still `expected` (it becomes
    `expected + 1`), and commit; False, rolled back, when another writer moved it first."""
    result = session.execute(
        update(table).where(key, col(rev) == expected).values(rev=expected + 1, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    session.commit()
    return True


_FREE_TEXT = frozenset({"reason", "error"})
# The entries of a change's stored plan that hold typed text; the rest are ids, versions
# and hashes that must round-trip exactly (a deployed model's id is a digit run).
_FREE_EXTRA = frozenset({"forced_promote", "ticket"})


def _utc_values(values: dict[str, Any]) -> dict[str, Any]:
    """A change's values as stored: times in UTC, free text through `outbound`."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, datetime):
            v = utc(v)
        elif k in _FREE_TEXT and isinstance(v, str):
            v = outbound(v)
        out[k] = v
    return out


def change_seq(change_id: str) -> int | None:
    ref = change_id.strip().upper()
    if ref.startswith(_CHANGE_PREFIX):
        ref = ref[len(_CHANGE_PREFIX) :]
    return int(ref) if ref.isdigit() else None


def _to_change(row: ChangeRow) -> Change:
    assert row.seq is not None
    return Change(
        id=f"{_CHANGE_PREFIX}{row.seq}",
        kind=ChangeKind(row.kind),
        endpoint=row.endpoint,
        environment=row.environment,
        requester_id=row.requester_id,
        state=ChangeState(row.state),
        created_at=utc(row.created_at) or datetime.now(UTC),
        updated_at=utc(row.updated_at),
        reason=row.reason,
        version=row.version,
        canary_percent=row.canary_percent,
        split_before=dict(row.split_before),
        split_after=dict(row.split_after),
        restore_split=dict(row.restore_split),
        expires_at=utc(row.expires_at),
        operation=row.operation,
        new_deployed_model_id=row.new_deployed_model_id,
        decided_by=row.decided_by,
        decided_at=utc(row.decided_at),
        error=row.error,
        channel=row.channel,
        message_ts=row.message_ts,
        plan=ChangePlan.from_extra(dict(row.extra)),
        lease_owner=row.lease_owner,
        lease_heartbeat_at=utc(row.lease_heartbeat_at),
        lease_expires_at=utc(row.lease_expires_at),
        stop_requested_by=row.stop_requested_by,
        stop_reason=row.stop_reason,
    )


# The lease's columns: written by the lease methods only, cleared by a terminal move.
_LEASE_FIELDS = frozenset({"lease_owner", "lease_heartbeat_at", "lease_expires_at"})
_NO_LEASE: dict[str, Any] = dict.fromkeys(_LEASE_FIELDS)
# A stop request's columns: written by `request_stop` only.
_STOP_FIELDS = frozenset({"stop_requested_by", "stop_reason"})
# Columns a caller may set, by the domain's names (`plan` is stored as the `extra` map).
_CHANGE_FIELDS = set(ChangeRow.model_fields) - {"seq", "extra"} - _LEASE_FIELDS - _STOP_FIELDS | {
    "plan"
}


def _written(session: Session, seq: int, result: Any) -> Change | None:
    """After a compare-and-set UPDATE of one change: the change as written, committed; None,
    rolled back, when it matched no row (another writer moved it first)."""
    if result.rowcount != 1:
        session.rollback()
        return None
    row = session.get(ChangeRow, seq)
    assert row is not None
    written = _to_change(row)
    session.commit()
    return written


def _lease_free(owner: str, now: datetime) -> ColumnElement[bool]:
    """No lease, an expired one, or `owner`'s own."""
    return or_(
        col(ChangeRow.lease_owner).is_(None),
        col(ChangeRow.lease_expires_at) <= now,
        col(ChangeRow.lease_owner) == owner,
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    values = _utc_values(fields)
    if "plan" in values:
        values["extra"] = {
            e: outbound(x) if e in _FREE_EXTRA else x
            for e, x in values.pop("plan").to_extra().items()
        }
    return values


def audit_row(event: AuditEvent) -> AuditRow:
    """The table row for an event whose `prev_hash` and `hash` are already set."""
    assert event.prev_hash is not None and event.hash is not None
    return AuditRow(
        at=event.at,
        actor_id=event.actor_id,
        action=event.action,
        environment=event.environment,
        target=event.target,
        parameters=event.parameters,
        justification=event.justification,
        outcome=event.outcome,
        change_id=event.change_id,
        request_id=event.request_id,
        retain_until=event.retain_until,
        prev_hash=event.prev_hash,
        hash=event.hash,
        chain_version=event.chain_version or CURRENT,
    )


def _to_event(row: AuditRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=utc(row.at) or row.at,
        actor_id=row.actor_id,
        action=row.action,
        environment=row.environment,
        target=row.target,
        parameters=dict(row.parameters),
        justification=row.justification,
        outcome=row.outcome,
        change_id=row.change_id,
        request_id=row.request_id,
        retain_until=utc(row.retain_until),
        prev_hash=row.prev_hash,
        hash=row.hash,
        chain_version=row.chain_version,
    )


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # changes -------------------------------------------------------------------------

    def create_change(self, change: Change) -> Change:
        values = _columns({k: v for k, v in change.__dict__.items() if k in _CHANGE_FIELDS})
        values["kind"] = str(change.kind)
        values["state"] = str(change.state)
        row = ChangeRow(**values)
        with Session(self.engine) as session:
            session.add(row)
            session.flush()
            assert row.seq is not None
            if change.state.is_open:
                session.add(
                    EndpointLockRow(
                        endpoint=change.endpoint, change_seq=row.seq, taken_at=change.created_at
                    )
                )
                try:
                    session.flush()
                except IntegrityError:
                    session.rollback()
                    holder = self.open_change(change.endpoint)
                    if holder is None:  # released in between: let the caller try again
                        raise
                    raise EndpointLocked(change.endpoint, holder) from None
            created = _to_change(row)  # before the commit: no reload in a new transaction
            session.commit()
            return created

    def get_change(self, change_id: str) -> Change | None:
        seq = change_seq(change_id)
        if seq is None:
            return None
        with Session(self.engine) as session:
            row = session.get(ChangeRow, seq)
            return _to_change(row) if row else None

    def open_change(self, endpoint: str) -> Change | None:
        with Session(self.engine) as session:
            lock = session.get(EndpointLockRow, endpoint)
            if lock is None:
                return None
            row = session.get(ChangeRow, lock.change_seq)
            return _to_change(row) if row else None

    def transition(
        self,
        change_id: str,
        old: ChangeState,
        new: ChangeState,
        *,
        holder: str | None = None,
        **fields: Any,
    ) -> Change | None:
        if not can_move(old, new):
            raise IllegalTransition(change_id, old, new)
        seq = change_seq(change_id)
        if seq is None:
            return None
        unknown = set(fields) - _CHANGE_FIELDS
        if unknown:
            raise ValueError(f"unknown change fields {sorted(unknown)}")
        where = [col(ChangeRow.seq) == seq, col(ChangeRow.state) == str(old)]
        if holder is not None:
            where.append(col(ChangeRow.lease_owner) == holder)
        values = _columns(fields) | ({} if new.is_open else _NO_LEASE)
        with Session(self.engine) as session:
            result = session.execute(
                update(ChangeRow).where(*where).values(state=str(new), **values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                return None
            if not new.is_open:
                session.execute(
                    delete(EndpointLockRow).where(col(EndpointLockRow.change_seq) == seq)
                )
            row = session.get(ChangeRow, seq)  # read inside the transaction that wrote it
            assert row is not None
            changed = _to_change(row)
            session.commit()
            return changed

    def update_change(
        self,
        change_id: str,
        *,
        holder: str | None = None,
        unless_stop_requested: bool = False,
        **fields: Any,
    ) -> bool:
        seq = change_seq(change_id)
        unknown = set(fields) - (_CHANGE_FIELDS - {"state"})
        if seq is None or unknown:
            raise ValueError(f"cannot update {change_id} with {sorted(fields)}")
        where = [col(ChangeRow.seq) == seq]
        if holder is not None:
            where.append(col(ChangeRow.lease_owner) == holder)
        if unless_stop_requested:
            where.append(col(ChangeRow.stop_requested_by).is_(None))
        with Session(self.engine) as session:
            result = session.execute(update(ChangeRow).where(*where).values(**_columns(fields)))
            session.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def request_stop(
        self, change_id: str, actor_id: str, reason: str | None, *, phase: str
    ) -> Change | None:
        seq = change_seq(change_id)
        if seq is None:
            return None
        with Session(self.engine) as session:
            result = session.execute(
                update(ChangeRow)
                .where(
                    col(ChangeRow.seq) == seq,
                    col(ChangeRow.state) == str(ChangeState.RUNNING),
                    col(ChangeRow.stop_requested_by).is_(None),
                    col(ChangeRow.extra)["phase"].as_string() == phase,
                )
                .values(
                    stop_requested_by=actor_id,
                    stop_reason=outbound(reason) if reason else None,
                )
            )
            return _written(session, seq, result)

    # the lease on a change's background work ------------------------------------------

    def take_lease(
        self,
        change_id: str,
        owner: str,
        now: datetime,
        ttl: timedelta,
        *,
        from_state: ChangeState = ChangeState.RUNNING,
    ) -> Change | None:
        if from_state not in (ChangeState.RUNNING, ChangeState.APPROVED):
            raise ValueError(f"no background work to lease in state {from_state}")
        seq = change_seq(change_id)
        if seq is None:
            return None
        now = utc(now) or now
        values: dict[str, Any] = {
            "lease_owner": owner,
            "lease_heartbeat_at": now,
            "lease_expires_at": now + ttl,
        }
        if from_state is ChangeState.APPROVED:
            # Started and leased in one statement: never RUNNING without a lease.
            values |= {"state": str(ChangeState.RUNNING), "updated_at": now}
        with Session(self.engine) as session:
            result = session.execute(
                update(ChangeRow)
                .where(
                    col(ChangeRow.seq) == seq,
                    col(ChangeRow.state) == str(from_state),
                    _lease_free(owner, now),
                )
                .values(**values)
            )
            return _written(session, seq, result)

    def renew_lease(self, change_id: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        seq = change_seq(change_id)
        if seq is None:
            return False
        now = utc(now) or now
        with Session(self.engine) as session:
            result = session.execute(
                update(ChangeRow)
                .where(
                    col(ChangeRow.seq) == seq,
                    col(ChangeRow.lease_owner) == owner,
                    col(ChangeRow.state) == str(ChangeState.RUNNING),
                )
                .values(lease_heartbeat_at=now, lease_expires_at=now + ttl)
            )
            session.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def release_lease(self, change_id: str, owner: str) -> bool:
        seq = change_seq(change_id)
        if seq is None:
            return False
        with Session(self.engine) as session:
            result = session.execute(
                update(ChangeRow)
                .where(col(ChangeRow.seq) == seq, col(ChangeRow.lease_owner) == owner)
                .values(**_NO_LEASE)
            )
            session.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def stranded(self, now: datetime, settle: timedelta) -> list[Change]:
        now = utc(now) or now
        query = (
            select(ChangeRow)
            .where(
                col(ChangeRow.state).in_(
                    [
                        str(ChangeState.RUNNING),
                        str(ChangeState.APPROVED),
                        str(ChangeState.REQUESTED),
                    ]
                ),
                or_(
                    col(ChangeRow.lease_owner).is_(None),
                    and_(
                        col(ChangeRow.lease_expires_at).is_not(None),
                        col(ChangeRow.lease_expires_at) <= now,
                    ),
                ),
            )
            .order_by(col(ChangeRow.seq))
            .limit(1000)
        )
        with Session(self.engine) as session:
            found = [_to_change(r) for r in session.exec(query).all()]
        # Whether an approved change is due reads its plan (a JSON map): decided here.
        return [c for c in found if stranded_since(c, now, settle) is not None]

    def list_changes(
        self,
        *,
        states: Sequence[ChangeState] | None = None,
        endpoint: str | None = None,
        limit: int = 20,
    ) -> list[Change]:
        query = select(ChangeRow).order_by(col(ChangeRow.seq).desc()).limit(limit)
        if states is not None:
            query = query.where(col(ChangeRow.state).in_([str(s) for s in states]))
        if endpoint is not None:
            query = query.where(ChangeRow.endpoint == endpoint)
        with Session(self.engine) as session:
            return [_to_change(r) for r in session.exec(query).all()]

    def last_succeeded(self, endpoint: str, kinds: Sequence[str] | None = None) -> Change | None:
        query = (
            select(ChangeRow)
            .where(ChangeRow.endpoint == endpoint, ChangeRow.state == str(ChangeState.SUCCEEDED))
            .order_by(col(ChangeRow.seq).desc())
            .limit(1)
        )
        if kinds:
            query = query.where(col(ChangeRow.kind).in_(list(kinds)))
        with Session(self.engine) as session:
            row = session.exec(query).first()
            return _to_change(row) if row else None

    # approvals -----------------------------------------------------------------------

    def decide(
        self, record: ApprovalRecord, new: ChangeState, quorum: int, **fields: Any
    ) -> Decision:
        pending = ChangeState.PENDING_APPROVAL
        if not can_move(pending, new):
            raise IllegalTransition(record.change_id, pending, new)
        seq = change_seq(record.change_id)
        unknown = set(fields) - _CHANGE_FIELDS
        if unknown:
            raise ValueError(f"unknown change fields {sorted(unknown)}")
        with Session(self.engine) as session:
            # The change's row is locked for the whole decision (PostgreSQL: FOR UPDATE;
            # SQLite: every transaction is BEGIN IMMEDIATE), so decisions on one change take
            # turns and a `transition` racing this one waits: the state read here is the
            # state the row and the move below are decided on.
            row = session.exec(
                select(ChangeRow).where(ChangeRow.seq == seq).with_for_update()
            ).first()
            if row is None or seq is None:
                raise KeyError(record.change_id)
            if row.state != str(pending):
                return Decision(_to_change(row), stored=False)
            taken = session.exec(
                select(ApprovalRow.id).where(
                    ApprovalRow.change_seq == seq, ApprovalRow.approver_id == record.approver_id
                )
            ).first()
            if taken is not None:
                return Decision(_to_change(row), stored=False, duplicate=True)
            session.add(
                ApprovalRow(
                    change_seq=seq,
                    approver_id=record.approver_id,
                    decision=record.decision,
                    at=record.at,
                    reason=outbound(record.reason) if record.reason else record.reason,
                    plan_hash=record.plan_hash,
                )
            )
            try:
                session.flush()
            except IntegrityError:  # uq_approval_once: the constraint has the last word
                session.rollback()
                return Decision(_to_change(row), stored=False, duplicate=True)
            deciders = tuple(
                who
                for who in session.exec(
                    select(ApprovalRow.approver_id)
                    .where(ApprovalRow.change_seq == seq, ApprovalRow.decision == record.decision)
                    .order_by(col(ApprovalRow.id))
                ).all()
                if who != row.requester_id
            )
            if len(deciders) >= quorum:
                session.execute(
                    update(ChangeRow)
                    .where(col(ChangeRow.seq) == seq, col(ChangeRow.state) == str(pending))
                    .values(state=str(new), **_columns(fields))
                )
                if not new.is_open:
                    session.execute(
                        delete(EndpointLockRow).where(col(EndpointLockRow.change_seq) == seq)
                    )
                session.refresh(row)  # read inside the transaction that wrote it
            decided = _to_change(row)
            session.commit()
            return Decision(decided, stored=True, deciders=deciders)

    def approvals(self, change_id: str) -> list[ApprovalRecord]:
        seq = change_seq(change_id)
        with Session(self.engine) as session:
            rows = session.exec(
                select(ApprovalRow)
                .where(ApprovalRow.change_seq == seq)
                .order_by(col(ApprovalRow.id))
            ).all()
            return [
                ApprovalRecord(
                    change_id=change_id,
                    approver_id=r.approver_id,
                    decision=r.decision,
                    at=utc(r.at) or r.at,
                    reason=r.reason,
                    plan_hash=r.plan_hash,
                )
                for r in rows
            ]

    # audit ---------------------------------------------------------------------------

    def append_audit(self, event: AuditEvent) -> AuditEvent:
        # Stored as UTC whatever zone the caller used: SQLite keeps the wall-clock digits,
        # and the hash covers the UTC instant.
        event.at = utc(event.at) or event.at
        event.retain_until = utc(event.retain_until)
        normalise(event)  # what is stored is exactly what is hashed
        event.chain_version = CURRENT
        with Session(self.engine) as session:
            if self.engine.dialect.name == "postgresql":
                # Writers from every replica take turns at the chain's head.
                session.execute(text("SELECT pg_advisory_xact_lock(72010001)"))
            last = session.exec(
                select(AuditRow.hash).order_by(col(AuditRow.id).desc()).limit(1)
            ).first()
            prev = last or GENESIS
            event.prev_hash = prev
            event.hash = chain_hash(prev, event)
            row = audit_row(event)
            session.add(row)
            session.flush()
            # Read the id before the commit: after it, `row.id` reloads the row in a new
            # transaction (on SQLite a second BEGIN IMMEDIATE per audit row).
            event.id = row.id
            session.commit()
            return event

    def audit(self, query: AuditQuery) -> list[AuditEvent]:
        q = select(AuditRow)
        # Rows are stored in UTC; SQLite compares text, so bounds must be UTC too.
        if query.since is not None:
            q = q.where(col(AuditRow.at) >= utc(query.since))
        if query.until is not None:
            q = q.where(col(AuditRow.at) < utc(query.until))
        if query.endpoint is not None:
            q = q.where(AuditRow.target == query.endpoint)
        if query.environment is not None:
            q = q.where(AuditRow.environment == query.environment)
        if query.actor_id is not None:
            q = q.where(AuditRow.actor_id == query.actor_id)
        if query.change_id is not None:
            q = q.where(AuditRow.change_id == query.change_id)
        if query.actions is not None:
            q = q.where(col(AuditRow.action).in_(sorted(query.actions)))
        if query.limit is not None:
            # the newest `limit` rows, still returned oldest first
            q = q.order_by(col(AuditRow.id).desc()).limit(query.limit)
            with Session(self.engine) as session:
                return [_to_event(r) for r in reversed(session.exec(q).all())]
        with Session(self.engine) as session:
            return [_to_event(r) for r in session.exec(q.order_by(col(AuditRow.id))).all()]

    def audit_count(self) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(AuditRow)).one())
