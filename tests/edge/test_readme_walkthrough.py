"""The README's first walkthrough, run through the console exactly as written: every reply
is what the README promises (a line `# × N` is typed N times)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def walkthrough() -> list[str]:
    """The lines of the first console block of README.md, prompts removed, repeats expanded."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Try it in the console") :]
    block = section[section.index("```\n") + 4 :]
    block = block[: block.index("```")]
    lines: list[str] = []
    for raw in block.splitlines():
        line = re.sub(r"^\w+> ", "", raw)
        line, _, comment = line.partition("   # ")
        times = re.match(r"× (\d+)", comment)
        lines += [line.strip()] * (int(times[1]) if times else 1)
    return lines


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    lines = walkthrough()
    assert (
        lines[0].startswith("/deploy loan-assessor")
        and lines.count("/aiops canary loan-assessor") == 9
    )
    args = [a for line in lines for a in ("-c", line)]
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--user", "alice", "--json", *args],
        cwd=REPO,
        env={"AIOPS_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    replies = {}
    for item in out:
        if item["kind"] == "reply":
            replies.setdefault(item["command"], []).append(item)
    everything = [r for rs in replies.values() for r in rs]
    assert all(r["ok"] for r in everything), [r["text"] for r in everything if not r["ok"]]
    assert replies[lines[0]][0]["text"] == "CHG-1 is waiting for approval"
    assert replies["/aiops approve CHG-1"][0]["text"].startswith("Approved CHG-1")
    checks = replies["/aiops canary loan-assessor"]
    assert len(checks) == 9
    assert "no regression*" in json.dumps(checks[-1]["blocks"])
    promote = next(c for c in replies if c.startswith("/promote"))
    assert replies[promote][0]["text"] == "CHG-2 is waiting for approval"
    assert replies["/aiops approve CHG-2"][0]["text"].startswith("Approved CHG-2")
    posts = [item["text"] for item in out if item["kind"] == "post"]
    assert any("CHG-2" in p and "succeeded" in p for p in posts)
    # a blue/green deploy in staging, its promote, then a prod scale-down, approved
    blue_green = next(c for c in replies if "strategy=blue-green" in c)
    assert replies[blue_green][0]["text"] == "CHG-3 is running"
    assert "blue/green" in json.dumps(replies[blue_green][0]["blocks"])
    assert replies["/promote loan-assessor-stg"][0]["text"] == "CHG-4 is running"
    scale = next(c for c in replies if c.startswith("/aiops scale"))
    assert replies[scale][0]["text"] == "CHG-5 is waiting for approval"
    card = json.dumps(replies[scale][0]["blocks"], ensure_ascii=False)
    assert "min 2 → 1" in card and "a day (saves $31.44 a day)" in card
    assert replies["/aiops approve CHG-5"][0]["text"].startswith("Approved CHG-5")
    for change in ("CHG-3", "CHG-4", "CHG-5"):
        assert any(change in p and "succeeded" in p for p in posts), change
