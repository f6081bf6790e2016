"""The lease a process holds on a change's background work while it runs it: renewed by a
heartbeat thread and before every platform call, given up at the end.

The lease itself lives in the change's row (`Store.take_lease` / `renew_lease` /
`release_lease`, each a compare-and-set). This is the holder's side: once a renewal finds
the lease someone else's, `check` raises `LeaseLost` and the holder touches neither the
platform nor the change again."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime

from commands.runtime import Runtime

log = logging.getLogger(__name__)


# What a holder of this release can be asked to do through the change's row, said in its
# owner name so that a replica of another release never promises what the holder will not
# do: `stop` — it honours `Store.request_stop` in a soak (migration 0014). A holder of an
# earlier release (no suffix) is not asked: during a rolling upgrade the rollback then
# waits for its soak as before.
CAPABILITIES = "+stop"


def new_owner() -> str:
    """An owner name unique to this process and this piece of work, with what it can be
    asked (`CAPABILITIES`): `host:pid:uuid8+stop`."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}{CAPABILITIES}"


def stoppable(owner: str | None) -> bool:
    """The lease holder `owner` honours a stop request (see `CAPABILITIES`)."""
    return owner is not None and "+stop" in owner.rpartition(":")[2]


class LeaseLost(Exception):
    """Another process took the change's work over: stop, write nothing."""

    def __init__(self, change_id: str, owner: str) -> None:
        super().__init__(f"{change_id}: lease of {owner} was taken over")
        self.change_id = change_id
        self.owner = owner


class Lease:
    """A held lease: `check()` before each platform call, `start()` the heartbeat after
    taking it, `close()` when the work ends (stops the heartbeat, releases if still held).

    `check` renews at once when the last renewal is a third of the TTL old on the
    runtime's clock, so a holder whose heartbeat thread is starved (or whose clock runs
    faster than the wall, as in tests) still renews while it works."""

    def __init__(self, rt: Runtime, change_id: str, owner: str, taken_at: datetime) -> None:
        self.rt = rt
        self.change_id = change_id
        self.owner = owner
        self._renewed_at = taken_at
        self._lock = threading.Lock()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def renew(self) -> None:
        """Renew now; raises `LeaseLost` (and remembers it) when it is no longer ours."""
        if self._lost.is_set():
            raise LeaseLost(self.change_id, self.owner)
        with self._lock:
            now = self.rt.clock()
            if self.rt.store.renew_lease(self.change_id, self.owner, now, self.rt.lease_ttl):
                self._renewed_at = max(self._renewed_at, now)
                return
            self._lost.set()
        log.warning(
            "%s: the lease of %s was taken over; this worker stops touching it",
            self.change_id,
            self.owner,
        )
        raise LeaseLost(self.change_id, self.owner)

    def check(self) -> None:
        """Before a platform call or a write: raise `LeaseLost` if the work is no longer
        ours; renew if the last renewal is getting old."""
        if self._lost.is_set():
            raise LeaseLost(self.change_id, self.owner)
        with self._lock:
            due = self.rt.clock() - self._renewed_at >= self.rt.lease_ttl / 3
        if due:
            self.renew()

    def lose(self) -> LeaseLost:
        """A fenced write found the lease gone: remember it and say so."""
        self._lost.set()
        log.warning("%s: a write found the lease of %s taken over", self.change_id, self.owner)
        return LeaseLost(self.change_id, self.owner)

    def start(self) -> None:
        """The heartbeat thread: renews every third of the TTL (wall time) until `close`."""
        interval = self.rt.lease_ttl.total_seconds() / 3

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    self.renew()
                except LeaseLost:
                    return
                except Exception:  # a database hiccup: the next beat (or `check`) retries
                    log.exception("%s: renewing the lease failed", self.change_id)

        self._thread = threading.Thread(target=beat, name=f"lease-{self.change_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the heartbeat and give the lease up if it is still ours (after the change
        ended it is already cleared, and this writes nothing)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._lost.is_set():
            return
        try:
            self.rt.store.release_lease(self.change_id, self.owner)
        except Exception:  # it lapses by itself within the TTL
            log.exception("%s: releasing the lease failed", self.change_id)
