"""The sandbox's model registry: versions from the config (`[models.<name>] versions`),
each with its card, lineage, latest evaluation and validation from
`[models.<name>.cards."<version>"]`, so the console shows what the Vertex AI Model
Registry would; and the versions its simulated training runs registered.

Aliases: every version carries its version alias (`1.2.1` → `v1-2-1`, as on Vertex AI);
other aliases (the serving alias, `prod`) are kept in the bot's database so that a move
outlives the process: one row of `sandbox_operation` per (model, alias), kind `alias`,
its payload naming the version (a registry write is done when written, so the row is
`done` at once and never settled by the platform). Before any move, the serving alias
names the model's `initial` version (what the sandbox's endpoints start on).

Training runs (`/aiops retrain`): one row of `sandbox_operation` per run, kind `pipeline`,
named like a Vertex AI PipelineJob, its payload the template, parameters and labels. A run
takes `[sandbox] operation_seconds`; when it is read after that it ends, once (a
compare-and-set on `done`): it fails where the model says `retrain_fails = true`, else it
registers the next patch version of the model's newest release (`1.2.2` after `1.2.1`)
with a card whose lineage is this run and its `dataset` parameter, no evaluation, and
validation pending. Registered versions are part of the registry (and of the sandbox
platform's versions, `registered_versions`) from then on."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.platforms.vertex_settings import parse_vertex_settings, version_alias
from bot.store.sandbox_tables import SandboxOperationRow
from commands.config import Config, Endpoint, Environment
from commands.models.model import (
    Card,
    Evaluation,
    Lineage,
    ParameterValue,
    PipelineRun,
    PipelineState,
    RegistryVersion,
    Validation,
    ValidationStatus,
    label_value,
    moment,
)
from commands.ports import PlatformError

log = logging.getLogger(__name__)

ALIAS_KIND = "alias"
PIPELINE_KIND = "pipeline"
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def registered_versions(engine: Engine, model: str) -> list[tuple[str, dict[str, Any]]]:
    """(version, its run's payload) of every version the sandbox's training runs registered
    for `model`, in the order they were registered."""
    with Session(engine) as session:
        rows = session.exec(
            select(SandboxOperationRow)
            .where(
                SandboxOperationRow.kind == PIPELINE_KIND,
                SandboxOperationRow.endpoint == _registry_key(model),
                col(SandboxOperationRow.done).is_(True),
                col(SandboxOperationRow.error).is_(None),
            )
            .order_by(col(SandboxOperationRow.finishes_at))
        ).all()
    return [
        (str(row.payload["registered_version"]), dict(row.payload) | {"name": row.name})
        for row in rows
        if row.payload.get("registered_version")
    ]


def next_patch(versions: list[str]) -> str:
    """The patch after the newest release among `versions` (pre-releases skipped):
    `1.2.2` after `1.2.1`; `0.0.1` when there is none."""
    releases = [tuple(int(g) for g in m.groups()) for v in versions if (m := _RELEASE.match(v))]
    major, minor, patch = max(releases, default=(0, 0, 0))
    candidate = f"{major}.{minor}.{patch + 1}"
    while candidate in versions:
        patch += 1
        candidate = f"{major}.{minor}.{patch + 1}"
    return candidate


def _registry_key(model: str) -> str:
    return f"registry:{model}"[:128]


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

    def _all_versions(self, model: str) -> list[str]:
        found = self.config.models.get(model)
        if found is None:
            return []
        extra = [v for v, _ in registered_versions(self.engine, model) if v not in found.versions]
        return [*found.versions, *extra]

    @staticmethod
    def _registered(
        model: str, version: str, run: dict[str, Any], aliases: dict[str, str]
    ) -> RegistryVersion:
        """A version a training run registered: its lineage is that run and its `dataset`
        parameter; no evaluation; validation pending until model risk signs it off."""
        held = tuple(sorted(a for a, v in aliases.items() if v == version))
        dataset = (run.get("parameters") or {}).get("dataset")
        return RegistryVersion(
            model,
            version,
            aliases=(version_alias(version), *held),
            card=Card(
                description=f"Retrained by the training pipeline {_pipeline(run)}"
                f" ({run.get('display_name') or 'a run'})"
            ),
            lineage=Lineage(str(run["name"]), str(dataset) if dataset else None),
            registry_id=str(run["name"]).rsplit("/", 1)[-1],
            created_at=moment(run.get("registered_at")),
        )

    def versions(self, model: str, endpoint: Endpoint | None = None) -> list[RegistryVersion]:
        found = self.config.models.get(model)
        if found is None:
            return []
        cards = found.cards
        aliases = self._aliases(model)
        tz = self.config.timezone
        out = []
        # a registered version model risk has since put in the config (with its card,
        # `validation = "approved"`) is read from there: that is where it is signed off
        registered_out = [
            self._registered(model, version, run, aliases)
            for version, run in registered_versions(self.engine, model)
            if version not in found.versions
        ]
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
        return out + registered_out

    def move_alias(
        self, model: str, version: str, alias: str, endpoint: Endpoint | None = None
    ) -> str | None:
        if version not in self._all_versions(model):
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

    # training runs ---------------------------------------------------------------------

    def begin_pipeline(
        self,
        model: str,
        template: str,
        parameters: dict[str, ParameterValue],
        labels: dict[str, str],
        environment: Environment,
        *,
        display_name: str,
        pipeline_root: str | None = None,
    ) -> str:
        if model not in self.config.models:
            raise PlatformError(f"`{model}` is not in the sandbox's registry", kind="not_found")
        now = self.clock()
        run_id = f"{label_value(model).replace('_', '-')}-{random.getrandbits(40):010x}"
        name = (
            f"projects/{environment.project}/locations/{environment.region}/pipelineJobs/{run_id}"
        )
        with Session(self.engine) as session:
            session.add(
                SandboxOperationRow(
                    name=name[:128],
                    kind=PIPELINE_KIND,
                    endpoint=_registry_key(model),
                    started_at=now,
                    finishes_at=now + timedelta(seconds=self.config.sandbox.operation_seconds),
                    payload={
                        "model": model,
                        "template": template,
                        "parameters": dict(parameters),
                        "labels": dict(labels),
                        "environment": environment.name,
                        "display_name": display_name,
                        "pipeline_root": pipeline_root,
                    },
                )
            )
            session.commit()
        log.info("sandbox: training run %s of %s started", name, model)
        return name[:128]

    def find_pipeline(
        self, model: str, labels: dict[str, str], environment: Environment
    ) -> str | None:
        with Session(self.engine) as session:
            rows = session.exec(
                select(SandboxOperationRow)
                .where(
                    SandboxOperationRow.kind == PIPELINE_KIND,
                    SandboxOperationRow.endpoint == _registry_key(model),
                )
                .order_by(col(SandboxOperationRow.started_at).desc())
            ).all()
        for row in rows:
            carried = row.payload.get("labels") or {}
            if row.payload.get("environment") == environment.name and all(
                carried.get(k) == v for k, v in labels.items()
            ):
                return row.name
        return None

    def pipeline_status(self, name: str, model: str, environment: Environment) -> PipelineRun:
        row = self._run(name)
        if not row.done and _utc(row.finishes_at) <= self.clock():
            self._finish_run(row)
            row = self._run(name)
        if not row.done:
            return PipelineRun(name, PipelineState.RUNNING)
        if row.error:
            return PipelineRun(name, PipelineState.FAILED, error=row.error)
        version = row.payload.get("registered_version")
        return PipelineRun(
            name,
            PipelineState.SUCCEEDED,
            registered_version=str(version) if version else None,
            registered_id=name.rsplit("/", 1)[-1] if version else None,
        )

    def _run(self, name: str) -> SandboxOperationRow:
        with Session(self.engine) as session:
            row = session.get(SandboxOperationRow, name)
        if row is None or row.kind != PIPELINE_KIND:
            raise PlatformError(f"pipeline job `{name}` does not exist", kind="not_found")
        return row

    def _finish_run(self, row: SandboxOperationRow) -> None:
        """End a run once: fail it where the model says so, else register the next patch
        version (a compare-and-set on `done`, so two readers register one version)."""
        model = self.config.models.get(str(row.payload.get("model")))
        error: str | None = None
        payload = dict(row.payload)
        if model is None or model.retrain_fails:
            error = (
                "the pipeline's training task failed: the trainer exited with code 1"
                " (loss diverged at epoch 2)"
            )
        else:
            payload["registered_version"] = next_patch(self._all_versions(model.name))
            payload["registered_at"] = self.clock().isoformat()
        with Session(self.engine) as session:
            claimed = session.execute(
                update(SandboxOperationRow)
                .where(
                    col(SandboxOperationRow.name) == row.name,
                    col(SandboxOperationRow.done).is_(False),
                )
                .values(done=True, error=error, payload=payload)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return  # another reader ended it first
            session.commit()
        log.info(
            "sandbox: training run %s %s",
            row.name,
            f"failed: {error}" if error else f"registered {payload['registered_version']}",
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _pipeline(run: dict[str, Any]) -> str:
    """The pipeline's name in its template's path: `…/gemma-ft-loans/v3` → `gemma-ft-loans`."""
    parts = [p for p in str(run.get("template") or "").split("/") if p]
    return parts[-2] if len(parts) >= 2 else "?"
