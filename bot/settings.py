"""Settings from the environment. Secrets are read here and nowhere else, and never logged."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_CONFIG = Path(__file__).parent / "config" / "example.toml"


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
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            config_path=Path(e.get("AIOPS_CONFIG") or BUNDLED_CONFIG),
            database_url=e.get("DATABASE_URL") or None,
            data_dir=Path(e.get("AIOPS_DATA_DIR") or "var"),
            slack_bot_token=e.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=e.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=e.get("SLACK_APP_TOKEN") or None,
            slack_api_base_url=e.get("SLACK_API_BASE_URL") or None,
            port=int(e.get("PORT") or 3000),
            host=e.get("HOST") or "0.0.0.0",  # noqa: S104  # nosec B104
            poll_seconds=float(e.get("AIOPS_POLL_SECONDS") or 1.0),
            log_level=(e.get("LOG_LEVEL") or "INFO").upper(),
        )

    def sqlite_url(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'aiops-bot.db').resolve()}"

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url()
