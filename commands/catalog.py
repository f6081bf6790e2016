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
    # its `value` the argument; "view" buttons send the value `all` for "no argument";
    # "request" buttons send the arguments of a change request (a request, never an
    # action: the usual policy and approval apply to whoever clicks).
    button: str | None = None  # None | "decision" | "view" | "request"
    # Buttons of the subcommand's verbs: (verb, kind). Their `action_id` is
    # `<subcommand>.<verb>` (unique within a message), their `value` the argument: a click
    # runs `/aiops <subcommand> <verb> <value>` ("verb"), or opens a form first whose
    # submission is that typed command ("form", `bot/slack/incident_forms.py`).
    verb_buttons: tuple[tuple[str, str], ...] = ()


SLASH_COMMANDS: dict[str, CommandSpec] = {
    "/deploy": CommandSpec(
        "/deploy",
        "Deploy a model version: as a canary, blue/green, or replacing the serving one",
        "/deploy <endpoint> <model>@<version> [strategy=canary|blue-green|replace]"
        ' [canary=N] [reason="…"] [ticket=CHG-N] [at="YYYY-MM-DD HH:MM"] [break_glass=true]',
        ("canary", "strategy", "reason", "ticket", "break_glass", "at"),
        2,
        (
            '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"',
            "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 strategy=blue-green",
        ),
        "`strategy=canary` (the default): the canary takes N % of traffic (default 10, 1–100)"
        " beside the serving version, judged by the canary analysis; a rollback is one step."
        " `strategy=blue-green`: deployed at 0 %, switched to 100 % in one traffic update once"
        " ready; the old version stays deployed and ready until `/promote` undeploys it or"
        " `/rollback` switches back in one update. `strategy=replace`: deployed at 100 %; the"
        " old version is undeployed once the new one has been healthy for `[strategies]"
        " replace_soak` (default 10m), else traffic goes back to it. The plan shows traffic"
        " and cost a day. Production needs a reason and an approval."
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
        "/aiops changes [endpoint|model] [limit=N]",
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
    "incident": CommandSpec(
        "incident",
        "Declare and run an incident: severity, roles, thread, mitigation, paging, resolution",
        "/aiops incident <declare|update|severity|ack|mitigated|resolve|rollback|pause|review|list|show> …",
        ("sev", "summary", "commander", "oncall", "alert", "reason", "cause"),
        3,
        (
            '/aiops incident declare loan-assessor sev=P1 summary="5xx since 14:05" oncall=@bob',
            '/aiops incident update INC-3 "rolled back; errors falling"',
            '/aiops incident severity INC-3 P2 reason="only retries affected"',
            "/aiops incident ack INC-3",
            "/aiops incident mitigated INC-3",
            '/aiops incident resolve INC-3 cause="1.3.0-rc1 tokenizer regression"',
            "/aiops incident review INC-3",
            "/aiops incident list all",
        ),
        '`declare [endpoint] sev=P1|P2|P3 summary="…" [commander=@x] [oncall=@y]'
        " [alert=ALERT-N]`: an `INC-N` with its own thread in the incidents channel; the"
        " severity suggested by the team's rules is shown (P1: a customer-facing production"
        " endpoint failing or breaching errors; P2: production degraded; P3: outside"
        " production), a person decides. P1 and P2 page the on-call."
        ' `update INC-N "…"` posts to its thread; `severity INC-N P2 [reason=…]`;'
        " `ack <INC-N|ALERT-N>`; `mitigated INC-N` (impact stopped);"
        ' `resolve INC-N cause="…"` (a root-cause line is required);'
        " `rollback <INC-N|ALERT-N>`, `pause INC-N` and `scale <INC-N|ALERT-N>` (one more"
        " replica for the serving version, a change approved as configured) mitigate"
        " through the usual change machinery, linked to the incident (every change on its endpoint while it is open"
        " is); `review INC-N` posts the post-incident review draft, drawn from the audit, in"
        " its thread (the Review button on a resolved incident); `list [all]`; `show INC-N`"
        " with its linked changes.",
        verb_buttons=(
            ("ack", "verb"),
            ("rollback", "verb"),
            ("pause", "verb"),
            ("scale", "verb"),
            ("declare", "form"),
            ("resolve", "form"),
            ("review", "verb"),
        ),
    ),
    "handoff": CommandSpec(
        "handoff",
        "Leave notes for the next on-call (the end-of-day digest carries them)",
        '/aiops handoff "…" [environment=prod]',
        ("environment",),
        1,
        ('/aiops handoff "INC-3 mitigated, root cause open; watch loan-assessor P95"',),
        "Stored and audited, masked like every free text.",
    ),
    "scale": CommandSpec(
        "scale",
        "Change a deployed model's min / max replicas (a change: planned, approved, audited)",
        '/aiops scale <endpoint> [version] [min=N] [max=M] [reason="…"] [ticket=CHG-N]'
        ' [at="YYYY-MM-DD HH:MM"] [break_glass=true]',
        ("min", "max", "reason", "ticket", "break_glass", "at"),
        2,
        (
            '/aiops scale loan-assessor 1.2.0 min=1 max=2 reason="quiet overnight"',
            "/aiops scale loan-assessor-stg max=1",
        ),
        "The version may be left out when one model is deployed. A bound left out keeps its"
        " value. The plan shows replicas and cost a day before → after; production needs an"
        " approval. `max=` is at most the endpoint's `max_replicas` in the config; `min=0`"
        " only where the platform lets that deployment scale to zero (`scale_to_zero`),"
        " otherwise it is refused saying why. Its button (action id `scale`) sends the value"
        ' `<endpoint> <version> min=N max=M [reason="…"]` (these same words, e.g.'
        ' `loan-assessor 1.2.0 min=1 max=2 reason="idle overnight"`; where the environment'
        " requires a reason, the value must carry one), as a request under the usual rules.",
        button="request",
    ),
    "undeploy": CommandSpec(
        "undeploy",
        "Remove a deployed model that serves 0 % (a change: planned, approved, audited)",
        '/aiops undeploy <endpoint> <version> [reason="…"] [ticket=CHG-N]'
        ' [at="YYYY-MM-DD HH:MM"] [break_glass=true] [force=true]',
        ("reason", "ticket", "break_glass", "at", "force"),
        2,
        ('/aiops undeploy loan-assessor 1.2.0 reason="left at 0 % after the switch"',),
        "Only a model with no traffic: one with a share is refused (move its traffic first"
        " with `/promote` or `/rollback`). The plan says what it saves a day; approval as the"
        " environment requires. Undeploying the version a blue/green switched from removes"
        " the only version to roll back to: the card warns, a later `/rollback` redeploys it,"
        " and while the serving version breaches `[thresholds]` it is refused unless"
        ' `force=true reason="…"`. Its button (action id `undeploy`) sends the value'
        ' `<endpoint> <version> [reason="…"]` (e.g. `loan-assessor 1.2.0 reason="at 0 %'
        ' since Monday"`), as a request under the usual rules.',
        button="request",
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
    "retrain": CommandSpec(
        "retrain",
        "Run a model's training pipeline (a change: planned, approved, audited)",
        '/aiops retrain <model|endpoint> [reason="…"] [ticket=CHG-N]',
        ("reason", "ticket"),
        1,
        ('/aiops retrain gemma-3-1b-it reason="drift 0.14 on loan-assessor since Monday"',),
        "Submits the model's training pipeline (`[models.<name>] retrain_template` with its"
        " `retrain_parameters`) as a Vertex AI pipeline job in the project and region of its"
        " `retrain_environment` (default: the strictest environment it serves in), under that"
        " environment's approval rules; the plan shows the pipeline, its parameters, where it"
        " runs, its estimated cost and the lineage of what serves now. The job is polled (a"
        " restart picks it up); the version it registers appears in `/aiops models` with"
        " validation pending. It holds only the model (one retrain at a time): deploys and"
        " rollbacks of its endpoints go on. Its button (action id `retrain`, in the digest's"
        ' drift line) sends the value `<model> reason="…"`, as a request under the usual rules.',
        button="request",
    ),
    "help": CommandSpec("help", "This help", "/aiops help [command]", (), 1),
}


SLASH_COMMANDS["/aiops"] = replace(
    SLASH_COMMANDS["/aiops"], usage="/aiops <" + "|".join(AIOPS_SUBCOMMANDS) + "> …"
)

# Block Kit buttons: action_id → its kind. `approve` runs `/aiops approve <value>`;
# `incident.ack` runs `/aiops incident ack <value>`; a "form" button opens its form.
BUTTONS: dict[str, str] = {
    name: spec.button for name, spec in AIOPS_SUBCOMMANDS.items() if spec.button is not None
} | {
    f"{name}.{verb}": kind
    for name, spec in AIOPS_SUBCOMMANDS.items()
    for verb, kind in spec.verb_buttons
}


def button_command(action_id: str) -> str:
    """The `/aiops` words a button's `action_id` stands for: `incident.ack` →
    `incident ack`."""
    return action_id.replace(".", " ")
