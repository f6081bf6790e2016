"""The GitHub workflows, read as text: every action pinned by a full commit SHA (its tag in
a comment), no `${{ }}` expression expanded inside a `run:` script, `id-token: write`
only on jobs, never for a whole workflow, and CI's lint is `make lint` (the same
`ruff format --check` a developer runs). `.ci/scan` runs zizmor on the same files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
RUN = re.compile(r"^(?P<indent>\s*)(?:-\s+)?run:\s*(?P<value>.*)$")


def uses(text: str) -> list[tuple[int, str, str]]:
    return [
        (n, m["ref"].strip("'\""), m["rest"])
        for n, line in enumerate(text.splitlines(), 1)
        if (m := USES.match(line))
    ]


def run_scripts(text: str) -> list[tuple[int, str]]:
    """(first line number, script text) of every `run:` in the file."""
    lines = text.splitlines()
    scripts: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = RUN.match(lines[i])
        if not m:
            i += 1
            continue
        value = m["value"]
        start = i + 1
        body = [] if value.startswith(("|", ">")) else [value]
        key_indent = len(m["indent"]) + (2 if lines[i].lstrip().startswith("- ") else 0)
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > key_indent
        ):
            body.append(lines[i])
            i += 1
        scripts.append((start, "\n".join(body)))
    return scripts


def test_the_workflows_are_there() -> None:
    names = {w.name for w in WORKFLOWS}
    assert {"ci.yml", "deploy.yml", "deploy-environment.yml"} <= names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha(workflow: Path) -> None:
    unpinned = []
    for n, ref, rest in uses(workflow.read_text()):
        if ref.startswith("./"):
            continue  # a reusable workflow of this repository, at the caller's commit
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                unpinned.append(f"{workflow.name}:{n} {ref}")
            continue
        if not PINNED.match(ref) or not re.search(r"#\s*v\d", rest):
            unpinned.append(f"{workflow.name}:{n} {ref}{rest}")
    assert unpinned == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_run_script(workflow: Path) -> None:
    scripts = run_scripts(workflow.read_text())
    assert scripts, "no run: found; the parser is wrong"
    found = [f"{workflow.name}:{n}" for n, body in scripts if "${{" in body]
    assert found == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_id_token_is_granted_per_job_only(workflow: Path) -> None:
    text = workflow.read_text()
    top = re.search(r"^permissions:\n((?:[ \t]+.*\n)*)", text, re.MULTILINE)
    assert top is not None, "set workflow-wide permissions (contents: read)"
    assert "id-token" not in top.group(1)
    assert "write-all" not in text


def test_the_checks_catch_what_they_are_for() -> None:
    """The parsers above on a bad workflow: they must see its faults."""
    bad = (
        "jobs:\n  x:\n    steps:\n      - uses: actions/checkout@v4\n"
        "      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065\n"
        "      - run: echo ${{ github.head_ref }}\n"
        "      - name: block\n        run: |\n          echo ok\n"
        '          echo "${{ inputs.x }}"\n      - run: echo fine\n'
    )
    refs = [ref for _, ref, _ in uses(bad)]
    assert not PINNED.match(refs[0]) and PINNED.match(refs[1])
    found = [n for n, body in run_scripts(bad) if "${{" in body]
    assert found == [6, 8]


def test_ci_lints_with_make_and_scans_the_image_for_os_vulnerabilities() -> None:
    ci = next(w for w in WORKFLOWS if w.name == "ci.yml").read_text()
    assert "run: make lint typecheck" in ci and "run: make test" in ci
    assert "aquasecurity/trivy-action@" in ci and "vuln-type: os" in ci
    scan = (WORKFLOWS[0].parent.parent.parent / ".ci" / "scan").read_text()
    assert "zizmor" in scan
