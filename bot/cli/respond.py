"""`aiops-bot incident review INC-N [--format md|json] [--output FILE] [--full]`: the
post-incident review draft, read from the audit (`commands.incidents.review`), as
`aiops-bot audit dossier` prints a change's evidence.

The config and database are the bot's own (`AIOPS_CONFIG`, `DATABASE_URL` or the SQLite
file under `AIOPS_DATA_DIR`). The audit chain is verified first (from the last checkpoint;
`--full`: every row) and its result is part of the draft, since every event in it names
the audit row it was read from. Exit codes: 0 the draft was written and the chain is
intact; 1 the incident is unknown (the closest ids are named) or the chain is broken (the
draft is still written, saying so); 2 the config or database cannot be used (as every
subcommand)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.cli.compliance import _open
from bot.settings import Settings


def cmd_incident_review(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.audit_chain import verify
    from bot.store.canary_store import SqlCanaryStore
    from bot.store.incident_store import SqlIncidentStore
    from bot.store.people import PersonDirectory
    from bot.store.sql_store import SqlStore
    from commands.errors import Refusal
    from commands.incidents.review import render_review, review_for

    config, engine = _open(settings)
    try:
        review = review_for(
            SqlStore(engine),
            SqlIncidentStore(engine),
            config,
            args.incident,
            canary=SqlCanaryStore(engine),
            people=PersonDirectory(engine),
        )
    except Refusal as exc:
        print(f"aiops-bot: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"aiops-bot: {exc.hint}", file=sys.stderr)
        return 1
    result = verify(engine, from_checkpoint=not args.full, record=False)
    review["chain"] = {
        "ok": result.ok,
        "message": result.message(),
        "head_id": result.head_id,
        "head_hash": result.head_hash,
        "from": result.started_from,
    }
    text = render_review(review, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    if not result.ok:
        print(f"aiops-bot: {result.message()}", file=sys.stderr)
        return 1
    return 0


def register(root_sub: Any) -> None:
    """Adds `aiops-bot incident review`."""
    incident = root_sub.add_parser("incident", help="incidents (respond)")
    isub = incident.add_subparsers(dest="incidentcmd", required=True)
    r = isub.add_parser(
        "review", help="the post-incident review draft of one incident, from the audit"
    )
    r.add_argument("incident", help="an incident id, e.g. INC-3")
    r.add_argument("--format", choices=["md", "json"], default="md")
    r.add_argument("--output", help="write to this file instead of standard output")
    r.add_argument("--full", action="store_true", help="verify the whole audit chain first")
    r.set_defaults(fn=cmd_incident_review)
