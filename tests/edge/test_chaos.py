"""Chaos on two `serve` replicas (issue #14's proof): 10 rounds of a prod deploy, promote
and rollback on three endpoints at once, a random process of a random replica killed
with SIGKILL at a random moment of each round (seeded), and what the database shows
afterwards. `tests/support/chaos.py` says what is checked; `python -m bench chaos` runs
more trials and prints the counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.chaos import Chaos, chaos_cluster
from tests.support.harness import SlackStub

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds and kills processes in /proc"),
]

ROUNDS = 10
SEED = int(os.environ.get("AIOPS_CHAOS_SEED", "14"))


def test_killed_processes_never_double_an_operation_orphan_a_model_or_strand_a_change(
    pg_url: str, stub: SlackStub, tmp_path: Path
) -> None:
    lines: list[str] = []
    with chaos_cluster(pg_url, tmp_path, stub, endpoints=3) as cluster:
        counts = Chaos(cluster, SEED, log=lines.append).run(ROUNDS)
        verified = cluster.audit_verify()
    report = "\n".join([*lines, *counts.problems])
    assert counts.trials == ROUNDS * 3
    assert sum(counts.kills.values()) >= ROUNDS // 2, report  # the chaos did strike
    assert counts.failures() == {
        "double operations": 0,
        "orphans": 0,
        "non-100 splits": 0,
        "stranded too long": 0,
        "non-terminal": 0,
        "failed for nothing": 0,
    }, report
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
