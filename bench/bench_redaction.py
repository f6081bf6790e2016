"""Recall, false positives and throughput of commands/redaction.py.

    .venv/bin/python -m bench redaction [--seconds 1.0]   (or bench/bench_redaction.py)

Recall and false positives are measured on the generated corpus of
`bench/redaction_corpus.py` (street addresses in AU, NZ, UK and US shapes, labelled
names, labelled dates of birth, IBANs; operational text that must pass unchanged) — the same lines the test suite
asserts on. Throughput workloads come from the test corpora: operational text (what the
bot mostly says and logs; the corpus is number-heavy on purpose), sentences full of PII,
a 90/10 mix of the two, one 64 KiB log blob, and the generated lines. Throughput is per
CPU second of this process. Prints tables, then one JSON line for machines.
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

from bench import redaction_corpus  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per workload")
    parser.add_argument("--quick", action="store_true", help="0.3 s per workload")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 0.3)

    ops = _lines("operational_text.txt")
    pii = _lines("pii_sentences.txt")
    mixed = [pii[i % len(pii)] if i % 10 == 0 else ops[i % len(ops)] for i in range(1000)]
    blob_lines = (ops * 100)[:800]
    blob = "\n".join(blob_lines)[: 64 * 1024]

    redactor = Redactor(b"bench-key")
    quality = redaction_corpus.measure(redactor.redact)
    generated = [s.text for s in redaction_corpus.pii_samples()]
    workloads = {
        "operational": ops,
        "pii": pii,
        "mixed 90/10": mixed,
        "64 KiB blob": [blob],
        "generated": generated + redaction_corpus.operational(),
    }
    results = {}
    for name, lines in workloads.items():
        redactor.redact(lines[0])  # warm up
        per_s, mb_s = _measure(redactor, lines, args.seconds)
        results[name] = {"lines_per_s": round(per_s), "mb_per_s": round(mb_s, 2)}

    print(f"{'generated corpus':<18} {'found':>7} {'of':>5} {'recall':>8}")
    for kind, m in quality.items():
        if m.total:
            print(f"{kind:<18} {m.recalled:>7} {m.total:>5} {m.recall:>8.1%}")
    ops_m = quality["operational"]
    print(
        f"{'operational':<18} {ops_m.false_positives:>7} {ops_m.operational:>5}"
        f" {ops_m.false_positive_rate:>8.1%} false positives"
    )
    for line in [x for m in quality.values() for x in m.misses + m.changed][:10]:
        print("  ", line)
    print()
    print(f"{'workload':<14} {'lines/s':>10} {'MB/s':>7}")
    for name, r in results.items():
        print(f"{name:<14} {r['lines_per_s']:>10,} {r['mb_per_s']:>7.2f}")
    print(
        json.dumps(
            {
                "bench": "redaction",
                "python": platform.python_version(),
                "quality": {
                    kind: {
                        "recall": round(m.recall, 4),
                        "found": m.recalled,
                        "total": m.total,
                        "false_positives": m.false_positives,
                        "operational_lines": m.operational,
                    }
                    for kind, m in quality.items()
                },
                "results": results,
                "seconds_per_workload": args.seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
