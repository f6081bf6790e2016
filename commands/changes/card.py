"""The change card: what a change does, shown to requesters and approvers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from commands.config import Config
from commands.messages import (
    Block,
    Button,
    Buttons,
    Confirm,
    Context,
    Fields,
    Header,
    Reply,
    Text,
    escape,
    health_line,
    mention,
    split_text,
    unescape,
    when,
)
from commands.model import (
    NEW,
    Change,
    ChangeKind,
    ChangePlan,
    ChangeState,
    EndpointHealth,
    Strategy,
)
from commands.models.model import (
    GATE_MARKS,
    GateOutcome,
    RetrainSpec,
    Review,
    card_lines,
    cut,
    evaluation_text,
    lineage_text,
    parameters_text,
    validation_text,
)
from commands.ports import ApprovalRecord


def _labels(change: Change) -> dict[str, str]:
    return change.labels | ({NEW: change.version.split("@")[-1]} if change.version else {})


def traffic_line(change: Change) -> str:
    """The split before and after on one line (Home tab lists, where bars would not fit)."""
    if change.kind is ChangeKind.RETRAIN:
        return "no traffic moves (a training pipeline run)"
    labels = _labels(change)
    return f"{split_text(change.split_before, labels)}  →  {split_text(change.split_after, labels)}"


BAR_CELLS = 20  # one cell is 5 %
BAR_ROWS = 6  # per side; a split with more deployed models says how many more
LABEL_WIDTH = 24


def bar(share: int) -> str:
    """`share` % as a fixed-width bar: a share above 0 shows at least one cell, a share
    below 100 leaves at least one empty."""
    filled = round(share * BAR_CELLS / 100)
    if share > 0:
        filled = max(1, filled)
    if share < 100:
        filled = min(BAR_CELLS - 1, filled)
    return "█" * filled + "░" * (BAR_CELLS - filled)


def traffic_bars(change: Change, *, unchanged: bool = False) -> str:
    """The split before and after as bars in a code block, read at a glance:

        before  1.2.0  ████████████████████ 100%
        after   1.2.0  ██████████████████░░  90%
                1.2.1  ██░░░░░░░░░░░░░░░░░░  10%

    Labels are cut to `LABEL_WIDTH` and padded before they are escaped (so `&lt;` does
    not shift the bars); at most `BAR_ROWS` models a side, so the section stays far
    inside Slack's 3,000 characters."""
    labels = _labels(change)
    rows: list[tuple[str, str, int | None]] = []
    sides = (
        (("now", change.split_before),)
        if unchanged  # a change that moves no traffic (a scale, an undeploy): one side
        else (("before", change.split_before), ("after", change.split_after))
    )
    for side, split in sides:
        ranked = sorted(split.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked:
            rows.append((side, "nothing", None))
        for i, (key, share) in enumerate(ranked[:BAR_ROWS]):
            rows.append((side if i == 0 else "", labels.get(key, key), share))
        if len(ranked) > BAR_ROWS:
            rows.append(("", f"and {len(ranked) - BAR_ROWS} more", None))

    def cut(label: str) -> str:
        return label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"

    width = max((len(cut(label)) for _, label, pct in rows if pct is not None), default=0)
    lines = []
    for side, label, pct in rows:
        if pct is None:
            lines.append(f"{side:<6}  {label}".rstrip())
        else:
            lines.append(f"{side:<6}  {cut(label):<{width}}  {bar(pct)} {pct:>3}%")
    return "```\n" + escape("\n".join(lines)) + "\n```"


def plain_traffic(change: Change) -> str:
    """The traffic a change moves, for plain text (a confirmation dialog): `loan-assessor:
    1.2.0 100% → 1.2.0 90% · 1.2.1 10%`."""
    if change.kind is ChangeKind.RETRAIN:
        return f"model {change.subject}: no traffic moves"
    labels = _labels(change)
    before, after = split_text(change.split_before, labels), split_text(change.split_after, labels)
    return f"{change.endpoint}: {before} → {after}"


def describe(strategy: Strategy, *, canary: int | None, old: str, soak: timedelta) -> str:
    """What a strategy does to traffic, in one line for the card's *How*."""
    minutes = soak.total_seconds() / 60
    span = f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"
    if strategy is Strategy.BLUE_GREEN:
        return (
            f"blue/green: deployed at 0 %, switched to 100 % in one traffic update once"
            f" ready, then watched for {span} (P95 and errors within the thresholds, else"
            f" traffic switches back to {old}); {old} stays deployed and ready until"
            " `/promote` undeploys it"
        )
    if strategy is Strategy.REPLACE:
        return (
            f"replace: deployed at 100 %; {old} is undeployed once the new version has been"
            f" healthy for {span} (P95 and errors within the thresholds), else traffic goes"
            f" back to {old}"
        )
    return f"canary {canary}%" + (
        "; the canary analysis judges it against " + old if canary and canary < 100 else ""
    )


def money(usd: float) -> str:
    """`$62.88`, `$1,509.12`."""
    return f"${usd:,.2f}"


def cost_line(plan: ChangePlan) -> str | None:
    """The plan's cost a day in words (`commands/changes/plan.py` prices it); None when
    the plan carries no price."""
    before, during, after = plan.cost_before, plan.cost_during, plan.cost_after
    if before is None or after is None:
        return None
    if during is None:  # a scale or an undeploy: one step
        delta = after - before
        change = (
            f"saves {money(-delta)} a day"
            if delta < 0
            else (f"adds {money(delta)} a day" if delta > 0 else "no change")
        )
        return f"{money(before)} → {money(after)} a day ({change})"
    until = {
        Strategy.BLUE_GREEN.value: "while both are deployed (until the promote)",
        Strategy.REPLACE.value: "during the soak",
    }.get(plan.strategy or "", "while the canary runs beside it")
    return f"{money(before)} → {money(during)} a day {until} → {money(after)} once the old one goes"


def _target(change: Change) -> str:
    """The version a scale or undeploy acts on."""
    target = change.plan.target_id or ""
    return change.labels.get(target) or (change.version or target).split("@")[-1]


def _replicas(change: Change) -> str:
    before, after = change.plan.replicas_before, change.plan.replicas_after
    if before is None or after is None:
        return ""
    low, high = (
        f"{what} {old} → {new}" if old != new else f"{what} {new}"
        for what, old, new in zip(("min", "max"), before, after, strict=True)
    )
    return f"{low}, {high} replicas"


def _plain_what(change: Change) -> str:
    if change.kind is ChangeKind.DEPLOY:
        if change.plan.strategy == Strategy.BLUE_GREEN.value:
            return f"deploy {change.version or ''} blue/green (at 0 %, then all traffic)"
        if change.plan.strategy == Strategy.REPLACE.value:
            return f"replace the serving version with {change.version or ''}"
        return f"deploy {change.version or ''} as a {change.canary_percent}% canary"
    if change.kind is ChangeKind.PROMOTE:
        if change.split_after == change.split_before:
            return "finish: undeploy the version at 0 %"
        return f"promote the canary to {change.canary_percent}%"
    if change.kind is ChangeKind.SCALE:
        return f"scale {_target(change)}: {_replicas(change)}"
    if change.kind is ChangeKind.UNDEPLOY:
        return f"undeploy {_target(change)} (serves 0 %)"
    if change.kind is ChangeKind.RETRAIN:
        spec = RetrainSpec.from_json(change.plan.pipeline)
        where = f" in {spec.project} ({spec.region})" if spec else ""
        return f"run the training pipeline of {change.subject}{where}"
    return "roll back"


def decision_confirms(change: Change, env_name: str) -> tuple[Confirm, Confirm]:
    """The dialogs before Approve and Reject: the change and the traffic it moves."""
    what = f"{change.kind.value} in {env_name}: {_plain_what(change)}"
    approve = Confirm(
        f"Approve {change.id}?",
        f"{plain_traffic(change)} ({what}). Your approval is bound to this plan.",
        "Approve",
    )
    reject = Confirm(
        f"Reject {change.id}?",
        f"{plain_traffic(change)} will not happen ({what}); {change.subject} stays as it is.",
        "Reject",
    )
    return approve, reject


def what_line(change: Change) -> str:
    if change.kind is ChangeKind.DEPLOY:
        how = {
            Strategy.BLUE_GREEN.value: "blue/green",
            Strategy.REPLACE.value: "replacing the serving version",
        }.get(change.plan.strategy or "", "as a canary")
        return f"Deploy *{escape(change.version or '')}* to `{change.endpoint}` {how}"
    if change.kind is ChangeKind.PROMOTE:
        if change.split_after == change.split_before:
            old = change.labels.get(change.plan.stable_id or "", "the old version")
            return f"Finish on `{change.endpoint}`: undeploy {escape(old)} (serves 0 %)"
        return f"Promote the canary on `{change.endpoint}` to {change.canary_percent}%"
    if change.kind is ChangeKind.SCALE:
        return f"Scale *{escape(_target(change))}* on `{change.endpoint}`: {_replicas(change)}"
    if change.kind is ChangeKind.UNDEPLOY:
        return f"Undeploy *{escape(_target(change))}* from `{change.endpoint}` (serves 0 %)"
    if change.kind is ChangeKind.RETRAIN:
        return f"Retrain *{escape(change.subject)}*: run its training pipeline"
    return f"Roll back `{change.endpoint}`"


def decision_buttons(change: Change, env_name: str) -> Buttons:
    """Approve and Reject, each asking first (`decision_confirms`)."""
    approve, reject = decision_confirms(change, env_name)
    return Buttons(
        (
            Button(
                "Approve",
                "approve",
                change.id,
                f"/aiops approve {change.id}",
                "primary",
                approve,
            ),
            Button(
                "Reject",
                "reject",
                change.id,
                f'/aiops reject {change.id} reason="…"',
                "danger",
                reject,
            ),
        )
    )


def change_card(
    change: Change,
    config: Config,
    *,
    health: EndpointHealth | None = None,
    approvals: Sequence[ApprovalRecord] = (),
    buttons: bool = False,
    note: str | None = None,
) -> Reply:
    """The change's one message: the plan answering the six questions, then its state."""
    if change.kind is ChangeKind.RETRAIN:
        return retrain_card(change, config, approvals=approvals, buttons=buttons, note=note)
    env = config.environments[change.environment]
    th = config.thresholds
    title = (
        f"{change.state.mark} {change.id} · {change.kind.value} · {change.endpoint} ({env.name})"
    )
    approvers = ", ".join(mention(a) for a in env.approvers) or "no approval needed"
    rollback_to = _labels(change).get(change.plan.stable_id or "", "")
    # What `/rollback` will really do after this change (`plan_rollback`): with a canary
    # beside the stable version, the stable one back to 100 % and the canary undeployed
    # (not the split before a partial promote); after a full move, the replaced version
    # redeployed at 100 %.
    stable = rollback_to or "the serving version"
    replaced = bool(change.plan.stable_id) and change.plan.stable_id in change.plan.undeploy
    strategy = change.plan.strategy
    if change.kind is ChangeKind.ROLLBACK:
        how_back = "this is the rollback"
    elif change.kind is ChangeKind.SCALE:
        before = change.plan.replicas_before
        how_back = (
            f"`/aiops scale {change.endpoint} {_target(change)} min={before[0]} max={before[1]}`"
            " puts the replicas back"
            if before
            else "scale it back"
        )
    elif change.kind is ChangeKind.UNDEPLOY and change.plan.replaced_version:
        how_back = (
            f":warning: {escape(change.plan.replaced_version)} is the only version to roll back"
            f" to: once it goes, `/rollback {change.endpoint}` redeploys it (minutes), not one"
            " traffic update"
        )
    elif change.kind is ChangeKind.UNDEPLOY:
        how_back = (
            f"it served no traffic: nothing to roll back; `/deploy {change.endpoint}"
            f" <model>@{_target(change)}` deploys it again"
        )
    elif strategy == Strategy.BLUE_GREEN.value:
        how_back = (
            f"during the soak the bot switches back itself if the new version is unhealthy;"
            f" after it, `/rollback {change.endpoint}`: one traffic update puts {stable} (still"
            " deployed and ready) back at 100 %, then the new version is undeployed"
        )
    elif strategy == Strategy.REPLACE.value:
        how_back = (
            f"during the soak the bot does it itself if the new version is unhealthy (traffic"
            f" back on {stable}, the new one undeployed); after it, `/rollback"
            f" {change.endpoint}` redeploys {stable} at 100 %"
        )
    elif replaced:
        how_back = (
            f"`/rollback {change.endpoint}` redeploys {stable} at 100 % (it is undeployed"
            " once this succeeds) and undeploys the new version"
        )
    elif change.kind is ChangeKind.DEPLOY:
        how_back = (
            f"`/rollback {change.endpoint}`: {stable} stays deployed and ready; it goes back"
            " to 100 % and the canary is undeployed"
        )
    else:
        how_back = (
            f"`/rollback {change.endpoint}` puts {stable} back at 100 % and undeploys the"
            " canary (not the split before this promote)"
        )
    if change.kind is ChangeKind.DEPLOY:
        how = describe(
            Strategy(strategy or Strategy.CANARY.value),
            canary=change.canary_percent,
            old=stable,
            soak=config.strategies.soak(strategy),
        )
    elif change.kind is ChangeKind.SCALE:
        how = "one long-running update of its replicas; traffic and version unchanged"
    elif change.kind is ChangeKind.UNDEPLOY:
        how = "undeployed (its replicas released); traffic unchanged"
    elif change.split_after == change.split_before:
        how = "no traffic moves; the version at 0 % is undeployed (its replicas released)"
    else:
        how = change.plan.mode or "traffic shift"
    facts: list[tuple[str, str]] = [
        ("Who asked", mention(change.requester_id)),
        ("Who may approve", approvers if env.needs_approval else "no approval needed"),
        ("How", how),
        (
            "Could go wrong",
            "health when planned: "
            + (health_line(health, th) if health else change.plan.health or "no figures"),
        ),
        (
            "How we'll know",
            f"P95 > {th.p95_latency_ms / 1000:g} s · errors > {th.error_rate:.0%} ·"
            f" drift > {th.drift:g}",
        ),
        ("How we roll back", how_back),
    ]
    if change.kind is ChangeKind.SCALE and change.plan.replicas_after:
        facts.append(("Replicas", _replicas(change)))
    elif change.kind is ChangeKind.DEPLOY and change.endpoint in config.endpoints:
        ep = config.endpoints[change.endpoint]
        kept = {
            Strategy.BLUE_GREEN.value: "until the promote",
            Strategy.REPLACE.value: "until the soak passes",
        }.get(strategy or "", "until a full promote")
        facts.append(
            (
                "Replicas",
                f"the new version: min {ep.min_replicas} · max {ep.max_replicas} (the"
                f" endpoint's); {stable} keeps its own {kept}",
            )
        )
    cost = cost_line(change.plan)
    if cost:
        facts.append(("Cost a day (estimate, at min replicas)", escape(cost)))
    blocks: list[Block] = [
        Header(title[:150]),
        Text(f"*What:* {what_line(change)}"),
        Text(
            f"*Traffic* unchanged:\n{traffic_bars(change, unchanged=True)}"
            if change.split_after == change.split_before and change.kind is not ChangeKind.DEPLOY
            else f"*Traffic* before → after:\n{traffic_bars(change)}"
        ),
        Fields(tuple(facts)),
    ]
    if change.reason:
        blocks.append(Text(f"*Why:* {escape(change.reason)}"))
    review = Review.from_json(change.plan.model_review)
    if review is not None:  # what the version is, and the validation behind its approval
        blocks.extend(review_blocks(review, config))
    blocks += _state_blocks(change, config, approvals)
    if change.plan.forced_promote:
        blocks.append(
            Text(
                f":warning: *Forced promote* over the canary analysis: {change.plan.forced_promote}"
            )
        )
    if change.plan.forced:
        blocks.append(Text(f":warning: *Forced* (`force=true`): {escape(change.plan.forced)}"))
    if change.plan.canary and change.kind is ChangeKind.PROMOTE:
        blocks.append(Context((f"When requested: {change.plan.canary}",)))
    if note:
        blocks.append(Context((note,)))
    if buttons and change.state is ChangeState.PENDING_APPROVAL:
        blocks.append(decision_buttons(change, env.name))
    text = (
        f"{change.id} {change.kind.value} {change.endpoint}: {change.state.value.replace('_', ' ')}"
    )
    return Reply(text=text, blocks=blocks, ephemeral=False)


def retrain_card(
    change: Change,
    config: Config,
    *,
    approvals: Sequence[ApprovalRecord] = (),
    buttons: bool = False,
    note: str | None = None,
) -> Reply:
    """A retrain's card (`commands/models/retrain.py`): the six questions for a training
    run, which moves no traffic: what runs (the pipeline and its parameters), where (the
    environment's project and region), what it costs, what it would follow (the serving
    version and its lineage), and its job and the version it registered once known."""
    env = config.environments[change.environment]
    spec = RetrainSpec.from_json(change.plan.pipeline)
    model = change.subject
    title = f"{change.state.mark} {change.id} · retrain · {model} ({env.name})"
    approvers = ", ".join(mention(a) for a in env.approvers)
    facts: list[tuple[str, str]] = [
        ("Who asked", mention(change.requester_id)),
        ("Who may approve", approvers if env.needs_approval else "no approval needed"),
    ]
    if spec is not None:
        base = (
            f"{escape(spec.base_version)}: {escape(cut(spec.base_lineage.text(), 400))}"
            if spec.base_version
            else "nothing serves it now"
        )
        facts += [
            ("Pipeline", f"`{escape(cut(spec.template, 300))}`"),
            (
                "Where",
                f"`{escape(spec.project)}` · {escape(spec.region)} (`{env.name}`)"
                + (
                    f" · artifacts `{escape(cut(spec.pipeline_root, 200))}`"
                    if spec.pipeline_root
                    else ""
                ),
            ),
            ("Parameters", parameters_text(spec.parameters)),
            (
                "Cost (estimate, one run)",
                money(spec.cost_usd) if spec.cost_usd is not None else "unknown (not configured)",
            ),
            ("Serves now", base),
        ]
    facts += [
        (
            "Could go wrong",
            "the run fails or registers a worse version: nothing serves from it until a"
            " deploy, gated and approved like any other",
        ),
        ("How we'll know", "the pipeline job's state, polled; this thread says when it ends"),
        (
            "How we roll back",
            "nothing to roll back: the new version is only registered (validation pending)",
        ),
    ]
    blocks: list[Block] = [
        Header(title[:150]),
        Text(
            f"*What:* {what_line(change)}; the version it registers appears in `/aiops models {escape(model)}`"
        ),
        Fields(tuple(facts)),
    ]
    if change.reason:
        blocks.append(Text(f"*Why:* {escape(change.reason)}"))
    run = []
    if change.operation:
        run.append(f"Pipeline job: `{escape(change.operation)}`")
    if change.plan.registered_version:
        run.append(
            f"Registered: `{escape(change.plan.registered_version)}`, validation pending — `/aiops models"
            f" {escape(model)}`"
        )
    if run:
        blocks.append(Context(tuple(run)))
    blocks += _state_blocks(change, config, approvals)
    if note:
        blocks.append(Context((note,)))
    if buttons and change.state is ChangeState.PENDING_APPROVAL:
        blocks.append(decision_buttons(change, env.name))
    text = f"{change.id} retrain {model}: {change.state.value.replace('_', ' ')}"
    return Reply(text=text, blocks=blocks, ephemeral=False)


def review_blocks(review: Review, config: Config) -> list[Block]:
    """The change card's model section: what the version is and what stood behind its
    approval (two blocks; three when the gate was overridden)."""
    overridden = review.outcome is GateOutcome.OVERRIDDEN
    head = f"*Model version:* `{escape(review.version)}`"
    if not review.found:
        head += " — not found in the model registry"
    text = "\n".join(
        [head, *card_lines(review.description, review.intended_use, review.limitations)]
    )
    blocks: list[Block] = [
        Text(text),
        Context(
            (
                lineage_text(review.lineage),
                evaluation_text(review.evaluation, config.timezone),
                f"Validation: {validation_text(review.validation, config)}"
                f" · {GATE_MARKS[review.outcome]}"
                + ("" if overridden else f" ({cut(review.detail, 300)})"),
            )
        ),
    ]
    if overridden:
        blocks.append(
            Text(f":rotating_light: *Validation gate overridden:* {cut(review.detail, 500)}")
        )
    return blocks


def _state_blocks(
    change: Change, config: Config, approvals: Sequence[ApprovalRecord]
) -> list[Block]:
    """The card's state line (scheduled, expiry, who decided, the error) and one line per
    approval beyond the deciding one."""
    state_line = f"*State:* {change.state.mark} {change.state.value.replace('_', ' ')}"
    if change.plan.run_at:  # scheduled with `at=`
        state_line += f" · :alarm_clock: scheduled for {when(change.plan.run_at, config.timezone)}"
    if change.state is ChangeState.PENDING_APPROVAL and change.expires_at:
        state_line += f" · expires {when(change.expires_at, config.timezone)}"
    if change.decided_by:
        verb = {
            ChangeState.REJECTED: "rejected",
            ChangeState.EXPIRED: "expired",
            ChangeState.CANCELLED: "cancelled",
        }.get(change.state, "approved")
        if change.decided_by.startswith("policy:"):
            state_line += f" · {change.decided_by.removeprefix('policy:').strip()}"
        else:
            state_line += f" · {verb} by {mention(change.decided_by)} at {when(change.decided_at, config.timezone)}"
    if change.error:
        # an error is composed as mrkdwn (typed text in it escaped once, where it was
        # composed): undone first, so that it is shown escaped once, not twice
        state_line += f"\n:x: {escape(unescape(change.error))}"
    blocks: list[Block] = [Text(state_line)]
    for a in approvals:
        if a.approver_id == change.decided_by and len(approvals) == 1:
            continue  # already said on the state line
        why = f": {escape(a.reason)}" if a.reason else ""
        blocks.append(
            Context(
                (
                    f"{a.decision}d by {mention(a.approver_id)} at {when(a.at, config.timezone)}{why}",
                )
            )
        )
    return blocks
