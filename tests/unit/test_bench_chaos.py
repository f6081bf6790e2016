"""The chaos bench's pieces that need no cluster: the config it generates is one the bot
accepts, as the trials need it, and its table names every count that must be 0 (the run
itself is tests/edge/test_chaos.py)."""

from __future__ import annotations

from pathlib import Path

from bench import bench_chaos
from bot.settings import Settings
from bot.wiring import checked_config
from commands.canary.model import env_policy
from commands.digests.schedule import digest_settings
from tests.support.chaos import KINDS, Counts, chaos_config


def test_the_generated_config_is_valid_and_as_the_trials_need_it(tmp_path: Path) -> None:
    path = chaos_config(tmp_path / "chaos.toml", endpoints=3, operation_seconds=1)
    config = checked_config(Settings(config_path=path))
    chaos = {s: e for s, e in config.endpoints.items() if s.startswith("chaos-")}
    assert sorted(chaos) == ["chaos-1", "chaos-2", "chaos-3"]
    assert {e.environment for e in chaos.values()} == {"prod"}
    assert {e.model for e in chaos.values()} == {"gemma-3-1b-it"}
    assert config.sandbox.operation_seconds == 1
    prod = config.environments["prod"]
    assert prod.approvals_required == 1 and not prod.rollback_requires_approval
    policy = env_policy(config, prod)
    assert not policy.promote_gate and policy.auto_rollback == "ask"
    assert not digest_settings(config).schedules  # no digests


def test_the_table_names_every_kill_and_every_count_that_must_be_zero() -> None:
    counts = Counts(trials=3, orphans=1)
    counts.kills["worker"] = 2
    table = {str(row[0]): row[1:] for row in bench_chaos.rows(counts)}
    assert table["trials"][0] == 3
    assert [table[f"kills: {k}"][0] for k in KINDS] == [2, 0, 0, 0]
    for name in counts.failures():
        assert name in table
    assert table["orphans"] == [1, "FAIL"] and table["double operations"] == [0, "ok"]
    assert counts.as_dict()["orphans"] == 1
