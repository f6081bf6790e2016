"""Proving the audit table: walk its hash chain, remember how far it was proven, purge
what is past retention without breaking it.

The chain. Every row stores `prev_hash` (the hash of the row before it, `GENESIS` for
the first), its `chain_version` and `hash`, computed as that version says
(`bot.store.audit_canon`; version 2 is SHA-256 over the RFC 8785 form of the row, which
docs/audit-verification.md spells out for auditors). A row verifies under the version it
was written with, so rows from before a change of form keep verifying.
Changing any field of a row breaks its own hash; deleting, inserting or reordering rows
breaks the link of the row after the gap. `verify` walks the rows in id order and
reports the first one that does not fit, and says which of these happened:

- edited: a row's content no longer matches its hash (or its hash was recomputed, and
  the next row's link exposes it);
- deleted: a row names a predecessor that is no longer in the table;
- reordered: a row names a predecessor that now sits *after* it;
- inserted: a row names a predecessor further back, so the rows in between were put in.

Checkpoints. A successful verify appends a `verified` checkpoint (last id, its hash). A
later verify (the default, `from_checkpoint=True`) first checks that this row is still
there with the same hash, then reads only the rows after it, so a daily verify of a
multi-year table reads a day of rows. `--full` re-reads everything from the anchor.

Purge and the anchor. Rows are removed only past `retain_until`, and only as a prefix of
the chain: the oldest rows up to the first one still retained. (An expired row behind a
retained one waits for it; retention is fixed per row, so this only delays.) Before the
rows go, a `purged` checkpoint records the id and hash of the last removed row: the first
remaining row names that hash as its `prev_hash`, so it is the chain's new anchor, and
verify starts from it instead of `GENESIS`. The purge itself appends an audit row (in the
same transaction) that repeats the anchor's id and hash, so the anchor is covered by the
chain it anchors: a forged or altered anchor fails verify.

What a chain in the same database cannot prove: that the newest rows were not cut off
and re-appended by someone who can write the table. The witnesses for that live outside
the database: every audit row's second copy in Cloud Logging (`commands.audit.AuditSink`)
and the head of every successful verification (`witness`, written to the same
`aiops-audit` log). `compare_with_log` checks the table against those heads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, delete, func, or_, text
from sqlmodel import Session, col, select

from bot.store.audit_canon import CURRENT, normalise
from bot.store.audit_scan import scan
from bot.store.compliance_tables import AuditCheckpointRow
from bot.store.sql_store import GENESIS, _to_event, audit_row, chain_hash, utc
from bot.store.tables import AuditRow
from commands.audit import RETENTION, AuditAction
from commands.ports import AuditEvent

VERIFIED = "verified"
PURGED = "purged"
CHAIN_LOCK = 72010001  # the advisory lock `SqlStore.append_audit` takes on PostgreSQL


@dataclass(frozen=True)
class ChainProblem:
    kind: str  # edited | deleted | reordered | inserted | anchor
    row_id: int | None
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # rows whose hashes were recomputed
    started_after: int  # rows with a larger id were read
    started_from: str  # `genesis`, `checkpoint #N` or `purge anchor #N`
    head_id: int | None
    head_hash: str
    problem: ChainProblem | None = None

    def message(self) -> str:
        if self.problem:
            where = f"row {self.problem.row_id}" if self.problem.row_id is not None else "chain"
            return f"audit chain broken at {where}: {self.problem.kind} — {self.problem.detail}"
        head = f"row {self.head_id}" if self.head_id is not None else "empty"
        return (
            f"audit chain intact: {self.checked} row(s) checked from {self.started_from};"
            f" head {head} {self.head_hash}"
        )


@dataclass(frozen=True)
class PurgeResult:
    purged: int
    through_id: int | None
    through_hash: str | None
    kept_expired: int  # expired rows kept because an older row is still retained
    audit_id: int | None


def _iso(at: datetime | None) -> str:
    value = utc(at)
    return value.isoformat() if value else "?"


def _latest(session: Session, kind: str) -> AuditCheckpointRow | None:
    return session.exec(
        select(AuditCheckpointRow)
        .where(AuditCheckpointRow.kind == kind)
        .order_by(col(AuditCheckpointRow.id).desc())
        .limit(1)
    ).first()


def _rows_after(session: Session, after: int, batch: int) -> Iterator[AuditRow]:
    while True:
        rows = session.exec(
            select(AuditRow).where(col(AuditRow.id) > after).order_by(col(AuditRow.id)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
        assert last is not None
        after = last


def _owner(session: Session, hash_: str) -> int | None:
    return session.exec(select(AuditRow.id).where(AuditRow.hash == hash_)).first()


def _classify(
    session: Session, event: AuditEvent, expected: str, prev_id: int | None, prev_is_row: bool
) -> ChainProblem:
    """Row `event` does not follow the row before it (`prev_id`, hash `expected`): why?"""
    assert event.id is not None and event.prev_hash is not None
    if chain_hash(event.prev_hash, event) != event.hash:
        return ChainProblem(
            "edited", event.id, "its content no longer matches its hash (a field was changed)"
        )
    owner = _owner(session, event.prev_hash)
    if owner is None:
        if prev_is_row and prev_id == event.id - 1:
            return ChainProblem(
                "edited",
                prev_id,
                f"row {event.id} was written after a different row {prev_id}: row {prev_id}"
                " was changed and its hash recomputed",
            )
        gap = f"after row {prev_id}" if prev_id else "at the start of the chain"
        return ChainProblem(
            "deleted",
            event.id,
            f"the row before it is missing ({gap}): its predecessor's hash"
            f" {event.prev_hash[:12]}… is no longer in the table",
        )
    if owner > event.id:
        return ChainProblem(
            "reordered",
            event.id,
            f"it was written after row {owner}, which now comes after it",
        )
    first_inserted = session.exec(
        select(AuditRow.id).where(col(AuditRow.id) > owner).order_by(col(AuditRow.id)).limit(1)
    ).first()
    return ChainProblem(
        "inserted",
        first_inserted,
        f"row {event.id} was written right after row {owner}; rows {first_inserted}–{prev_id}"
        " were put in between",
    )


def _check_anchor(session: Session, anchor: AuditCheckpointRow) -> ChainProblem | None:
    if anchor.audit_id is None:
        return ChainProblem("anchor", None, f"purge anchor #{anchor.id} names no audit row")
    row = session.get(AuditRow, anchor.audit_id)
    if row is None:
        return ChainProblem(
            "anchor", anchor.audit_id, f"the audit row of purge anchor #{anchor.id} is missing"
        )
    params = dict(row.parameters)
    if (
        row.action != AuditAction.AUDIT_PURGE
        or params.get("through_id") != anchor.last_id
        or params.get("through_hash") != anchor.last_hash
    ):
        return ChainProblem(
            "anchor",
            anchor.audit_id,
            f"purge anchor #{anchor.id} (through row {anchor.last_id}) does not match the"
            " audit row that recorded the purge",
        )
    return None


def verify(
    engine: Engine,
    from_checkpoint: bool = True,
    *,
    record: bool = True,
    now: datetime | None = None,
    batch: int = 2000,
    workers: int | None = None,
) -> VerifyResult:
    """Walk the chain; on success (and `record`) append a `verified` checkpoint."""
    with Session(engine) as session:
        anchor = _latest(session, PURGED)
        checkpoint = _latest(session, VERIFIED)
        after, expected, prev_is_row = 0, GENESIS, False
        started_from = "genesis"
        if anchor is not None:
            after, expected = anchor.last_id, anchor.last_hash
            started_from = f"purge anchor #{anchor.id}"
        start_after = after

        def result(
            problem: ChainProblem | None, checked: int, head: int | None, head_hash: str
        ) -> VerifyResult:
            return VerifyResult(
                ok=problem is None,
                checked=checked,
                started_after=start_after,
                started_from=started_from,
                head_id=head,
                head_hash=head_hash,
                problem=problem,
            )

        if anchor is not None:
            problem = _check_anchor(session, anchor)
            if problem:
                return result(problem, 0, None, expected)
        use_checkpoint = checkpoint is not None and checkpoint.last_id > after
        if use_checkpoint:
            assert checkpoint is not None
            seen = session.get(AuditRow, checkpoint.last_id)
            if seen is None or seen.hash != checkpoint.last_hash:
                start_after = checkpoint.last_id
                kind = "deleted" if seen is None else "edited"
                what = "is gone" if seen is None else "has a different hash"
                return result(
                    ChainProblem(
                        kind,
                        checkpoint.last_id,
                        f"row {checkpoint.last_id}, verified at {_iso(checkpoint.at)}, {what}",
                    ),
                    0,
                    None,
                    expected,
                )
            if from_checkpoint:
                after, expected, prev_is_row = checkpoint.last_id, checkpoint.last_hash, True
                started_from = f"checkpoint #{checkpoint.id} (row {checkpoint.last_id})"
        start_after = after
        prev_id: int | None = after or None
        checked = 0
        # The fast scan (raw cursor, canonical text built from the columns, hashed in
        # parallel chunks) proves the rows it can; from the first row it cannot, the
        # row-by-row walk below takes over and says what is wrong, as it always did.
        raw = session.connection().connection.driver_connection
        fast = scan(engine, raw, after, expected, workers=workers)
        checked = fast.good
        if fast.good:
            after, prev_id, expected, prev_is_row = fast.last_id, fast.last_id, fast.last_hash, True
        rows = _rows_after(session, after, batch) if fast.stopped else iter(())
        for row in rows:
            event = _to_event(row)
            assert event.id is not None
            if event.prev_hash != expected or chain_hash(expected, event) != event.hash:
                problem = _classify(session, event, expected, prev_id, prev_is_row)
                return result(problem, checked, prev_id, expected)
            expected = event.hash
            prev_id, prev_is_row = event.id, True
            checked += 1
        if record and checked:
            session.add(
                AuditCheckpointRow(
                    kind=VERIFIED,
                    last_id=prev_id or 0,
                    last_hash=expected,
                    rows=checked,
                    at=now or datetime.now().astimezone(),
                )
            )
            session.commit()
        return result(None, checked, prev_id, expected)


def purge(
    engine: Engine,
    *,
    now: datetime,
    actor_id: str = "cli",
    retention: timedelta = RETENTION,
    reason: str | None = None,
) -> PurgeResult:
    """Remove the chain's expired prefix, record the anchor, and audit the purge — in one
    transaction, under the same lock as every append."""
    postgres = engine.dialect.name == "postgresql"
    with Session(engine) as session:
        if postgres:
            session.execute(text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))
        still_kept = or_(col(AuditRow.retain_until).is_(None), col(AuditRow.retain_until) >= now)
        first_kept = session.exec(select(func.min(AuditRow.id)).where(still_kept)).one()
        head = session.exec(select(AuditRow).order_by(col(AuditRow.id).desc()).limit(1)).first()
        through: AuditRow | None = None
        if head is not None:
            q = select(AuditRow).order_by(col(AuditRow.id).desc()).limit(1)
            if first_kept is not None:
                q = q.where(col(AuditRow.id) < first_kept)
            through = session.exec(q).first()
        kept_expired = 0
        if first_kept is not None:
            kept_expired = int(
                session.exec(
                    select(func.count())
                    .select_from(AuditRow)
                    .where(col(AuditRow.id) > first_kept, ~still_kept)
                ).one()
            )
        through_id = through.id if through is not None else None
        through_hash = through.hash if through is not None else None
        to_purge = 0
        if through_id is not None:
            to_purge = int(
                session.exec(
                    select(func.count()).select_from(AuditRow).where(col(AuditRow.id) <= through_id)
                ).one()
            )
        # The purge's own row goes in first, chained on the current head, so it takes an id
        # past every removed row (SQLite reuses the ids of deleted rows at the end).
        prev = head.hash if head is not None else GENESIS
        event = AuditEvent(
            action=AuditAction.AUDIT_PURGE,
            actor_id=actor_id,
            outcome=f"purged {to_purge} row(s)",
            at=now,
            parameters={
                "purged": to_purge,
                "through_id": through_id,
                "through_hash": through_hash,
                "expired_before": now.isoformat(),
                "kept_expired": kept_expired,
            },
            justification=reason,
            retain_until=now + retention,
        )
        normalise(event)
        event.chain_version = CURRENT
        event.prev_hash = prev
        event.hash = chain_hash(prev, event)
        row = audit_row(event)
        session.add(row)
        session.flush()
        audit_id = row.id
        purged = 0
        if through_id is not None and through_hash is not None:
            if postgres:
                purged = int(
                    session.execute(
                        text("SELECT aiops_purge_audit(:through)"), {"through": through_id}
                    ).scalar_one()
                )
            else:
                res = session.execute(delete(AuditRow).where(col(AuditRow.id) <= through_id))
                purged = int(res.rowcount)  # type: ignore[attr-defined]
            if purged != to_purge:
                session.rollback()
                raise RuntimeError(
                    f"purge removed {purged} rows where {to_purge} were counted; nothing purged"
                )
            session.add(
                AuditCheckpointRow(
                    kind=PURGED,
                    last_id=through_id,
                    last_hash=through_hash,
                    rows=purged,
                    at=now,
                    audit_id=audit_id,
                )
            )
        session.commit()
        return PurgeResult(
            purged=purged,
            through_id=through_id,
            through_hash=through_hash,
            kept_expired=kept_expired,
            audit_id=audit_id,
        )


# -- the outside witness ------------------------------------------------------------------


class Witness(Protocol):
    """Where verification heads are kept outside the database (the `aiops-audit` log)."""

    def write_checkpoint(
        self, *, head_id: int, head_hash: str, rows: int, at: datetime, full: bool
    ) -> None: ...


class LoggedHead(Protocol):
    @property
    def head_id(self) -> int: ...

    @property
    def head_hash(self) -> str: ...

    @property
    def at(self) -> str | None: ...


def witness(result: VerifyResult, sink: Witness, *, at: datetime, full: bool) -> bool:
    """Write a successful verify's head to the witness; False when there was nothing to
    write (an empty chain, or a broken one)."""
    if not result.ok or result.head_id is None:
        return False
    sink.write_checkpoint(
        head_id=result.head_id, head_hash=result.head_hash, rows=result.checked, at=at, full=full
    )
    return True


@dataclass(frozen=True)
class LogComparison:
    ok: bool
    compared: int  # logged heads checked against the table
    skipped: int  # logged heads at or before a purge anchor (removed past retention)
    newest: int | None  # the newest logged head id
    table_head: int | None
    problem: ChainProblem | None = None

    def message(self) -> str:
        if self.problem:
            return f"audit table does not match the aiops-audit log: {self.problem.detail}"
        if not self.compared:
            return (
                "the aiops-audit log holds no checkpoint after the purge anchor: compared nothing"
            )
        return (
            f"audit table matches the aiops-audit log: {self.compared} checkpoint(s) compared,"
            f" newest row {self.newest}; table head row {self.table_head}"
        )


def compare_with_log(engine: Engine, logged: Sequence[LoggedHead]) -> LogComparison:
    """Each head the log witnessed must still be in the table with the same hash, and the
    table must not end before the newest one: else rows were cut from the end (and maybe
    forged ones appended after). Heads at or before the purge anchor were removed past
    their retention and are skipped."""
    with Session(engine) as session:
        anchor = _latest(session, PURGED)
        floor = anchor.last_id if anchor is not None else 0
        table_head = session.exec(select(func.max(AuditRow.id))).one()
        compared = skipped = 0
        newest: int | None = None
        for head in sorted(logged, key=lambda h: h.head_id, reverse=True):
            if head.head_id <= floor:
                skipped += 1
                continue
            newest = head.head_id if newest is None else newest
            compared += 1
            row = session.get(AuditRow, head.head_id)
            when = f" (verified {head.at})" if head.at else ""
            if row is None:
                end = f"the table ends at row {table_head}" if table_head else "the table is empty"
                problem = ChainProblem(
                    "deleted",
                    head.head_id,
                    f"row {head.head_id}{when} is in the log but not in the table; {end}:"
                    " the newest rows were cut",
                )
            elif row.hash != head.head_hash:
                problem = ChainProblem(
                    "edited",
                    head.head_id,
                    f"row {head.head_id}{when} has hash {row.hash[:16]}… in the table but"
                    f" {head.head_hash[:16]}… in the log: rows up to it were rewritten",
                )
            else:
                continue
            return LogComparison(False, compared, skipped, newest, table_head, problem)
        return LogComparison(True, compared, skipped, newest, table_head)
