"""`aiops-bot`: serve, console, manifest, db, audit, redact, digest, config."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import Settings, SettingsError
from commands.config import ConfigError

if TYPE_CHECKING:
    from commands.config import Config


class UsageError(ValueError):
    """A command-line value that cannot be used: one line on stderr, exit 2."""


def _since(text: str | None, tz: tzinfo) -> datetime | None:
    """`--since` / `--until`: a duration back from now (`7d`, `1h30m`: the one duration
    grammar), or a date or date-time (`2026-11-01`, `2026-11-01T09:00`, with or without
    an offset; without one it is in the config's `timezone`). None when not given."""
    if not text:
        return None
    from commands.durations import FORMS, DurationError, parse_duration

    if text[:4].isdigit() and "-" in text:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"`{text}` is not a date or date-time: write e.g. 2026-11-01 or"
                " 2026-11-01T09:00 (in the config's timezone), or a duration"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.astimezone(UTC)
    try:
        return datetime.now(UTC) - parse_duration(text)
    except DurationError:
        raise UsageError(
            f"`{text}` is neither a duration nor a date: write e.g. {FORMS}, or 2026-11-01"
        ) from None


def _person(config: Config, ref: str) -> str:
    """`--person`: a config name (`bob`, `@bob`) or a Slack user id (kept as is: the audit
    names people who have since left the config). Anything else is refused with the
    closest names, rather than read as no filter at all."""
    found = config.resolve_person(ref)
    if found is not None:
        return found
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", ref):
        return ref
    from commands.messages import did_you_mean
    from commands.text import outbound

    people = ", ".join(config.people) or "none"
    raise UsageError(  # what was typed is echoed masked, as the console does
        f"--person: unknown person `{outbound(ref)}`"
        f"{did_you_mean(ref.lstrip('@'), config.people)} (people: {people}; or a Slack user id)"
    )


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from bot.serve.server import serve
    from bot.wiring import checked_config

    config = checked_config(settings)
    if config.platform == "sandbox" and settings.real_slack and not config.allow_sandbox:
        raise ConfigError(
            f"{config.source}: platform: `sandbox` with real Slack credentials would answer a"
            ' real workspace from simulated endpoints; set `platform = "vertex"`, or'
            " `allow_sandbox = true` to mean it"
        )
    serve(settings)
    return 0


def full_check(path: Path) -> Config:
    """Everything read from the file at start, checked now: the schema (every table), the
    tables re-read later (`[canary]`, `[digests]`, `[cost]`) and `[vertex]` on that
    platform."""
    from commands.canary.model import validate
    from commands.config import load_config
    from commands.cost.settings import cost_settings
    from commands.digests.schedule import digest_settings

    config = load_config(path)
    validate(config)
    digest_settings(config)
    cost_settings(config)
    if config.platform == "vertex":
        from bot.platforms.vertex_settings import parse_vertex_settings

        parse_vertex_settings(config)
    return config


def cmd_config_check(
    settings: Settings | None, args: argparse.Namespace, env_problems: Sequence[str] = ()
) -> int:
    """Every problem at once, the environment's (`env_problems`, when the settings could
    not be read) and the file's; exit 1 when there is any."""
    import os

    from bot.settings import BUNDLED_CONFIG

    if args.config:
        path = Path(args.config)
    elif settings is not None:
        path = settings.config_path
    else:
        path = Path(os.environ.get("AIOPS_CONFIG") or BUNDLED_CONFIG)
    problems = [f"environment: {line}" for line in env_problems]
    config = None
    try:
        config = full_check(path)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        for line in problems:
            print(line)
        n = len(problems)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    assert config is not None
    print(
        f"{path}: ok ({len(config.environments)} environments, {len(config.endpoints)}"
        f" endpoints, platform {config.platform})"
    )
    for note in [*deprecation_notes(config), *clock_notes(config)]:
        print(f"{path}: note: {note}")
    return 0


def deprecation_notes(config: Config) -> list[str]:
    """Keys still read but on their way out: what to write instead."""
    notes = []
    if "daily_budget_usd" in config.raw.get("thresholds", {}):
        envs = [
            name
            for name, env in config.raw.get("environments", {}).items()
            if "daily_budget_usd" not in env
        ]
        notes.append(
            "[thresholds] daily_budget_usd is deprecated: set `daily_budget_usd` in each"
            " [environments.<name>] table"
            + (f" (it is still the budget of {', '.join(envs)})" if envs else " (none uses it)")
        )
    # A zero budget is allowed (an environment that should cost nothing) but every cost
    # then crosses every `[cost] budget_alerts` percentage: said, so it is not a typo.
    for name, env in config.environments.items():
        if env.daily_budget_usd == 0:
            notes.append(
                f"[environments.{name}] daily_budget_usd is 0: any billed cost is over budget"
                " and crosses every budget alert; set the environment's real budget unless it"
                " should cost nothing"
            )
    return notes


def clock_notes(config: Config, today: date | None = None) -> list[str]:
    """Digest times that the clocks skip or repeat in the coming year, and when they run
    then (the daylight-saving rule of the README): worth knowing, not an error."""
    from commands.config_schema import clock_changes
    from commands.digests.schedule import DigestKind, digest_settings, local_time

    start = today or datetime.now(UTC).date()
    notes = []
    for env, sched in digest_settings(config).schedules.items():
        for kind in DigestKind:
            at = sched.at(kind)
            if at is None:
                continue
            for day, trouble in clock_changes(sched.timezone, at, start):
                if day.weekday() not in sched.days:
                    continue  # no digest that day
                runs = local_time(day, at, sched.timezone)
                when = (
                    f"it runs at {runs.strftime('%H:%M %Z')}"
                    if trouble == "does not exist"
                    else f"it runs once, at the first ({runs.strftime('%H:%M %Z')})"
                )
                notes.append(
                    f"[digests] {env} {kind.value} {at.strftime('%H:%M')} {trouble} on"
                    f" {day.isoformat()} in {sched.timezone.key}; {when}"
                )
    return notes


def cmd_config_schema(_: Settings, __: argparse.Namespace) -> int:
    from commands.config_schema import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=False))
    return 0


def cmd_config_docs(_: Settings, __: argparse.Namespace) -> int:
    from commands.config_schema import markdown

    print(markdown(), end="")
    return 0


def cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.console import run_console

    return run_console(settings, args.user, args.command or [], args.json)


def cmd_manifest(_: Settings, args: argparse.Namespace) -> int:
    from bot.slack.manifest import manifest

    print(json.dumps(manifest(args.url, socket_mode=args.socket_mode), indent=2))
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.db import make_engine, upgrade

    engine = make_engine(settings.db_url)
    upgrade(engine, args.revision)
    print(f"database at revision {args.revision} ({engine.dialect.name})")
    return 0


def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.sql_store import SqlStore
    from bot.wiring import open_database
    from commands.config import load_config
    from commands.ports import AuditQuery

    config = load_config(settings.config_path)
    store = SqlStore(open_database(settings))
    query = AuditQuery(
        since=_since(args.since, config.timezone),
        until=_since(args.until, config.timezone),
        endpoint=args.endpoint,
        environment=args.environment,
        actor_id=_person(config, args.person) if args.person else None,
    )
    events = store.audit(query)
    from bot.cli.compliance import Authorisations
    from bot.store.people import PersonDirectory

    authorised = Authorisations(store)  # the approval that authorised each row's change
    people = PersonDirectory(store.engine)  # names live apart from the audit (erasable)
    fields = [
        "id",
        "at",
        "at_local",
        "actor_id",
        "actor",
        "action",
        "environment",
        "target",
        "change_id",
        "outcome",
        "justification",
        "parameters",
        "request_id",
        "retain_until",
        "prev_hash",
        "hash",
        "chain_version",
        "authorised_by",
        "authorised_at",
        "ticket",
    ]

    def row(e: Any) -> dict[str, Any]:
        return {
            "id": e.id,
            # UTC to the microsecond: the exact text the row's hash covers (chain version
            # 2, docs/audit-verification.md); tools/verify_audit.py checks this file.
            "at": e.at.isoformat(timespec="microseconds"),
            "at_local": e.at.astimezone(config.timezone).isoformat(),
            "actor_id": e.actor_id,
            "actor": people.name(e.actor_id) or config.display_name(e.actor_id),
            "action": e.action,
            "environment": e.environment,
            "target": e.target,
            "change_id": e.change_id,
            "outcome": e.outcome,
            "justification": e.justification,
            "parameters": json.dumps(e.parameters, sort_keys=True),
            "request_id": e.request_id,
            "retain_until": (
                e.retain_until.isoformat(timespec="microseconds") if e.retain_until else None
            ),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
            "chain_version": e.chain_version,
            **authorised(e.change_id),
        }

    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        for e in events:
            writer.writerow(row(e))
    else:
        for e in events:
            print(json.dumps(row(e)))
    return 0


def cmd_digest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.digest import run_digest

    return run_digest(settings, args)


def cmd_redact(_: Settings, __: argparse.Namespace) -> int:
    from commands import redaction

    stream = getattr(redaction, "redact_stream", None)
    if stream is not None:
        stream(sys.stdin, sys.stdout)
        return 0
    for line in sys.stdin:
        sys.stdout.write(redaction.redact(line))
        sys.stdout.flush()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiops-bot", description="ChatOps for models on Vertex AI.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser(
        "serve", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN, else HTTP on PORT)"
    )
    s.set_defaults(fn=cmd_serve)
    c = sub.add_parser("console", help="the bot in a terminal, on the embedded default")
    c.add_argument("--user", default="alice", help="who you are (a config name or Slack id)")
    c.add_argument("-c", "--command", action="append", help="run this line, then exit (repeatable)")
    c.add_argument("--json", action="store_true", help="print each reply's text and blocks as JSON")
    c.set_defaults(fn=cmd_console)
    m = sub.add_parser("manifest", help="print the Slack app manifest")
    m.add_argument(
        "--url", default="https://aiops-bot.example.com", help="the bot's public base URL"
    )
    m.add_argument("--socket-mode", action="store_true")
    m.set_defaults(fn=cmd_manifest)
    d = sub.add_parser("db", help="database migrations")
    dsub = d.add_subparsers(dest="dbcmd", required=True)
    up = dsub.add_parser("upgrade", help="run migrations (SQLite is migrated on start anyway)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(fn=cmd_db)
    a = sub.add_parser("audit", help="audit trail")
    asub = a.add_subparsers(dest="auditcmd", required=True)
    ex = asub.add_parser("export", help="print audit rows as CSV or JSON Lines")
    ex.add_argument("--since", help="ISO time or a duration like 24h, 7d")
    ex.add_argument("--until", help="ISO time or a duration ago")
    ex.add_argument("--endpoint")
    ex.add_argument("--environment")
    ex.add_argument("--person", help="a config name or Slack id")
    ex.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    ex.set_defaults(fn=cmd_audit_export)
    from bot.cli.compliance import register as register_compliance

    register_compliance(asub, sub)  # audit verify | purge | dossier, person erase
    from bot.cli.respond import register as register_respond

    register_respond(sub)  # incident review
    r = sub.add_parser("redact", help="mask PII in standard input, line by line")
    r.set_defaults(fn=cmd_redact)
    g = sub.add_parser("digest", help="render the morning or end-of-day digest (or post it)")
    g.add_argument("kind", choices=["morning", "eod"])
    g.add_argument("--environment", help="one environment (default: every digest environment)")
    g.add_argument("--post", action="store_true", help="post it to Slack (needs SLACK_BOT_TOKEN)")
    g.add_argument("--json", action="store_true", help="print the Block Kit JSON instead of text")
    g.add_argument("--chart", metavar="PNG", help="also write the morning chart to this file")
    g.set_defaults(fn=cmd_digest)
    cfg = sub.add_parser("config", help="check the config, or print its JSON Schema / key tables")
    csub = cfg.add_subparsers(dest="configcmd", required=True)
    ck = csub.add_parser("check", help="list every problem of a config (exit 0 ok, 1 problems)")
    ck.add_argument("--config", help="the TOML file (default: AIOPS_CONFIG or the bundled example)")
    ck.set_defaults(fn=cmd_config_check)
    cs = csub.add_parser("schema", help="print the JSON Schema of the TOML (for editors)")
    cs.set_defaults(fn=cmd_config_schema)
    cd = csub.add_parser("docs", help="print the Markdown key tables (README's Configuration)")
    cd.set_defaults(fn=cmd_config_docs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from bot.secrets import SecretError, resolve_secrets

    try:
        resolve_secrets()
    except SecretError as exc:
        print(f"aiops-bot: {exc}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        if getattr(args, "fn", None) == cmd_config_check:  # it lists every problem at once
            return int(cmd_config_check(None, args, tuple(exc.problems)))
        for line in exc.problems:
            print(f"aiops-bot: environment: {line}", file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    # a person at the console reads words; everything else logs JSON lines
    setup_logging(settings.log_level, words=getattr(args, "fn", None) is cmd_console)
    try:
        return int(args.fn(settings, args))
    except ConfigError as exc:
        n = len(exc.problems)
        print(
            f"aiops-bot: the configuration is invalid ({n} problem{'s' if n != 1 else ''}):",
            file=sys.stderr,
        )
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"aiops-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.store.db import NotMigrated
        from bot.wiring import ServeError

        if isinstance(exc, ServeError | NotMigrated):
            print(f"aiops-bot: {exc}", file=sys.stderr)
            return 2
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):  # one line, not a driver's traceback
            why = (str(exc.orig).strip().splitlines() or ["no reason given"])[0]
            print(
                f"aiops-bot: the database does not answer ({why}); check DATABASE_URL and"
                " that PostgreSQL is up",
                file=sys.stderr,
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
