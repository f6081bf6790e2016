"""The sandbox's model registry on SQLite and PostgreSQL: cards from the config, aliases
kept in the database across instances (a restart, another replica)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from bot.platforms.sandbox_registry import SandboxRegistry
from commands.models.model import ValidationStatus
from commands.ports import PlatformError
from tests.support.harness import FakeClock, example_config

MODEL = "gemma-3-1b-it"


def test_aliases_are_kept_in_the_database(engine: Engine) -> None:
    config, clock = example_config(), FakeClock()
    first = SandboxRegistry(engine, config, clock)
    by_version = {v.version: v for v in first.versions(MODEL)}
    assert by_version["1.2.0"].aliases == ("v1-2-0", "prod")  # the initial version
    assert by_version["1.3.0-rc2"].validation.status is ValidationStatus.REJECTED
    assert by_version["1.3.0-rc2"].lineage.dataset is None  # unknown
    assert first.move_alias(MODEL, "1.2.1", "prod") == "1.2.0"
    assert first.move_alias(MODEL, "1.2.1", "prod") == "1.2.1"  # nothing written
    assert first.writes == 1
    later = SandboxRegistry(engine, config, clock)  # another process, or after a restart
    assert later.move_alias(MODEL, "1.0.0", "champion") is None
    found = later.version(MODEL, "1.2.1")
    assert found is not None and found.aliases == ("v1-2-1", "prod")
    assert {v.version: v.aliases for v in first.versions(MODEL)}["1.0.0"] == (
        "v1-0-0",
        "champion",
    )
    with pytest.raises(PlatformError) as raised:
        later.move_alias(MODEL, "9.9.9", "prod")
    assert raised.value.kind == "not_found"
    assert later.versions("no-such-model") == [] and later.version(MODEL, "9.9.9") is None
