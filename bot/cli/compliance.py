"""`aiops-bot audit verify | purge | dossier` and `aiops-bot person erase`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from bot.settings import Settings
from commands.audit import AuditAction
from commands.config import Config
from commands.ports import Store


def _open(settings: Settings) -> tuple[Config, Engine]:
    from bot.wiring import open_database
    from commands.config import load_config

    return load_config(settings.config_path), open_database(settings)


def _auditor(config: Config, engine: Engine) -> Any:
    from bot.store.sql_store import SqlStore
    from commands.audit import Auditor

    return Auditor(SqlStore(engine), lambda: datetime.now(UTC), retention=config.audit_retention)


def _witness(config: Config) -> Any:
    """The `aiops-audit` log on Google Cloud (the platform `vertex`), else None."""
    if config.platform != "vertex":
        return None
    import os

    from bot.gcp_logging import AuditLogSink

    project = (
        config.raw.get("vertex", {}).get("logging_project")
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
        or next(iter(config.environments.values())).project
    )
    return AuditLogSink(project=str(project))


def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.audit_chain import compare_with_log, verify, witness

    config, engine = _open(settings)
    result = verify(engine, from_checkpoint=not args.full, record=not args.no_record)
    print(result.message(), file=sys.stdout if result.ok else sys.stderr)
    sink = _witness(config) if result.ok and (not args.no_record or args.against_log) else None
    if sink is not None and not args.no_record:
        try:  # the head, witnessed outside the database
            witness(result, sink, at=datetime.now(UTC), full=bool(args.full))
        except Exception as exc:
            print(
                f"aiops-bot: checkpoint not written to the aiops-audit log: {exc}", file=sys.stderr
            )
    if not result.ok:
        return 1
    if args.against_log:
        if sink is None:
            print(
                "aiops-bot: --against-log needs the platform `vertex` (the aiops-audit log)",
                file=sys.stderr,
            )
            return 2
        try:
            logged = sink.checkpoints(resource=args.log_view)
        except Exception as exc:
            print(f"aiops-bot: cannot read the aiops-audit log: {exc}", file=sys.stderr)
            return 2
        comparison = compare_with_log(engine, logged)
        print(comparison.message(), file=sys.stdout if comparison.ok else sys.stderr)
        return 0 if comparison.ok else 1
    return 0


def cmd_audit_purge(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.audit_chain import purge

    config, engine = _open(settings)
    result = purge(
        engine,
        now=datetime.now(UTC),
        actor_id=args.by or "cli",
        retention=config.audit_retention,
        reason=args.reason,
    )
    through = f" (rows up to {result.through_id})" if result.through_id else ""
    print(
        f"purged {result.purged} audit row(s) past retain_until{through};"
        f" recorded as audit row {result.audit_id}"
        + (
            f"; {result.kept_expired} expired row(s) wait behind an older retained row"
            if result.kept_expired
            else ""
        )
    )
    return 0


def cmd_audit_dossier(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.audit_chain import verify
    from bot.store.people import PersonDirectory
    from bot.store.sql_store import SqlStore, chain_hash
    from commands.errors import Refusal
    from commands.ports import AuditEvent
    from commands.reports.dossier import build, to_json, to_markdown

    config, engine = _open(settings)

    def row_ok(e: AuditEvent) -> bool:
        return e.prev_hash is not None and chain_hash(e.prev_hash, e) == e.hash

    result = verify(engine, from_checkpoint=not args.full, record=False)
    chain = {
        "ok": result.ok,
        "message": result.message(),
        "head_id": result.head_id,
        "head_hash": result.head_hash,
        "from": result.started_from,
    }
    try:
        data = build(
            SqlStore(engine),
            config,
            args.change,
            people=PersonDirectory(engine),
            row_ok=row_ok,
            chain=chain,
        )
    except Refusal as exc:
        print(f"aiops-bot: {exc.message}", file=sys.stderr)
        return 1
    text = to_json(data) if args.format == "json" else to_markdown(data)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0 if result.ok else 1


def cmd_person_erase(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.people import PersonDirectory

    config, engine = _open(settings)
    now = datetime.now(UTC)
    known = PersonDirectory(engine).erase(args.slack_id, now)
    _auditor(config, engine).record(
        AuditAction.PERSON_ERASED,
        args.by or "cli",
        "erased" if known else "erased (never seen; kept from being collected)",
        target=args.slack_id,
        justification=args.reason,
    )
    print(
        f"erased the name of {args.slack_id}; audit rows keep only the Slack id"
        if known
        else f"{args.slack_id} had no stored name; it will not be collected from now on"
    )
    if config.person_by_id(args.slack_id):
        print(
            "note: this id is also named in the config's [people]; remove it there too",
            file=sys.stderr,
        )
    return 0


class Authorisations:
    """Who authorised a change, for export rows (one lookup per change)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, dict[str, str | None]] = {}

    def __call__(self, change_id: str | None) -> dict[str, str | None]:
        empty: dict[str, str | None] = {
            "authorised_by": None,
            "authorised_at": None,
            "ticket": None,
        }
        if not change_id:
            return empty
        if change_id not in self._cache:
            change = self.store.get_change(change_id)
            if change is None:
                self._cache[change_id] = empty
            else:
                approvers = [a for a in self.store.approvals(change_id) if a.decision == "approve"]
                by: str | None
                at: str | None
                if approvers:
                    by = ",".join(a.approver_id for a in approvers)
                    at = max(a.at for a in approvers).isoformat()
                elif change.decided_by and change.decided_by.startswith("policy:"):
                    by = change.decided_by
                    at = change.decided_at.isoformat() if change.decided_at else None
                else:
                    by, at = None, None
                self._cache[change_id] = {
                    "authorised_by": by,
                    "authorised_at": at,
                    "ticket": change.plan.ticket,
                }
        return self._cache[change_id]


def register(audit_sub: Any, root_sub: Any) -> None:
    """Adds the subcommands to `aiops-bot audit …` and `aiops-bot person …`."""
    v = audit_sub.add_parser(
        "verify", help="walk the audit hash chain; exit 1 naming the first bad row"
    )
    v.add_argument("--full", action="store_true", help="re-read every row, not only new ones")
    v.add_argument(
        "--no-record", action="store_true", help="do not append a verification checkpoint"
    )
    v.add_argument(
        "--against-log",
        action="store_true",
        help="also compare the table with the checkpoints in the aiops-audit log",
    )
    v.add_argument(
        "--log-view",
        help="read checkpoints from this log view (projects/P/locations/L/buckets/B/views/V)",
    )
    v.set_defaults(fn=cmd_audit_verify)
    p = audit_sub.add_parser("purge", help="remove audit rows past retain_until (audited)")
    p.add_argument("--by", help="the Slack id of the person who authorised the purge")
    p.add_argument("--reason", help="why (kept in the purge's own audit row)")
    p.set_defaults(fn=cmd_audit_purge)
    d = audit_sub.add_parser("dossier", help="evidence for a model-risk review of one change")
    d.add_argument("change", help="a change id, e.g. CHG-12")
    d.add_argument("--format", choices=["md", "json"], default="md")
    d.add_argument("--output", help="write to this file instead of standard output")
    d.add_argument("--full", action="store_true", help="verify the whole chain first")
    d.set_defaults(fn=cmd_audit_dossier)
    person = root_sub.add_parser("person", help="the person directory (Slack id → name)")
    psub = person.add_subparsers(dest="personcmd", required=True)
    e = psub.add_parser("erase", help="erase a person's name (privacy request); audited")
    e.add_argument("slack_id")
    e.add_argument("--by", help="the Slack id of the person handling the request")
    e.add_argument("--reason", help="e.g. the privacy request's reference")
    e.set_defaults(fn=cmd_person_erase)
