"""The scheduler in its own process, beside the command workers (`AIOPS_COMMAND_WORKERS`
≥ 1): digests, housekeeping and the canary watch then never take the GIL from the event
loop that acks, and the server that acks never imports them.

The process builds its own service (as a command worker does), resumes the changes a stop
left running or approved, starts the scheduler (`bot.wiring.make_scheduler`), reports
`done` or `failed: …` on a pipe, and runs until the server sets its stop event. It runs
at the workers' lower priority and ignores SIGINT / SIGTERM: the server stops it after
uvicorn has stopped taking requests, and a change it is polling is finished first.

One that dies (killed, out of memory) is started again by a thread of the server, as a
dead command worker is replaced: its replica's takeover sweep, canary watch and
housekeeping would otherwise stop for good (`/healthz` failing makes an instance unready,
not restarted). A start that fails is tried again after a pause that doubles up to 30 s."""

from __future__ import annotations

import logging
import os
import threading
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

STOP_TIMEOUT = 120.0  # seconds to finish a digest or a change's polling before it is killed
RESTART_MAX_PAUSE = 30.0  # seconds between tries to start one that keeps failing to start


def _main(settings: Settings, report: Connection, stop: Any, nice: int, server: int) -> None:
    try:
        from bot.serve.workers import child_service
        from bot.wiring import make_scheduler, resume_then_schedule

        service = child_service(settings, nice, server=server, title="aiops-scheduler")
        scheduler = resume_then_schedule(service, lambda: make_scheduler(service))
    except Exception as exc:
        from bot.store.db import NotMigrated

        if isinstance(exc, NotMigrated):  # one line says it all: no traceback
            log.error("the scheduler process could not start: %s", exc)
        else:
            log.exception("the scheduler process could not start")
        report.send(f"failed: {type(exc).__name__}")
        return
    report.send("done")
    stop.wait()
    if scheduler is not None:
        scheduler.shutdown()
    try:  # a change this process started or resumed finishes polling first
        service.rt.background.wait_idle(STOP_TIMEOUT)
    except Exception:
        log.exception("background work failed while the scheduler process stopped")


class SchedulerProcess:
    """Start, watch (start again when it dies) and stop the scheduler process."""

    def __init__(self, settings: Settings, *, nice: int = 10) -> None:
        self.settings = settings
        self.nice = nice
        self._proc: BaseProcess | None = None
        self._stop: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0  # how many times it was started again after it died

    def start(self, timeout: float = 300.0) -> None:
        """Start it and wait until it has started its scheduler; raise if it could not.
        From then on, start it again whenever it dies, until `stop`."""
        with self._lock:
            self._spawn(timeout)
        self._watcher = threading.Thread(target=self._watch, name="scheduler-watch", daemon=True)
        self._watcher.start()

    def _watch(self, timeout: float = 300.0) -> None:
        failures = 0
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            wait([proc.sentinel], timeout=1.0)
            if proc.is_alive() or self._stopping.is_set():
                continue
            proc.join(0)
            if failures:
                pause = min(RESTART_MAX_PAUSE, 0.5 * 2 ** (failures - 1))
                if self._stopping.wait(pause):
                    return
            else:
                log.error(
                    "the scheduler process (pid %s) died with exit code %s; starting another",
                    proc.pid,
                    proc.exitcode,
                )
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn(timeout)
                except SchedulerProcessError as exc:
                    failures += 1
                    log.error("%s; trying again", exc)
                    if self._proc is not None and self._proc.is_alive():  # hung in its start
                        self._proc.kill()
                        self._proc.join(5)
                    continue
            failures = 0
            self.restarts += 1
            log.warning("the scheduler process was started again (pid %s)", self.pid())

    def _spawn(self, timeout: float) -> None:
        from bot.serve.workers import context

        ctx = context()
        receive, send = ctx.Pipe(duplex=False)
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=_main,
            args=(self.settings, send, self._stop, self.nice, os.getpid()),
            name="aiops-scheduler",
        )
        self._proc.start()
        send.close()
        try:
            state = receive.recv() if receive.poll(timeout) else "failed: no answer"
        except EOFError:  # it died before it could say
            self._proc.join(5)
            state = f"failed: exit code {self._proc.exitcode}"
        finally:
            receive.close()
        if state != "done":
            self._proc.join(10)  # it returns once it has reported
            raise SchedulerProcessError(state.removeprefix("failed: "))

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        with self._lock:
            if self._proc is None:
                return
            self._stop.set()
            self._proc.join(STOP_TIMEOUT)
            if self._proc.is_alive():
                log.error("the scheduler process did not stop in %.0f s; killing it", STOP_TIMEOUT)
                self._proc.kill()
                self._proc.join(5)


class SchedulerProcessError(RuntimeError):
    """The scheduler process could not start; `reason` is what it reported."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the scheduler process could not start: {reason}")
        self.reason = reason
