"""What one command costs the bot, in process: `Service.handle` for each command of the
ack benchmark's mix, on the sandbox and a SQLite file (wall time and the thread's CPU
time, medians). This is the work that competes with acks for the interpreter; CPU time
is steadier than latency on a busy machine.

    python -m bench commands [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import report
from bot.settings import Settings
from bot.wiring import build_runtime
from commands.config import SandboxSettings, load_config
from commands.model import Actor, Invocation
from commands.runtime import NullNotifier
from commands.service import Service

ALICE, BOB, DAVE = Actor("U0ALICE", "alice"), Actor("U0BOB", "bob"), Actor("U0DAVE", "dave")
MIX = [
    (ALICE, "/aiops", "status"),
    (BOB, "/aiops", "status loan-assessor-stg"),
    (DAVE, "/aiops", "changes"),
    (DAVE, "/aiops", "audit loan-assessor-stg since=24h"),
    (ALICE, "/deploy", 'loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="bench"'),
    (ALICE, "/rollback", 'loan-assessor-stg reason="bench"'),
    (DAVE, "/deploy", "loan-assessor gemma-3-1b-it@1.2.1 canary=10"),
    (ALICE, "/aiops", "frobnicate now"),
    (BOB, "/aiops", "approve CHG-1"),
    (BOB, "/aiops", "reject CHG-1"),
]


def run(rounds: int = 40) -> dict[str, Any]:
    logging.getLogger("commands.redaction").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="aiops-bench-cmd-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        config = replace(
            load_config(settings.config_path), sandbox=SandboxSettings(operation_seconds=0.5)
        )
        rt = build_runtime(settings, NullNotifier(), config=config)
        service = Service(rt)
        service.handle(
            Invocation(ALICE, "/deploy", 'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="x"')
        )
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(rounds):
            for actor, command, text in MIX:
                key = f"{command} {text.split()[0]}"
                c0, w0 = time.thread_time(), time.perf_counter()
                service.handle(Invocation(actor, command, text, channel_id="C0OPS"))
                cpu.setdefault(key, []).append(time.thread_time() - c0)
                wall.setdefault(key, []).append(time.perf_counter() - w0)
        rt.background.wait_idle(60)
        rt.background.shutdown()
    return {
        "commands": {
            k: {
                "wall_ms": round(statistics.median(wall[k]) * 1000, 2),
                "cpu_ms": round(statistics.median(cpu[k]) * 1000, 2),
            }
            for k in wall
        },
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench commands", description=__doc__)
    p.add_argument("--quick", action="store_true", help="10 rounds instead of 40")
    p.add_argument("--rounds", type=int)
    args = p.parse_args(argv)
    out = run(args.rounds or (10 if args.quick else 40))
    rows = [[k, v["wall_ms"], v["cpu_ms"]] for k, v in out["commands"].items()]
    report("commands", "One command in process (median ms)", ["command", "wall", "cpu"], rows, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
