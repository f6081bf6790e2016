"""Chaos on two `aiops-bot serve` replicas: how often a killed process doubles an
operation, orphans a model, breaks a split or strands a change.

    .venv/bin/python -m bench chaos [--trials 300] [--seed N] [--endpoints 3]

Needs PostgreSQL at 127.0.0.1:5432 (database `test`, `AIOPS_TEST_PG` to change it): a
schema `chaos_…` is created, migrated and dropped. The cluster, the trials and the checks
are `tests/support/chaos.py` (the same as `tests/edge/test_chaos.py`, which runs 30
trials): `--trials` is rounded up to whole rounds of one trial per endpoint, one kill a
round. Prints the counts table, then one JSON line. Exit code 1 when any count that must
be 0 is not.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from tests.support.chaos import KINDS, Counts  # noqa: E402

PG_URL = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def rows(counts: Counts) -> list[list[Any]]:
    """The table: trials, kills by kind, then every count that must be 0."""
    out: list[list[Any]] = [["trials", counts.trials, ""]]
    for kind in KINDS:
        out.append([f"kills: {kind}", counts.kills.get(kind, 0), ""])
    out.append(["kills aimed just after a platform write", counts.aimed, ""])
    for name, value in counts.failures().items():
        out.append([name, value, "ok" if value == 0 else "FAIL"])
    out.append(["changes taken over (execution_resumed)", counts.takeovers, ""])
    out.append(["stranded changes a rollback ended", counts.stranded_ended, ""])
    out.append(["changes left requested, cancelled by the sweep", counts.abandoned, ""])
    out.append(["changes ended without their audit row", counts.unaudited, ""])
    out.append(["commands refused or lost (re-sent)", counts.refused_or_lost, ""])
    out.append(["longest stranded (s)", round(counts.longest_stranded_s, 1), ""])
    return out


def run(
    trials: int,
    seed: int,
    endpoints: int,
    operation_seconds: float = 1.0,
    verbose: bool = False,
) -> tuple[Counts, int]:
    """Run the chaos; (counts, exit code of `aiops-bot audit verify --full`)."""
    from tests.support.chaos import Chaos, chaos_cluster
    from tests.support.harness import SlackStub

    rounds = max(1, math.ceil(trials / endpoints))
    stub = SlackStub()
    t0 = time.monotonic()

    def log(line: str) -> None:
        if verbose:
            print(f"[{time.monotonic() - t0:7.1f}] {line}", flush=True)

    try:
        with (
            tempfile.TemporaryDirectory(prefix="aiops-chaos-") as work,
            chaos_cluster(
                PG_URL, Path(work), stub, endpoints=endpoints, operation_seconds=operation_seconds
            ) as cluster,
        ):
            counts = Chaos(cluster, seed, log=log).run(rounds)
            verified = cluster.audit_verify()
            if verified.returncode != 0:
                print(verified.stdout, verified.stderr, file=sys.stderr)
    finally:
        stub.close()
    return counts, verified.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials (default 300)")
    parser.add_argument("--seed", type=int, default=14, help="the chaos' seed (default 14)")
    parser.add_argument("--endpoints", type=int, default=3, help="endpoints at once (default 3)")
    parser.add_argument(
        "--operation-seconds",
        type=float,
        default=1.0,
        help="how long a sandbox deploy / undeploy takes (default 1; above the 3 s lease, a"
        " taker finds the dead worker's operation still running)",
    )
    parser.add_argument("--quick", action="store_true", help="30 trials")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every round and kill")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = min(args.trials, 30)
    from tests.support.pg import postgres_problem

    problem = postgres_problem(PG_URL)
    if problem:
        print(f"chaos: PostgreSQL unavailable ({problem})", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    counts, verify_code = run(
        args.trials, args.seed, args.endpoints, args.operation_seconds, args.verbose
    )
    seconds = time.monotonic() - t0
    table = rows(counts)
    table.append(
        ["audit verify --full exit code", verify_code, "ok" if not verify_code else "FAIL"]
    )
    report(
        "chaos",
        f"Chaos: {counts.trials} trials, seed {args.seed}, operations"
        f" {args.operation_seconds:g} s, {seconds:.0f} s",
        ["what", "count", ""],
        table,
        {
            "seed": args.seed,
            "operation_seconds": args.operation_seconds,
            "seconds": round(seconds),
            "audit_verify": verify_code,
        }
        | counts.as_dict(),
    )
    for line in counts.problems:
        print("problem:", line, flush=True)
    for line in counts.notes:
        print("note:", line, flush=True)
    failed = any(counts.failures().values()) or verify_code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
