"""Settings from the environment. Secrets are read here and nowhere else, and never logged.

The variables are validated by one pydantic-settings model (`EnvSettings`): a bad value
(`PORT=abc`, `AIOPS_POLL_SECONDS=-1`, `AIOPS_LEASE_SECONDS=0`, `LOG_LEVEL=LOUD`) is a
`SettingsError` naming the variable and what it may be, every bad variable at once; the
CLI prints it and exits 2.
Secret variables are never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_CONFIG = Path(__file__).parent / "config" / "example.toml"
SECRET_VARIABLES = frozenset(
    {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "DATABASE_URL", "AIOPS_PII_KEY"}
)


class SettingsError(ValueError):
    """`problems`: one line per bad variable, e.g. `PORT=abc: must be a whole number 1–65535`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class EnvValues(BaseModel):
    """The environment variables the bot reads (README's variables table), validated."""

    model_config = ConfigDict(extra="ignore")

    AIOPS_CONFIG: Path | None = Field(None, description="path to the TOML config")
    DATABASE_URL: str | None = Field(None, repr=False, description="PostgreSQL URL")
    AIOPS_DATA_DIR: Path = Field(Path("var"), description="where the SQLite file lives")
    SLACK_BOT_TOKEN: str | None = Field(None, repr=False)
    SLACK_SIGNING_SECRET: str | None = Field(None, repr=False)
    SLACK_APP_TOKEN: str | None = Field(None, repr=False)
    SLACK_API_BASE_URL: str | None = Field(None, pattern=r"^https?://")
    PORT: int = Field(3000, ge=1, le=65535)
    HOST: str = "0.0.0.0"  # noqa: S104  # nosec B104
    AIOPS_POLL_SECONDS: float = Field(1.0, gt=0, le=3600)
    AIOPS_COMMAND_WORKERS: int | None = Field(None, ge=0, le=64)
    AIOPS_LEASE_SECONDS: float = Field(30.0, ge=1, le=3600)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class EnvSettings(BaseSettings, EnvValues):
    """The same variables read from the process environment by pydantic-settings (names
    as written, empty values ignored)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", env_ignore_empty=True)


_WHAT = {
    "PORT": "a whole number 1–65535",
    "AIOPS_POLL_SECONDS": "a number of seconds > 0 (at most 3600)",
    "AIOPS_COMMAND_WORKERS": "a whole number 0–64 (0 = threads)",
    "AIOPS_LEASE_SECONDS": "a number of seconds 1–3600",
    "LOG_LEVEL": "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "SLACK_API_BASE_URL": "an http(s) URL",
}


def read_env(env: Mapping[str, str] | None = None) -> EnvValues:
    """Validate the process environment, or only the variables of `env` when given (tests,
    child processes): nothing else of the process leaks into an explicit mapping."""
    try:
        if env is None:
            return EnvSettings()
        known = {k: v for k, v in env.items() if k in EnvValues.model_fields and v != ""}
        return EnvValues.model_validate(known)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0])
            shown = "(secret, not shown)" if name in SECRET_VARIABLES else repr(err.get("input"))
            what = _WHAT.get(name, str(err["msg"]).lower())
            problems.append(f"{name}={shown}: must be {what}")
        raise SettingsError(problems) from None


@dataclass(frozen=True)
class Settings:
    config_path: Path = BUNDLED_CONFIG
    database_url: str | None = None
    data_dir: Path = Path("var")
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_base_url: str | None = None
    port: int = 3000
    host: str = "0.0.0.0"  # noqa: S104  # nosec B104 - a container listens on all interfaces
    poll_seconds: float = 1.0
    # A change's lease on its background work (`Runtime.lease_ttl`): a worker that stops
    # heartbeating is taken over this long after its last beat, plus the takeover sweep.
    lease_seconds: float = 30.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """From the environment; `SettingsError` (every bad variable) when one is wrong."""
        e = read_env(env)
        return cls(
            config_path=e.AIOPS_CONFIG or BUNDLED_CONFIG,
            database_url=e.DATABASE_URL,
            data_dir=e.AIOPS_DATA_DIR,
            slack_bot_token=e.SLACK_BOT_TOKEN,
            slack_signing_secret=e.SLACK_SIGNING_SECRET,
            slack_app_token=e.SLACK_APP_TOKEN,
            slack_api_base_url=e.SLACK_API_BASE_URL,
            port=e.PORT,
            host=e.HOST,
            poll_seconds=e.AIOPS_POLL_SECONDS,
            lease_seconds=e.AIOPS_LEASE_SECONDS,
            log_level=e.LOG_LEVEL,
        )

    @property
    def real_slack(self) -> bool:
        """Credentials for Slack itself (not a local stub named by SLACK_API_BASE_URL)."""
        has_secret = bool(self.slack_signing_secret or self.slack_app_token)
        return bool(self.slack_bot_token) and has_secret and not self.slack_api_base_url

    def sqlite_url(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'aiops-bot.db').resolve()}"

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url()
