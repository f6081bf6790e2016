"""What the model registry says about a version, as plain types: its model card summary,
training lineage, latest evaluation and model-risk validation; and `Review`, the snapshot a
change keeps of them (with the validation gate's outcome), so its card, its audit and its
dossier show what was approved, whatever the registry says later.

Vocabulary from the Vertex AI Model Registry (version aliases, version description,
labels, model evaluations) and Google's Model Card toolkit (intended use, limitations);
lineage is the training pipeline run and the dataset, "unknown" where the registry does not
know them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from commands.config import Config
from commands.messages import escape, mention

UNKNOWN = "unknown"


class ValidationStatus(StrEnum):
    """Model-risk sign-off on a version (SR 11-7 style model validation)."""

    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"

    @property
    def mark(self) -> str:
        return {
            "approved": ":white_check_mark:",
            "pending": ":hourglass_flowing_sand:",
            "rejected": ":x:",
        }[self.value]


def moment(value: Any, tz: ZoneInfo | None = None) -> datetime | None:
    """A registry or config time as an aware datetime: a date is its midnight, a naive
    date-time is local to `tz` (UTC when none), a string is ISO 8601 or epoch seconds; None
    for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            try:
                value = date.fromisoformat(text)
            except ValueError:
                return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz or UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz or UTC)
    return None


@dataclass(frozen=True)
class Card:
    """The model card's summary."""

    description: str = ""
    intended_use: str = ""
    limitations: str = ""


@dataclass(frozen=True)
class Lineage:
    """Where the version came from; None: the registry does not know."""

    pipeline_run: str | None = None
    dataset: str | None = None

    def text(self) -> str:
        return f"pipeline run {self.pipeline_run or UNKNOWN} · dataset {self.dataset or UNKNOWN}"


@dataclass(frozen=True)
class Evaluation:
    """The latest evaluation of a version: metric → value (numbers only), when it ran."""

    metrics: dict[str, float] = field(default_factory=dict)
    at: datetime | None = None
    name: str | None = None  # the registry's name for it (Vertex AI: the ModelEvaluation)

    def text(self, tz: ZoneInfo, limit: int = 6) -> str:
        if not self.metrics:
            return "no metrics"
        shown = list(self.metrics.items())[:limit]
        figures = " · ".join(f"{k} {v:.4g}" for k, v in shown)
        more = f" · +{len(self.metrics) - limit} more" if len(self.metrics) > limit else ""
        when = f" ({self.at.astimezone(tz):%Y-%m-%d})" if self.at else ""
        return f"{figures}{more}{when}"


@dataclass(frozen=True)
class Validation:
    status: ValidationStatus = ValidationStatus.PENDING
    by: str | None = None  # who signed it off, as the registry names them
    at: datetime | None = None

    def text(self, tz: ZoneInfo) -> str:
        if self.status is ValidationStatus.PENDING and not self.by:
            return "pending (no sign-off recorded)"
        out = self.status.value
        if self.by:
            out += f" by {self.by}"
        if self.at:
            out += f" on {self.at.astimezone(tz):%Y-%m-%d}"
        return out


@dataclass(frozen=True)
class RegistryVersion:
    """One version of a model as the registry holds it."""

    model: str
    version: str  # semantic: 1.2.1
    aliases: tuple[str, ...] = ()
    card: Card = field(default_factory=Card)
    lineage: Lineage = field(default_factory=Lineage)
    evaluation: Evaluation | None = None
    validation: Validation = field(default_factory=Validation)
    registry_id: str | None = None  # the registry's own id (Vertex AI's version id)
    created_at: datetime | None = None


class GateOutcome(StrEnum):
    """What the model-risk gate decided for a change."""

    PASSED = "passed"  # the environment requires validation and the version has it
    OVERRIDDEN = "overridden"  # it did not, and break glass ran the change anyway
    NOT_REQUIRED = "not required"  # the environment does not require validation
    NOT_GATED = "not gated"  # a rollback: mitigation first


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Review:
    """What a change was planned (and approved) with: the version's card summary, lineage,
    evaluation and validation as the registry said then, and the gate's outcome. Stored on
    the change (`ChangePlan.model_review`, JSON) and in its plan's audit row."""

    version: str  # model@version judged
    outcome: GateOutcome
    required: bool
    detail: str  # the gate's words: why it passed, was overridden, or is not required
    found: bool = True  # False: the registry does not hold it (or could not be read)
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    metrics: dict[str, float] = field(default_factory=dict)
    evaluated_at: datetime | None = None
    validation: Validation = field(default_factory=Validation)

    @classmethod
    def of(
        cls,
        version: str,
        found: RegistryVersion | None,
        outcome: GateOutcome,
        required: bool,
        detail: str,
    ) -> Review:
        if found is None:
            return cls(version, outcome, required, detail, found=False)
        return cls(
            version,
            outcome,
            required,
            detail,
            description=_cut(found.card.description, 300),
            intended_use=_cut(found.card.intended_use, 300),
            limitations=_cut(found.card.limitations, 300),
            lineage=found.lineage,
            metrics=dict(list((found.evaluation.metrics if found.evaluation else {}).items())[:20]),
            evaluated_at=found.evaluation.at if found.evaluation else None,
            validation=found.validation,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the audit row's parameters, the dossier, the stored JSON)."""
        return {
            "version": self.version,
            "gate": self.outcome.value,
            "required": self.required,
            "detail": self.detail,
            "in_registry": self.found,
            "card": {
                "description": self.description,
                "intended_use": self.intended_use,
                "limitations": self.limitations,
            },
            "lineage": {
                "pipeline_run": self.lineage.pipeline_run or UNKNOWN,
                "dataset": self.lineage.dataset or UNKNOWN,
            },
            "evaluation": {
                "metrics": self.metrics,
                "at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            },
            "validation": {
                "status": self.validation.status.value,
                "by": self.validation.by,
                "at": self.validation.at.isoformat() if self.validation.at else None,
            },
        }

    def to_json(self) -> str:
        """As stored on the change: registry text masked like every stored text (a card
        may name a person)."""
        from commands.text import outbound_value

        return json.dumps(outbound_value(self.to_dict()), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Review | None:
        """The stored snapshot; None when there is none (or it cannot be read: a change
        planned before the gate existed)."""
        if not text:
            return None
        try:
            d = json.loads(text)
            lineage = d.get("lineage") or {}
            evaluation = d.get("evaluation") or {}
            validation = d.get("validation") or {}
            card = d.get("card") or {}
            return cls(
                version=str(d["version"]),
                outcome=GateOutcome(d["gate"]),
                required=bool(d.get("required")),
                detail=str(d.get("detail") or ""),
                found=bool(d.get("in_registry", True)),
                description=str(card.get("description") or ""),
                intended_use=str(card.get("intended_use") or ""),
                limitations=str(card.get("limitations") or ""),
                lineage=Lineage(
                    None
                    if lineage.get("pipeline_run") in (None, UNKNOWN)
                    else lineage["pipeline_run"],
                    None if lineage.get("dataset") in (None, UNKNOWN) else lineage["dataset"],
                ),
                metrics={str(k): float(v) for k, v in (evaluation.get("metrics") or {}).items()},
                evaluated_at=moment(evaluation.get("at")),
                validation=Validation(
                    ValidationStatus(validation.get("status") or "pending"),
                    validation.get("by"),
                    moment(validation.get("at")),
                ),
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            return None

    @property
    def evaluation(self) -> Evaluation | None:
        return Evaluation(self.metrics, self.evaluated_at) if self.metrics else None


# --- how they are written, wherever they appear (the change card, `/aiops models`) ---

FIELD_CHARS = 280  # each card field, so a version's section stays far inside 3,000


def cut(text: str, limit: int = FIELD_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def who(config: Config, name: str | None) -> str:
    """A validator as the registry names them: a person of [people] is mentioned."""
    if not name:
        return "nobody named"
    bare = name.lstrip("@")
    if bare in config.people:
        return mention(config.people[bare].slack_id)
    if config.person_by_id(bare.upper()):
        return mention(bare.upper())
    return escape(name)


def validation_text(v: Validation, config: Config) -> str:
    """`✅ approved by @carol on 2026-11-20`, the validator mentioned when a person."""
    if v.status is ValidationStatus.PENDING and not v.by:
        words = "pending (no sign-off recorded)"
    else:
        words = v.status.value
        if v.by:
            words += f" by {who(config, v.by)}"
        if v.at:
            words += f" on {v.at.astimezone(config.timezone):%Y-%m-%d}"
    return f"{v.status.mark} {words}"


def card_lines(description: str, intended_use: str, limitations: str) -> list[str]:
    lines = []
    if description:
        lines.append(f"_{escape(cut(description))}_")
    if intended_use:
        lines.append(f"*Intended use:* {escape(cut(intended_use))}")
    if limitations:
        lines.append(f"*Limitations:* {escape(cut(limitations))}")
    return lines or ["_no model card in the registry_"]


def lineage_text(lineage: Lineage) -> str:
    return "Lineage: " + escape(cut(lineage.text(), 400))


def evaluation_text(evaluation: Evaluation | None, tz: ZoneInfo) -> str:
    if evaluation is None:
        return "Evaluation: none recorded"
    return "Evaluation: " + escape(cut(evaluation.text(tz), 400))


GATE_MARKS = {
    GateOutcome.PASSED: ":shield: gate passed",
    GateOutcome.OVERRIDDEN: ":rotating_light: gate overridden",
    GateOutcome.NOT_REQUIRED: "gate: not required",
    GateOutcome.NOT_GATED: "gate: not gated",
}


# --- retraining (commands/models/retrain.py) -------------------------------------------


class PipelineState(StrEnum):
    """Where a training pipeline run stands, in the platform's words made plain (Vertex
    AI's `PipelineState`: QUEUED / PENDING → queued, RUNNING / CANCELLING / PAUSED →
    running, SUCCEEDED, FAILED, CANCELLED)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (PipelineState.SUCCEEDED, PipelineState.FAILED, PipelineState.CANCELLED)


@dataclass(frozen=True)
class PipelineRun:
    """One training pipeline run as the platform reports it (`ModelRegistry.pipeline_status`).

    `registered_version`: the semantic version of the model version the run registered
    (found by its lineage: the registry version produced by this run), once it succeeded;
    None before, or when the registry holds none from it (or none with a semantic version
    alias: `registered_id` then names the registry's own id). `error`: why it failed or was
    cancelled, in words."""

    name: str
    state: PipelineState
    error: str | None = None
    registered_version: str | None = None
    registered_id: str | None = None

    @property
    def done(self) -> bool:
        return self.state.done


ParameterValue = str | int | float | bool


@dataclass(frozen=True)
class RetrainSpec:
    """What a retrain runs, where and why, as its approvers are shown it: the model's
    configured training pipeline template (`[models.X] retrain_template`) with its runtime
    parameters (`retrain_parameters`), the environment whose project and region it runs in
    (`retrain_environment`), where it writes its artifacts, its estimated cost, and the
    version serving when it was requested with that version's lineage (what the run
    retrains). `run_key` is random per request: a pipeline job is adopted on resume only
    when it carries both the change's id and this key, so a job of another database's
    `CHG-N` is never taken for this one's. Stored on the change as JSON
    (`ChangePlan.pipeline`)."""

    model: str
    template: str
    parameters: dict[str, ParameterValue]
    environment: str
    project: str
    region: str
    run_key: str
    pipeline_root: str | None = None
    cost_usd: float | None = None
    base_version: str | None = None  # what the serving alias named when requested
    base_lineage: Lineage = field(default_factory=Lineage)

    def labels(self, change_id: str) -> dict[str, str]:
        """The pipeline job's labels (lowercase letters, digits, `_` and `-`, ≤ 63 each, as
        Vertex AI requires): the change, this request's key and the model."""
        return {
            "aiops_change": change_id.lower(),
            "aiops_run": self.run_key,
            "aiops_model": label_value(self.model),
        }

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "template": self.template,
                "parameters": self.parameters,
                "environment": self.environment,
                "project": self.project,
                "region": self.region,
                "run_key": self.run_key,
                "pipeline_root": self.pipeline_root,
                "cost_usd": self.cost_usd,
                "base_version": self.base_version,
                "base_lineage": {
                    "pipeline_run": self.base_lineage.pipeline_run,
                    "dataset": self.base_lineage.dataset,
                },
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> RetrainSpec | None:
        """The stored spec; None when there is none or it cannot be read."""
        if not text:
            return None
        try:
            d = json.loads(text)
            lineage = d.get("base_lineage") or {}
            cost = d.get("cost_usd")
            return cls(
                model=str(d["model"]),
                template=str(d["template"]),
                parameters=dict(d.get("parameters") or {}),
                environment=str(d["environment"]),
                project=str(d["project"]),
                region=str(d["region"]),
                run_key=str(d["run_key"]),
                pipeline_root=d.get("pipeline_root"),
                cost_usd=float(cost) if cost is not None else None,
                base_version=d.get("base_version"),
                base_lineage=Lineage(lineage.get("pipeline_run"), lineage.get("dataset")),
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            return None


def label_value(text: str) -> str:
    """`text` as a Vertex AI label value: lowercase, every character other than a letter,
    digit, `_` or `-` replaced by `_`, at most 63 characters."""
    lowered = text.lower()
    return "".join(c if (c.isalnum() and c.isascii()) or c in "_-" else "_" for c in lowered)[:63]


def parameters_text(parameters: dict[str, ParameterValue], most: int = 12) -> str:
    """`` `dataset=bq://…` · `epochs=3` `` for a card: sorted, each cut, at most `most`."""
    if not parameters:
        return "none"
    items = sorted(parameters.items())
    shown = " · ".join(
        f"`{escape(cut(k, 60))}={escape(cut(str(v), 120))}`" for k, v in items[:most]
    )
    return shown + (f" · +{len(items) - most} more" if len(items) > most else "")
