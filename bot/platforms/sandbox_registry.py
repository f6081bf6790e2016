"""The sandbox's model registry: versions from the config (`[models.<name>] versions`),
each with its card, lineage, latest evaluation and validation from
`[models.<name>.cards."<version>"]`, so the console shows what the Vertex AI Model
Registry would.

Aliases: every version carries its version alias (`1.2.1` → `v1-2-1`, as on Vertex AI);
other aliases (the serving alias, `prod`) are kept in the bot's database so that a move
outlives the process: one row of `sandbox_operation` per (model, alias), kind `alias`,
its payload naming the version (a registry write is done when written, so the row is
`done` at once and never settled by the platform). Before any move, the serving alias
names the model's `initial` version (what the sandbox's endpoints start on)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.platforms.vertex_settings import parse_vertex_settings, version_alias
from bot.store.sandbox_tables import SandboxOperationRow
from commands.config import Config, Endpoint
from commands.models.model import (
    Card,
    Evaluation,
    Lineage,
    RegistryVersion,
    Validation,
    ValidationStatus,
    moment,
)
from commands.ports import PlatformError

log = logging.getLogger(__name__)

ALIAS_KIND = "alias"


def _row_name(model: str, alias: str) -> str:
    return f"registry/{model}/aliases/{alias}"[:128]


class SandboxRegistry:
    def __init__(self, engine: Engine, config: Config, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.serving_alias = parse_vertex_settings(config).serving_alias
        # each version's own alias, as on Vertex AI (`1.2.1` → `v1-2-1`)
        self._version_aliases = {
            v: version_alias(v) for m in config.models.values() for v in m.versions
        }
        self.writes = 0  # alias moves written, for tests

    def _aliases(self, model: str) -> dict[str, str]:
        """alias → version, as moved (the serving alias defaults to the initial version)."""
        found = self.config.models.get(model)
        out = {self.serving_alias: found.initial} if found else {}
        with Session(self.engine) as session:
            rows = session.exec(
                select(SandboxOperationRow).where(
                    SandboxOperationRow.kind == ALIAS_KIND,
                    col(SandboxOperationRow.name).startswith(f"registry/{model}/aliases/"),
                )
            ).all()
        for row in rows:
            if row.payload.get("model") == model and row.payload.get("version"):
                out[str(row.payload["alias"])] = str(row.payload["version"])
        return out

    def version(
        self, model: str, version: str, endpoint: Endpoint | None = None
    ) -> RegistryVersion | None:
        return next((v for v in self.versions(model, endpoint) if v.version == version), None)

    def versions(self, model: str, endpoint: Endpoint | None = None) -> list[RegistryVersion]:
        found = self.config.models.get(model)
        if found is None:
            return []
        cards = found.cards
        aliases = self._aliases(model)
        tz = self.config.timezone
        out = []
        for version in found.versions:
            card = cards.get(version)
            held = tuple(sorted(a for a, v in aliases.items() if v == version))
            if card is None:
                out.append(
                    RegistryVersion(model, version, aliases=(self._version_aliases[version], *held))
                )
                continue
            evaluation = (
                Evaluation(dict(card.metrics), moment(card.evaluated_at, tz))
                if card.metrics
                else None
            )
            out.append(
                RegistryVersion(
                    model,
                    version,
                    aliases=(self._version_aliases[version], *held),
                    card=Card(card.description, card.intended_use, card.limitations),
                    lineage=Lineage(card.pipeline_run, card.dataset),
                    evaluation=evaluation,
                    validation=Validation(
                        ValidationStatus(card.validation),
                        card.validated_by,
                        moment(card.validated_at, tz),
                    ),
                )
            )
        return out

    def move_alias(
        self, model: str, version: str, alias: str, endpoint: Endpoint | None = None
    ) -> str | None:
        found = self.config.models.get(model)
        if found is None or version not in found.versions:
            raise PlatformError(
                f"`{model}@{version}` is not in the sandbox's registry", kind="not_found"
            )
        previous = self._aliases(model).get(alias)
        if previous == version:
            return version
        now = self.clock()
        payload = {"model": model, "alias": alias, "version": version, "previous": previous}
        name = _row_name(model, alias)
        for _ in range(2):  # a first insert racing another process's: update theirs
            with Session(self.engine) as session:
                row = session.get(SandboxOperationRow, name)
                if row is None:
                    row = SandboxOperationRow(
                        name=name,
                        kind=ALIAS_KIND,
                        endpoint=f"registry:{model}"[:128],
                        started_at=now,
                        finishes_at=now,
                        payload=payload,
                        done=True,
                    )
                else:
                    row.payload = payload
                    row.started_at = row.finishes_at = now
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    continue
            self.writes += 1
            log.info("sandbox registry: alias %s of %s now names %s", alias, model, version)
            return previous
        raise PlatformError(f"could not move alias `{alias}` of `{model}`", kind="unavailable")

    def validation_source(self, model: str, version: str) -> str:
        return (
            f'the config\'s `[models.{model}.cards."{version}"]` (`validation = "approved"`,'
            " `validated_by`, `validated_at`): the sandbox's registry"
        )
