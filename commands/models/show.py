"""`/aiops models [model]`: each version of a model with its aliases, where it serves and at
what share, its model card summary, lineage, latest evaluation and validation.

Newest version first. A version takes two blocks (its section and a context line), a model
one more: with several models each shows its newest versions that fit Slack's 50 blocks and
says how many older ones `/aiops models <model>` lists. Where a version serves comes from
the platform's endpoint states (one read per endpoint of the model)."""

from __future__ import annotations

from commands.config import Endpoint
from commands.errors import Refusal
from commands.messages import (
    Block,
    Context,
    Divider,
    Header,
    Reply,
    Text,
    code,
    did_you_mean,
    escape,
)
from commands.model import model_key
from commands.models.model import (
    RegistryVersion,
    card_lines,
    evaluation_text,
    lineage_text,
    validation_text,
)
from commands.ports import PlatformError
from commands.runtime import Runtime

USAGE = "/aiops models [model|endpoint]"
MAX_BLOCKS = 50
MAX_MODELS = 12


def _model_of(rt: Runtime, ref: str | None) -> list[str]:
    models = list(rt.config.models)
    if ref is None:
        return models
    if ref in rt.config.models:
        return [ref]
    if ref in rt.config.endpoints:
        return [rt.config.endpoints[ref].model]
    known = ", ".join(f"`{m}`" for m in models) or "none"
    raise Refusal(
        f"unknown model {code(ref)}{did_you_mean(ref, [*models, *rt.config.endpoints])}",
        f"Known models: {known} (an endpoint names its model too). Usage: `{USAGE}`",
        code="unknown_model",
    )


def _serving(rt: Runtime, endpoints: list[Endpoint]) -> tuple[dict[str, list[str]], list[str]]:
    """version → `loan-assessor 90%` per endpoint serving it; and endpoints unreadable."""
    where: dict[str, list[str]] = {}
    unread = []
    for ep in endpoints:
        try:
            state = rt.platform.endpoint_state(ep)
        except PlatformError:
            unread.append(ep.slug)
            continue
        for dm in state.deployed:
            share = state.traffic.get(dm.id, 0)
            where.setdefault(dm.version.version, []).append(f"`{ep.slug}` {share}%")
    return where, unread


def _version_blocks(
    rt: Runtime, v: RegistryVersion, where: list[str], serving_alias: str
) -> list[Block]:
    aliases = " ".join(
        f"*`{escape(a)}`*" if a == serving_alias else f"`{escape(a)}`" for a in v.aliases
    )
    serves = "serves " + " · ".join(where) if where else "not deployed"
    head = f"*{escape(v.version)}*  {aliases} — {serves}"
    text = "\n".join(
        [head, *card_lines(v.card.description, v.card.intended_use, v.card.limitations)]
    )
    return [
        Text(text[:3000]),
        Context(
            (
                lineage_text(v.lineage),
                evaluation_text(v.evaluation, rt.config.timezone),
                f"Validation: {validation_text(v.validation, rt.config)}",
            )
        ),
    ]


def models(rt: Runtime, ref: str | None) -> Reply:
    """The registry's versions of one model (or every configured model), newest first."""
    names = _model_of(rt, ref)
    if rt.registry is None:
        raise Refusal(
            "no model registry is configured for this platform",
            "The sandbox and Vertex AI each have one; check the bot's wiring.",
            code="no_registry",
        )
    alias = rt.registry.serving_alias
    shown_models = names[:MAX_MODELS]
    # each model: its header line and a divider; each version: two blocks
    room = MAX_BLOCKS - 3 - 2 * len(shown_models)
    per_model = max(1, room // (2 * max(1, len(shown_models))))
    title = "Model versions" if ref is None else f"Model {names[0]}"
    if ref is not None and ref in rt.config.endpoints:
        title += f" · served by {ref}"  # asked by its endpoint: say which
    blocks: list[Block] = [Header(title[:150])]
    gated = [env.name for env in rt.config.environments.values() if env.require_validation]
    for name in shown_models:
        endpoints = [ep for ep in rt.config.endpoints.values() if ep.model == name]
        try:
            versions = rt.registry.versions(name, endpoints[0] if endpoints else None)
        except PlatformError as exc:
            blocks.append(
                Text(
                    f"*{escape(name)}* — :warning: the registry could not be read: {escape(str(exc))}"
                )
            )
            blocks.append(Divider())
            continue
        where, unread = _serving(rt, endpoints)
        holder = next((v.version for v in versions if alias in v.aliases), None)
        line = (
            f"*{escape(name)}* · {len(versions)} version(s) · `{escape(alias)}` names"
            f" {escape(holder) if holder else 'no version'}"
        )
        if unread:
            line += f" · :warning: could not read {', '.join(f'`{s}`' for s in unread)}"
        retrain = rt.store.open_change(model_key(name))
        if retrain is not None:
            line += (
                f" · {retrain.state.mark} retraining: {retrain.id}"
                f" ({retrain.state.value.replace('_', ' ')})"
            )
        blocks.append(Text(line))
        newest = list(reversed(versions))
        for v in newest[:per_model]:
            blocks.extend(_version_blocks(rt, v, where.get(v.version, []), alias))
        if len(newest) > per_model:
            blocks.append(
                Context(
                    (f"… and {len(newest) - per_model} older version(s): `/aiops models {name}`",)
                )
            )
        blocks.append(Divider())
    footer = (
        f"`{escape(alias)}`: the registry alias naming what prod serves; it follows a change that"
        " leaves one version at 100 %."
    )
    if gated:
        footer += f" Validation is required in: {', '.join(f'`{g}`' for g in gated)}."
    if len(names) > len(shown_models):
        footer += f" … and {len(names) - len(shown_models)} more model(s): `{USAGE}`."
    blocks.append(Context((footer,)))
    text = (
        f"{len(names)} model(s)" if ref is None else f"{names[0]}: versions, cards and validation"
    )
    return Reply(text=text, blocks=blocks[:MAX_BLOCKS])
