#!/usr/bin/env python3
"""Verify an aiops-bot audit export without aiops-bot.

    python3 verify_audit.py audit.jsonl [--start HASH] [--head HASH] [--rows-only]

Needs Python 3.8+ and the RFC 8785 canonicaliser (`pip install rfc8785`), nothing else.
The input is `aiops-bot audit export --format jsonl`: one JSON object per line, in id
order. docs/audit-verification.md is the byte-level recipe this file implements:

- chain_version 2: sha256(JCS({the 13 members below})), hex;
- chain_version 1 (rows from before version 2): sha256(prev_hash + Python's
  json.dumps(body, sort_keys=True, separators=(",", ":"))), hex.

Each row's hash is recomputed, and each row must name the previous row's hash as its
prev_hash. `--start`: the prev_hash the first row must have (default: accept any, and
print it; `0` * 64 is the beginning of the chain). `--head`: the hash the last row must
have (e.g. a checkpoint's head hash from the `aiops-audit` log). `--rows-only`: check each
row's own hash but not the links (for an export filtered by endpoint or person).
Exit status: 0 intact, 1 a problem (the first one is printed), 2 unreadable input.
"""

import argparse
import hashlib
import json
import sys

import rfc8785

GENESIS = "0" * 64
# The row's members every version hashes (version 2 adds chain_version and prev_hash).
FIELDS = (
    "action",
    "actor_id",
    "at",
    "change_id",
    "environment",
    "justification",
    "outcome",
    "parameters",
    "request_id",
    "retain_until",
    "target",
)


def row_hash(row):
    params = row["parameters"]
    if isinstance(params, str):  # the export writes parameters as JSON text
        params = json.loads(params)
    body = {name: row[name] for name in FIELDS}
    body["parameters"] = params
    version = row.get("chain_version") or 1
    if version == 2:
        body["chain_version"] = 2
        body["prev_hash"] = row["prev_hash"]
        return hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    if version == 1:
        if body["retain_until"] is not None:  # version 1 hashed it to the second
            body["retain_until"] = body["retain_until"][:19] + "+00:00"
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256((row["prev_hash"] + text).encode()).hexdigest()
    raise ValueError(f"unknown chain_version {version!r}")


def verify(rows, start=None, head=None, links=True):
    """The first problem as text, or None."""
    by_hash = {row["hash"]: i for i, row in enumerate(rows)}
    previous = start
    for i, row in enumerate(rows):
        where = f"line {i + 1} (id {row.get('id')})"
        try:
            recomputed = row_hash(row)
        except (KeyError, ValueError, TypeError, rfc8785.CanonicalizationError) as exc:
            return f"{where}: cannot be hashed: {exc}"
        if recomputed != row["hash"]:
            return f"{where}: edited - its content hashes to {recomputed}, not {row['hash']}"
        if links and previous is not None and row["prev_hash"] != previous:
            later = by_hash.get(row["prev_hash"])
            if later is not None and later > i:
                what = f"reordered - it was written after line {later + 1}, which comes later"
            elif later is not None:
                what = f"inserted - it follows line {later + 1}; the lines between were put in"
            elif i == 0:
                what = f"the chain does not start at {previous}"
            else:
                what = f"deleted - the row before it (hash {row['prev_hash']}) is missing"
            return f"{where}: {what}"
        previous = row["hash"]
    if head is not None and (not rows or rows[-1]["hash"] != head):
        last = rows[-1]["hash"] if rows else "nothing"
        return f"the last row's hash is {last}, not the expected head {head} (rows cut off?)"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description="Verify an aiops-bot audit export (JSONL).")
    parser.add_argument("export", help="the file written by `aiops-bot audit export`")
    parser.add_argument("--start", help="the prev_hash the first row must name")
    parser.add_argument("--head", help="the hash the last row must have")
    parser.add_argument("--rows-only", action="store_true", help="do not check the links")
    args = parser.parse_args(argv)
    rows = []
    try:
        with open(args.export, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        print(f"BROKEN: line {number} is not JSON ({exc})", file=sys.stderr)
                        return 1
    except OSError as exc:
        print(f"cannot read {args.export}: {exc}", file=sys.stderr)
        return 2
    problem = verify(rows, args.start, args.head, links=not args.rows_only)
    if problem:
        print("BROKEN: " + problem, file=sys.stderr)
        return 1
    if not rows:
        print("OK: no rows - nothing was verified (an empty export, or a window with no rows)")
        return 0
    versions = {}
    for row in rows:
        version = row.get("chain_version") or 1
        versions[version] = versions.get(version, 0) + 1
    counts = ", ".join(f"version {v}: {n}" for v, n in sorted(versions.items()))
    checked = "hashes" if args.rows_only else "hashes and links"
    print(f"OK: {len(rows)} row(s) ({counts}); {checked} recomputed")
    first = rows[0]["prev_hash"]
    if first == GENESIS:
        print(f"first prev_hash {first} (the beginning of the chain)")
    else:
        # A window (`--since`) starts mid-chain; so does a file whose first rows were cut.
        # Only --start (or the previous export's head) tells the two apart.
        print(
            f"first prev_hash {first}: the file starts AFTER the beginning of the chain;"
            " rows before its first are not in it"
            + ("" if args.start else " (give --start to check what it must follow)")
        )
    print(f"head id {rows[-1].get('id')} hash {rows[-1]['hash']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
