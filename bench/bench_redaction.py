"""Throughput of commands/redaction.py, in lines per second.

    .venv/bin/python bench/bench_redaction.py [--seconds 1.0]

Workloads come from the test corpora: operational text (what the bot mostly says and
logs; the corpus is number-heavy on purpose), sentences full of PII, a 90/10 mix of the
two, and one 64 KiB log blob. Throughput is per CPU second of this process. Prints a
table, then one JSON line for machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from commands.redaction import Redactor  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"


def _lines(name: str) -> list[str]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [
        line.split(" ## ")[0]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _measure(redactor: Redactor, lines: list[str], seconds: float) -> tuple[float, float]:
    """(lines per second, MB per second) of CPU time, over at least `seconds`.

    CPU time rather than wall time, so that other work on a shared machine does not
    show up as a slower redactor.
    """
    size = sum(len(line.encode("utf-8")) for line in lines)
    done = 0
    start = time.process_time()
    while True:
        for line in lines:
            redactor.redact(line)
        done += 1
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            break
    return done * len(lines) / elapsed, done * size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per workload")
    args = parser.parse_args()

    ops = _lines("operational_text.txt")
    pii = _lines("pii_sentences.txt")
    mixed = [pii[i % len(pii)] if i % 10 == 0 else ops[i % len(ops)] for i in range(1000)]
    blob_lines = (ops * 100)[:800]
    blob = "\n".join(blob_lines)[: 64 * 1024]

    redactor = Redactor(b"bench-key")
    workloads = {
        "operational": ops,
        "pii": pii,
        "mixed 90/10": mixed,
        "64 KiB blob": [blob],
    }
    results = {}
    for name, lines in workloads.items():
        redactor.redact(lines[0])  # warm up
        per_s, mb_s = _measure(redactor, lines, args.seconds)
        results[name] = {"lines_per_s": round(per_s), "mb_per_s": round(mb_s, 2)}

    print(f"{'workload':<14} {'lines/s':>10} {'MB/s':>7}")
    for name, r in results.items():
        print(f"{name:<14} {r['lines_per_s']:>10,} {r['mb_per_s']:>7.2f}")
    print(
        json.dumps(
            {
                "bench": "redaction",
                "python": platform.python_version(),
                "results": results,
                "seconds_per_workload": args.seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
