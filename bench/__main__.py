"""`python -m bench [NAME ...] [--quick]`: run every benchmark, or the ones named.

Each benchmark is a module `bench.bench_<name>` with `main(argv) -> int`; it prints a
Markdown table and one JSON line (`{"bench": ...}`) per result.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

# name → module; `memory` is measured by the ack benchmark (RSS idle and after the load);
# `chaos` (kills processes of two replicas, ~15 min for 300 trials) runs only when named
BENCHES = {
    "ack": "bench.bench_ack",
    "memory": "bench.bench_ack",
    "digest": "bench.bench_digest",
    "audit": "bench.bench_audit",
    "startup": "bench.bench_startup",
    "commands": "bench.bench_commands",
    "canary": "bench.bench_canary",
    "redaction": "bench.bench_redaction",
    "chaos": "bench.bench_chaos",
    "respond": "bench.bench_respond",
}
DEFAULT = ("startup", "commands", "ack", "digest", "audit", "canary", "redaction", "respond")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHES, []],
        metavar="NAME",
        help=f"one or more of {', '.join(BENCHES)} (default: all)",
    )
    p.add_argument("--quick", action="store_true", help="smaller runs (about a minute each)")
    args, rest = p.parse_known_args(argv)
    names = list(dict.fromkeys(BENCHES[n] for n in (args.names or DEFAULT)))
    failed = 0
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            print(f"\n## {module_name}: not available ({exc})", flush=True)
            failed += 1
            continue
        print(f"\n## {module_name}", flush=True)
        t0 = time.monotonic()
        code = module.main([*(["--quick"] if args.quick else []), *rest])
        print(f"({module_name} took {time.monotonic() - t0:.0f} s)", flush=True)
        failed += 1 if code else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
