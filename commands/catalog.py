"""The commands the bot answers: one place for their usage, help, buttons and manifest
entries. `commands.service.HANDLERS` holds one handler per entry here (a test holds the
two equal); the Slack edge registers its buttons from `BUTTONS`."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CommandSpec:
    name: str  # `/deploy`
    summary: str
    usage: str
    options: tuple[str, ...]  # allowed `key=` names
    positionals: int
    examples: tuple[str, ...] = ()
    details: str = ""
    # A Block Kit button runs this subcommand: its `action_id` is the subcommand's name and
    # its `value` the argument; "view" buttons send the value `all` for "no argument".
    button: str | None = None  # None | "decision" | "view"


SLASH_COMMANDS: dict[str, CommandSpec] = {
    "/deploy": CommandSpec(
        "/deploy",
        "Deploy a model version next to the serving one as a canary",
        '/deploy <endpoint> <model>@<version> [canary=N] [reason="…"] [ticket=CHG-N]'
        ' [at="YYYY-MM-DD HH:MM"] [break_glass=true]',
        ("canary", "reason", "ticket", "break_glass", "at"),
        2,
        ('/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"',),
        "The canary takes N % of traffic (default 10, 1–100); the serving version stays"
        " deployed so a rollback is one step. Production needs a reason and an approval."
        " `at=` schedules it in the configured zone: it may be approved before then and runs"
        " at its time only if approved and its endpoint is as planned.",
    ),
    "/promote": CommandSpec(
        "/promote",
        "Move the canary's traffic share; at 100 % the replaced model is undeployed",
        '/promote <endpoint> [to=N | steps=10,25,50,100] [force=true] [reason="…"]'
        ' [ticket=CHG-N] [at="YYYY-MM-DD HH:MM"] [break_glass=true]',
        ("to", "reason", "ticket", "break_glass", "at", "steps", "force"),
        1,
        ("/promote loan-assessor to=50", "/promote loan-assessor"),
        "`to` defaults to 100 (the replaced version is then undeployed; a rollback redeploys it)."
        " `at=` schedules it, as for `/deploy`."
        " `steps=` (or `steps=default` for the environment's plan) moves the canary one step"
        ' after each "no regression" verdict at its current share. Shows the canary analysis so'
        ' far; in prod a canary without "no regression" is refused unless `force=true reason="…"`'
        " (audited, flagged in the next digest).",
    ),
    "/rollback": CommandSpec(
        "/rollback",
        "Restore the last stable split and undeploy the canary",
        '/rollback <endpoint> [reason="…"] [ticket=CHG-N] [break_glass=true]',
        ("reason", "ticket", "break_glass"),
        1,
        ('/rollback loan-assessor reason="P95 above 2 s since 14:05"',),
        "Mitigation first: in production a rollback runs without waiting for a second person"
        " (unless the config requires one), and it is announced in the approvals channel."
        " Where the environment requires a reason (prod), the rollback needs one too.",
    ),
    "/aiops": CommandSpec(
        "/aiops",
        "Status, changes, audit, approvals and help",
        "/aiops <subcommand> …",  # replaced below by the list of subcommands
        (),
        0,
        ("/aiops status", "/aiops audit loan-assessor since=7d", "/aiops approve CHG-12"),
    ),
}

AIOPS_SUBCOMMANDS: dict[str, CommandSpec] = {
    "status": CommandSpec(
        "status",
        "Each endpoint's versions, traffic, health and open change; breaches flagged",
        "/aiops status [endpoint] [page=N]",
        ("page",),
        1,
        details="Breaching endpoints first, then the rest worst-first, ten a page;"
        " `page=2` shows the next ten.",
        button="view",
    ),
    "changes": CommandSpec(
        "changes",
        "Open and recent changes",
        "/aiops changes [endpoint] [limit=N]",
        ("limit",),
        1,
        button="view",
    ),
    "audit": CommandSpec(
        "audit",
        "Who did what, when and why",
        "/aiops audit [endpoint] [since=24h] [change=CHG-N]",
        ("since", "change", "limit"),
        1,
    ),
    "approve": CommandSpec(
        "approve",
        "Approve a pending change (the Approve button's typed form)",
        "/aiops approve <CHG-N|endpoint>",
        (),
        1,
        ("/aiops approve loan-assessor", "/aiops approve CHG-12"),
        "With an endpoint it approves nothing: it shows the plan of the endpoint's pending"
        " change and the id to type. `/aiops approve CHG-N` approves that change only while"
        " it is still its endpoint's pending change, bound to the plan it shows.",
        button="decision",
    ),
    "reject": CommandSpec(
        "reject",
        "Reject a pending change (the Reject button's typed form)",
        '/aiops reject <CHG-N|endpoint> [reason="…"]',
        ("reason",),
        1,
        ('/aiops reject CHG-12 reason="wrong version"',),
        "As `approve`: an endpoint shows the plan and the id to type; `CHG-N` rejects it.",
        button="decision",
    ),
    "cancel": CommandSpec(
        "cancel",
        "Cancel your own change before it runs",
        '/aiops cancel <change|endpoint> [reason="…"]',
        ("reason",),
        1,
    ),
    "digest": CommandSpec(
        "digest",
        "Post the morning or end-of-day digest now, to the digest channel",
        "/aiops digest <morning|eod> [environment]",
        (),
        2,
    ),
    "canary": CommandSpec(
        "canary",
        "A canary's analysis so far, after one check run now",
        "/aiops canary <endpoint>",
        (),
        1,
    ),
    "pause": CommandSpec(
        "pause",
        "Pause a canary's analysis: no scheduled checks, steps or automatic rollback",
        '/aiops pause <endpoint> [reason="…"]',
        ("reason",),
        1,
    ),
    "resume": CommandSpec(
        "resume",
        "Resume a paused canary's analysis",
        '/aiops resume <endpoint> [reason="…"]',
        ("reason",),
        1,
    ),
    "canary-rollback": CommandSpec(
        "canary-rollback",
        "Roll back a canary the analysis flagged (its Rollback button's typed form)",
        '/aiops canary-rollback <endpoint> [reason="…"]',
        ("reason",),
        1,
        button="decision",
    ),
    "canary-promote": CommandSpec(
        "canary-promote",
        "Promote a flagged canary anyway (an approver; audited as a forced promote)",
        '/aiops canary-promote <endpoint> [reason="…"]',
        ("reason",),
        1,
        button="decision",
    ),
    # `scale` and `undeploy`: the cost branch draws their buttons in the morning digest;
    # the lifecycle branch owns these entries and their handlers (take its version on merge).
    "scale": CommandSpec(
        "scale",
        "Change a deployed model's replicas, as a change (approval as configured)",
        '/aiops scale <endpoint> [version] min=N max=M [reason="…"]',
        ("min", "max", "reason", "ticket"),
        2,
        button="decision",
    ),
    "undeploy": CommandSpec(
        "undeploy",
        "Undeploy a model that serves 0 % of traffic, as a change",
        '/aiops undeploy <endpoint> <version> [reason="…"]',
        ("reason", "ticket"),
        2,
        button="decision",
    ),
    "models": CommandSpec(
        "models",
        "Each model version: aliases, where it serves, card, lineage, evaluation, validation",
        "/aiops models [model|endpoint]",
        (),
        1,
        ("/aiops models", "/aiops models gemma-3-1b-it"),
        "From the model registry (Vertex AI's Model Registry, or the sandbox's cards in the"
        " config), newest version first: its aliases (the serving alias in bold), where it"
        ' serves and at what share, its model card summary, training lineage ("unknown"'
        " where the registry does not know it), latest evaluation metrics and model-risk"
        " validation. Environments with `require_validation` take only approved versions.",
    ),
    "help": CommandSpec("help", "This help", "/aiops help [command]", (), 1),
}


SLASH_COMMANDS["/aiops"] = replace(
    SLASH_COMMANDS["/aiops"], usage="/aiops <" + "|".join(AIOPS_SUBCOMMANDS) + "> …"
)

# Block Kit buttons: action_id → what it runs (`/aiops <action_id> <value>`).
BUTTONS: dict[str, str] = {
    name: spec.button for name, spec in AIOPS_SUBCOMMANDS.items() if spec.button is not None
}
