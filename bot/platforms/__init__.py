"""Platform adapters: the embedded sandbox (default) and Vertex AI (`platform = "vertex"`).

The Vertex adapter is imported only when the config asks for it: Google's libraries
cost seconds to import and the sandbox needs none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from commands.config import Config
from commands.models.ports import ModelRegistry
from commands.ports import Platform


def make_platform(config: Config, engine: Engine, clock: Callable[[], datetime]) -> Platform:
    if config.platform == "vertex":
        from bot.platforms.vertex import VertexPlatform  # type: ignore[import-not-found,unused-ignore]

        return VertexPlatform.from_config(config)  # type: ignore[no-any-return,unused-ignore]
    from bot.platforms.sandbox import SandboxPlatform

    return SandboxPlatform(engine, config, clock)


def make_registry(
    config: Config, engine: Engine, platform: Platform, clock: Callable[[], datetime]
) -> ModelRegistry:
    """The model registry beside the platform: Vertex AI's Model Registry on the Vertex
    platform's clients, else the sandbox's (the config's cards, aliases in the database)."""
    if config.platform == "vertex":
        from bot.platforms.vertex_registry import VertexRegistry  # type: ignore[import-not-found,unused-ignore]

        return VertexRegistry(platform)  # type: ignore[arg-type,unused-ignore]
    from bot.platforms.sandbox_registry import SandboxRegistry

    return SandboxRegistry(engine, config, clock)
