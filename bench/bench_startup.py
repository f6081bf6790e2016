"""Item 4: start-up.

- `aiops-bot serve` (HTTP, sandbox, SQLite): from process start to the first `200` from
  `/healthz`, cold (a new database: migrations run) and warm (the database exists);
- the import time of Google's client libraries, each in a fresh interpreter;
- the floor of the ack benchmark (a bare Bolt `AsyncApp` under uvicorn) the same way,
  interleaved with the warm starts: what any Bolt app on this stack needs here and now;
- which `google.*` modules a serving sandbox bot has imported: started with
  `python -X importtime`, asked `/healthz` and one `/aiops status`, then stopped; its
  import log is searched for `google`. The goal is none.

    python -m bench startup [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    cpu_seconds,
    report,
    stop,
    wait_http,
)
from tests.support.processes import descendants, free_port
from tests.support.wire import BOT_TOKEN, SIGNING_SECRET, sign, slash_body

GOOGLE_MODULES = (
    "google.cloud.aiplatform_v1",
    "google.cloud.monitoring_v3",
    "google.cloud.logging",
    "google.cloud.aiplatform",
)


def serve_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        # nothing listens here: start-up makes no Slack call
        "SLACK_API_BASE_URL": f"http://127.0.0.1:{free_port()}/api/",
        "AIOPS_DATA_DIR": str(data_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    for key in ("DATABASE_URL", "SLACK_APP_TOKEN", "AIOPS_CONFIG"):
        env.pop(key, None)
    return env


def time_to_ready(data_dir: Path, extra: list[str] | None = None) -> tuple[float, float]:
    """Seconds from `Popen` to the first `200` from `/healthz`, and the CPU seconds the
    server used by then (steadier than the wall time on a shared machine)."""
    port = free_port()
    return _ready(
        [PYTHON, *(extra or []), "-m", "bot.cli", "serve"], serve_env(data_dir, port), port
    )


def floor_time_to_ready() -> tuple[float, float]:
    """The same for the floor of the ack benchmark (`bench.floor_app`: a bare Bolt
    `AsyncApp` under uvicorn): what any Bolt app on this stack needs, on this machine at
    this moment."""
    port = free_port()
    args = [PYTHON, "-m", "bench.floor_app", str(port), "http://127.0.0.1:9/api/"]
    return _ready(args, dict(os.environ), port)


def _ready(args: list[str], env: dict[str, str], port: int) -> tuple[float, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ready = wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc, interval=0.002)
        cpu = cpu_seconds(proc.pid)
        children = descendants(proc.pid)
    finally:
        stop(proc)
    # The next start must not share the cores with this one's workers on their way out.
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ready - t0, cpu


def import_time(module: str) -> float:
    code = (
        "import time; t = time.perf_counter(); import importlib; "
        f"importlib.import_module({module!r}); print(time.perf_counter() - t)"
    )
    out = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def google_imports_when_serving(tmp: Path) -> list[str]:
    """Top-level names of `google.*` modules imported by a sandbox bot that has started,
    answered `/healthz` and run `/aiops status`."""
    import http.client

    port = free_port()
    env = serve_env(tmp / "importtime", port)
    log = (tmp / "importtime.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-X", "importtime", "-m", "bot.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
        body = slash_body(
            "/aiops", "status", "U0ALICE", "alice", f"http://127.0.0.1:{free_port()}/r"
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/slack/events", body=body, headers=sign(body))
        conn.getresponse().read()
        conn.close()
        time.sleep(1.0)  # the command runs after the ack
    finally:
        stop(proc)
        log.close()
    found = set()
    for line in (tmp / "importtime.log").read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name == "google" or name.startswith("google."):
                found.add(name)
    return sorted(found)


def run(runs: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aiops-bench-start-") as t:
        tmp = Path(t)
        cold, cold_cpu = zip(*(time_to_ready(tmp / f"cold{i}") for i in range(runs)), strict=True)
        warm_dir = tmp / "warm"
        time_to_ready(warm_dir)
        pairs = [(time_to_ready(warm_dir), floor_time_to_ready()) for _ in range(runs)]
        (warm, warm_cpu), (floor, floor_cpu) = (
            zip(*(p[i] for p in pairs), strict=True) for i in (0, 1)
        )
        google = google_imports_when_serving(tmp)
    imports = {m: min(import_time(m) for _ in range(max(1, runs // 2))) for m in GOOGLE_MODULES}
    return {
        "cold_s": [round(x, 3) for x in cold],
        "warm_s": [round(x, 3) for x in warm],
        "floor_s": [round(x, 3) for x in floor],
        "cold_median_s": round(statistics.median(cold), 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "floor_median_s": round(statistics.median(floor), 3),
        "cold_cpu_s": [round(x, 3) for x in cold_cpu],
        "warm_cpu_s": [round(x, 3) for x in warm_cpu],
        "floor_cpu_s": [round(x, 3) for x in floor_cpu],
        "import_s": {k: round(v, 3) for k, v in imports.items()},
        "google_modules_when_serving": google,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    p.add_argument("--quick", action="store_true", help="2 runs each instead of 5")
    p.add_argument("--runs", type=int)
    args = p.parse_args(argv)
    out = run(args.runs or (2 if args.quick else 5))
    rows: list[list[Any]] = [
        [
            "serve → /healthz, new database (s)",
            out["cold_median_s"],
            min(out["cold_s"]),
            max(out["cold_s"]),
        ],
        [
            "serve → /healthz, existing database (s)",
            out["warm_median_s"],
            min(out["warm_s"]),
            max(out["warm_s"]),
        ],
    ]
    floor = out["floor_s"]
    rows.append(
        ["floor (bare Bolt app) → /healthz (s)", out["floor_median_s"], min(floor), max(floor)]
    )
    labels = {"cold": "new database", "warm": "existing database", "floor": "floor"}
    for kind, label in labels.items():
        cpu = out[f"{kind}_cpu_s"]
        rows.append([f"CPU used by then, {label} (s)", statistics.median(cpu), min(cpu), max(cpu)])
    for module, secs in out["import_s"].items():
        rows.append([f"import {module} (s, best)", secs, "", ""])
    report("startup", "Start-up (sandbox, SQLite)", ["what", "median", "min", "max"], rows, out)
    google = out["google_modules_when_serving"]
    print(
        "google.* modules imported by a serving sandbox bot: "
        + (", ".join(google) if google else "none"),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
