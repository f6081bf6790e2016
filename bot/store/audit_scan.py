"""The fast pass of `audit verify`: read the audit table with the raw driver cursor, build
each row's canonical text straight from its columns, and hash it, in parallel chunks.

`bot.store.audit_canon` is the definition (one form per `chain_version`); this module
produces the same bytes without ORM objects or datetimes:

- the timestamps come out of the database already in the canonical text (SQLite stores
  `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, rewritten by `substr`; PostgreSQL formats them
  with `to_char` in UTC), to the microsecond (version 1 cuts `retain_until` to the
  second);
- the top-level strings go through the json module's own C string encoder (ASCII-only
  for version 1, as `json.dumps` does; UTF-8 for version 2, as RFC 8785 does), in sorted
  member order; `parameters` is parsed and re-encoded with the same options.

Rows are independent given their stored `prev_hash`, so chunks of ids are hashed in
separate processes (forked; each opens its own connection) and only the links at the
chunk borders are checked in order. The scan stops at the first row it cannot prove (a
broken link or a hash that does not match); `verify` then walks on from the last proven
row with the row-by-row code, which classifies the problem. A row whose stored text the
fast pass does not read the way the ORM does would only send it to the slow walk early:
the fast pass never accepts a row the slow one would reject, because a row passes only
if SHA-256 over exactly its predecessor's hash and this text equals its stored hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from multiprocessing import get_all_start_methods, get_context
from typing import Any

import rfc8785
from sqlalchemy import Engine

PARALLEL_FROM = 60_000  # rows; below this a process pool costs more than it saves
CHUNK = 50_000  # ids per parallel task
BATCH = 5_000  # rows per fetch

_SQLITE = (
    "SELECT id, substr(at, 1, 10) || 'T' || substr(at, 12) || '+00:00', actor_id, action,"
    " environment, target, parameters, justification, outcome, change_id, request_id,"
    " substr(retain_until, 1, 10) || 'T' || substr(retain_until, 12) || '+00:00',"
    " prev_hash, hash, length(at) = 26 AND (retain_until IS NULL OR length(retain_until) = 26),"
    " chain_version"
    " FROM audit_event WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
)
_POSTGRES = (
    "SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),"
    " actor_id, action, environment, target, parameters::text, justification, outcome,"
    " change_id, request_id,"
    " to_char(retain_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),"
    " prev_hash, hash, true, chain_version"
    " FROM audit_event WHERE id > %s AND id <= %s ORDER BY id LIMIT %s"
)
# Version 1: canonical_v1()'s body, keys in sorted order; the predecessor's hash in front.
_FORMAT_V1 = (
    '%s{"action":%s,"actor_id":%s,"at":"%s","change_id":%s,"environment":%s,'
    '"justification":%s,"outcome":%s,"parameters":%s,"request_id":%s,"retain_until":%s,'
    '"target":%s}'
)
# Version 2: RFC 8785 of body_v2(): members in sorted order (all ASCII names), no spaces.
_FORMAT_V2 = (
    '{"action":%s,"actor_id":%s,"at":"%s","chain_version":2,"change_id":%s,"environment":%s,'
    '"justification":%s,"outcome":%s,"parameters":%s,"prev_hash":"%s","request_id":%s,'
    '"retain_until":%s,"target":%s}'
)
# What `json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)` runs for
# a dict, built once instead of per call; check_circular is moot for parsed JSON.
_c_encoder = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", True, False, True)
# The same without escaping non-ASCII: for text, integers, booleans and null this is
# RFC 8785's serialisation (same escapes, UTF-8 as is, members sorted by name; names
# outside the Basic Multilingual Plane may sort differently, which only sends the row to
# the slow walk). Numbers with a fraction or exponent go through rfc8785 itself.
_c_encoder_utf8 = c_make_encoder(None, str, encode_basestring, None, ":", ",", True, False, True)
_c_scanner = c_make_scanner(json.JSONDecoder())


def _parse(text: str) -> Any:
    try:
        value, end = _c_scanner(text, 0)
    except StopIteration:
        value, end = None, -1
    if end != len(text):
        value = json.loads(text)  # whitespace around it
    return value


def _params(text: str) -> str:
    """canonical_v1()'s text of a stored `parameters` value."""
    value = _parse(text)
    if isinstance(value, dict):
        return "".join(_c_encoder(value, 0))
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def _params_jcs(text: str) -> str:
    """RFC 8785's text of a stored `parameters` value."""
    value = _parse(text)
    if isinstance(value, dict) and not _has_float(value):
        return "".join(_c_encoder_utf8(value, 0))
    return rfc8785.dumps(value).decode("utf-8")


@dataclass(frozen=True)
class ScanResult:
    good: int  # rows proven, in id order from the start
    last_id: int  # the last proven row (0 when none)
    last_hash: str  # its hash (the starting hash when none)
    stopped: bool  # a row could not be proven: the slow walk takes over after last_id


@dataclass(frozen=True)
class _Chunk:
    good: int
    first_prev: str | None  # prev_hash of the chunk's first row (None: chunk empty)
    last_id: int
    last_hash: str
    stopped: bool


def _text(row: Sequence[Any]) -> bytes | None:
    """The bytes the row's hash covers, per its chain version (None: a version unknown
    here, or a row this pass does not read: the slow walk decides)."""
    (_, at, actor, action, env, target, params, just, outcome, chg, req, ret) = row[:12]
    prev, version = row[12], row[15]
    if version == 2:
        enc = encode_basestring
        return (
            _FORMAT_V2
            % (
                enc(action),
                enc(actor),
                at,
                "null" if chg is None else enc(chg),
                "null" if env is None else enc(env),
                "null" if just is None else enc(just),
                enc(outcome),
                _params_jcs(params),
                prev,
                "null" if req is None else enc(req),
                "null" if ret is None else f'"{ret}"',
                "null" if target is None else enc(target),
            )
        ).encode("utf-8", "surrogatepass")
    if version == 1:
        enc = encode_basestring_ascii
        return (
            _FORMAT_V1
            % (
                prev,
                enc(action),
                enc(actor),
                at,
                "null" if chg is None else enc(chg),
                "null" if env is None else enc(env),
                "null" if just is None else enc(just),
                enc(outcome),
                _params(params),
                "null" if req is None else enc(req),
                "null" if ret is None else f'"{ret[:19]}+00:00"',  # to the second
                "null" if target is None else enc(target),
            )
        ).encode()
    return None


def _check(rows: Sequence[Sequence[Any]], expected: str | None) -> tuple[int, int, str, bool]:
    """Prove rows in order; `expected` is the previous row's hash (None: take the first
    row's prev_hash on trust — the caller checks that border). Returns (proven, last id,
    last hash, stopped)."""
    sha = hashlib.sha256
    good, last_id, last_hash = 0, 0, expected or ""
    for row in rows:
        row_id, prev, hash_, plain = row[0], row[12], row[13], row[14]
        if (expected is not None and prev != expected) or not plain:
            return good, last_id, last_hash, True
        try:
            data = _text(row)
        except (ValueError, TypeError, rfc8785.CanonicalizationError):
            data = None
        if data is None or sha(data).hexdigest() != hash_:
            return good, last_id, last_hash, True
        good, last_id, last_hash, expected = good + 1, row_id, hash_, hash_
    return good, last_id, last_hash, False


def _batches(conn: Any, sql: str, after: int, upto: int) -> Iterator[list[Any]]:
    cur = conn.cursor()
    try:
        while True:
            cur.execute(sql, (after, upto, BATCH))
            rows = cur.fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]
    finally:
        cur.close()


def _scan_range(conn: Any, sql: str, after: int, upto: int, expected: str | None) -> _Chunk:
    good, last_id, last_hash, first_prev = 0, after, expected or "", None
    for rows in _batches(conn, sql, after, upto):
        if first_prev is None:
            first_prev = rows[0][12]
        n, lid, lhash, stopped = _check(rows, expected)
        good += n
        if n:
            last_id, last_hash = lid, lhash
        if stopped:
            return _Chunk(good, first_prev, last_id, last_hash, True)
        expected = last_hash
    return _Chunk(good, first_prev, last_id, last_hash, False)


def _connect(dialect: str, target: Any) -> Any:
    if dialect == "sqlite":
        import sqlite3

        return sqlite3.connect(target, check_same_thread=False)
    import psycopg

    return psycopg.connect(**target)


def _work(dialect: str, target: Any, after: int, upto: int) -> _Chunk:
    """One parallel task: its own connection, ids in (after, upto]."""
    conn = _connect(dialect, target)
    try:
        return _scan_range(conn, _SQLITE if dialect == "sqlite" else _POSTGRES, after, upto, None)
    finally:
        conn.close()


def _target(engine: Engine, raw: Any) -> Any:
    """What a forked worker needs to open its own connection (None: it cannot)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        return path if path and path != ":memory:" and not path.startswith("file:") else None
    if engine.dialect.name == "postgresql" and hasattr(raw, "info"):
        params = dict(raw.info.get_parameters())
        if raw.info.password:
            params["password"] = raw.info.password
        return params
    return None


def scan(
    engine: Engine, raw: Any, after: int, expected: str, *, workers: int | None = None
) -> ScanResult:
    """Prove the rows after id `after`, the first of which must follow hash `expected`.

    `raw` is the caller's DBAPI connection (only read from here, never committed or
    closed). `workers`: processes for a large table (default: the CPUs, at most 4)."""
    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return ScanResult(0, after, expected, True)
    sql = _SQLITE if dialect == "sqlite" else _POSTGRES
    cur = raw.cursor()
    try:
        cur.execute(
            "SELECT min(id), max(id) FROM audit_event WHERE id > ?"
            if dialect == "sqlite"
            else "SELECT min(id), max(id) FROM audit_event WHERE id > %s",
            (after,),
        )
        lo, hi = cur.fetchone()
    finally:
        cur.close()
    if lo is None:
        return ScanResult(0, after, expected, False)
    count = hi - lo + 1  # ids, an upper bound on the rows
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    target = _target(engine, raw)
    if (
        workers < 2
        or count < PARALLEL_FROM
        or target is None
        or "fork" not in get_all_start_methods()
    ):
        chunk = _scan_range(raw, sql, after, hi, expected)
        return ScanResult(chunk.good, chunk.last_id, chunk.last_hash, chunk.stopped)
    bounds = [*range(lo - 1, hi, CHUNK), hi]
    good, last_id, last_hash = 0, after, expected
    # Forked workers: they inherit the imports, and open their own connections.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        futures = [pool.submit(_work, dialect, target, a, b) for a, b in pairwise(bounds)]
        try:
            for future in futures:
                chunk = future.result()
                if chunk.first_prev is None:
                    continue
                if chunk.first_prev != last_hash:
                    return ScanResult(good, last_id, last_hash, True)
                good += chunk.good
                if chunk.good:
                    last_id, last_hash = chunk.last_id, chunk.last_hash
                if chunk.stopped:
                    return ScanResult(good, last_id, last_hash, True)
        finally:
            for future in futures:
                future.cancel()
    return ScanResult(good, last_id, last_hash, False)
