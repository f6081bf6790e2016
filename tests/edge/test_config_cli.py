"""`aiops-bot config check | schema | docs`, and every entry point refusing a bad config or
a bad environment variable the same way: a message on stderr and exit 2."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.settings import BUNDLED_CONFIG, Settings, SettingsError
from commands.config_schema import check, markdown

REPO = Path(__file__).resolve().parents[2]
CLEAN_ENV = ("SLACK_", "AIOPS_", "PORT", "LOG_LEVEL", "DATABASE_URL", "HOST")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(CLEAN_ENV):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "var"))


def bad_config(tmp_path: Path) -> Path:
    text = BUNDLED_CONFIG.read_text(encoding="utf-8")
    text = text.replace("approvals_required = 1 ", "aprovals_required = 1 ")
    text = text.replace("require_ticket = false", 'require_ticket = "false"')
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_check_on_the_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(BUNDLED_CONFIG)]) == 0
    assert capsys.readouterr().out.startswith(f"{BUNDLED_CONFIG}: ok (3 environments")


def test_config_check_lists_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad_config(tmp_path)
    assert main(["config", "check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}: [environments.prod] aprovals_required: not a key of [environments.prod];"
        " did you mean `approvals_required`?",
        f"{path}: [environments.prod] require_ticket: must be `true` or `false` (a TOML"
        ' boolean, not a string), not `"false"`',
    ]
    assert err.strip() == f"{path}: 2 problems"


@pytest.mark.parametrize(
    "argv",
    [["console", "-c", "/aiops help"], ["digest", "morning"], ["audit", "export"], ["serve"]],
)
def test_no_entry_point_starts_on_a_bad_config(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIOPS_CONFIG", str(bad_config(tmp_path)))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "aiops-bot: the configuration is invalid (2 problems):" in captured.err
    assert "aprovals_required: not a key of [environments.prod]" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("PORT", "abc", "aiops-bot: environment: PORT='abc': must be a whole number 1–65535"),
        ("PORT", "70000", "aiops-bot: environment: PORT='70000': must be a whole number 1–65535"),
        (
            "AIOPS_COMMAND_WORKERS",
            "two",
            "aiops-bot: environment: AIOPS_COMMAND_WORKERS='two': must be a whole number 0–64 (0 = threads)",
        ),
        (
            "AIOPS_POLL_SECONDS",
            "0",
            "aiops-bot: environment: AIOPS_POLL_SECONDS='0': must be a number of seconds > 0 (at most 3600)",
        ),
        (
            "AIOPS_LEASE_SECONDS",
            "0.5",
            "aiops-bot: environment: AIOPS_LEASE_SECONDS='0.5': must be a number of seconds 1–3600",
        ),
        (
            "AIOPS_LEASE_SECONDS",
            "soon",
            "aiops-bot: environment: AIOPS_LEASE_SECONDS='soon': must be a number of seconds 1–3600",
        ),
        (
            "LOG_LEVEL",
            "chatty",
            "aiops-bot: environment: LOG_LEVEL='CHATTY': must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
        ),
    ],
)
def test_a_bad_environment_variable_is_one_line_and_exit_2(
    name: str,
    value: str,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["audit", "verify"]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_config_check_lists_the_environments_and_the_files_problems_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BUNDLED_CONFIG.read_text().replace("approvals_required", "aprovals_required"))
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("AIOPS_COMMAND_WORKERS", "two")
    assert main(["config", "check", "--config", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("environment: PORT='abc'") for line in out) == 1
    assert sum(line.startswith("environment: AIOPS_COMMAND_WORKERS='two'") for line in out) == 1
    assert any("did you mean `approvals_required`" in line for line in out)


def test_settings_errors_never_echo_secrets() -> None:
    settings = Settings.from_env(
        {"PORT": "8080", "LOG_LEVEL": "debug", "SLACK_BOT_TOKEN": "xoxb-1"}
    )
    assert (settings.port, settings.log_level, settings.slack_bot_token) == (
        8080,
        "DEBUG",
        "xoxb-1",
    )
    assert "xoxb-1" not in repr(settings)
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {"PORT": "x", "SLACK_API_BASE_URL": "ftp://h", "AIOPS_POLL_SECONDS": "-1"}
        )
    assert len(info.value.problems) == 3


def test_serve_with_real_slack_refuses_the_sandbox_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-real-looking")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "a-signing-secret")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "platform: `sandbox` with real Slack credentials" in err
    assert "allow_sandbox = true" in err
    assert "xoxb-real-looking" not in err and "a-signing-secret" not in err
    settings = Settings.from_env({"SLACK_BOT_TOKEN": "x", "SLACK_SIGNING_SECRET": "s"})
    assert settings.real_slack
    stub = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "x",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_API_BASE_URL": "http://127.0.0.1:9",
        }
    )
    assert not stub.real_slack  # a local stub, as the tests and benches use
    data = tomllib.loads(BUNDLED_CONFIG.read_text(encoding="utf-8"))
    data["allow_sandbox"] = True
    from commands.config import parse_config

    assert parse_config(data).allow_sandbox


def test_json_schema_describes_every_table_closed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    env = schema["$defs"]["EnvironmentTable"]
    assert env["additionalProperties"] is False
    assert "approvals_required" in env["properties"]
    assert env["properties"]["require_ticket"]["type"] == "boolean"
    closed = [d for d in schema["$defs"].values() if d.get("additionalProperties") is False]
    assert len(closed) >= 15


def test_readme_configuration_is_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "docs"]) == 0
    docs = capsys.readouterr().out
    assert docs == markdown()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert docs in readme, (
        "README's key tables differ from the schema: paste `aiops-bot config docs`"
    )


def render_terraform_template(environment: str, endpoints: dict[str, dict[str, str]]) -> str:
    """`bot_config_toml` of terraform/modules/stack/outputs.tf, rendered as Terraform would:
    its HCL string lines with the variables substituted (no terraform binary here)."""
    tf = (REPO / "terraform/modules/stack/outputs.tf").read_text(encoding="utf-8")
    block = tf[tf.index('output "bot_config_toml"') :]
    block = block[: block.index("\n}\n")]
    head, _, loop = block.partition("for slug, ep in var.endpoints")
    strings = re.compile(r'"((?:[^"\\]|\\.)*)"')
    head_lines = strings.findall(head.partition("concat([")[2])
    loop_lines = strings.findall(loop)
    env_vars = {
        "var.environment": environment,
        "var.project_id": f"lender-aiops-{environment}",
        "var.region": "australia-southeast1",
        # The dashboard module's output, as tofu/terraform renders it.
        "module.monitoring.dashboard_url": (
            "https://console.cloud.google.com/monitoring/dashboards/custom/abc123"
            f"?project=lender-aiops-{environment}"
        ),
    }

    def render(line: str, values: dict[str, str]) -> str:
        line = re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], line)
        return line.replace('\\"', '"')

    lines = [render(line, env_vars) for line in head_lines]
    for slug, ep in endpoints.items():
        values = env_vars | {"slug": slug, **{f"ep.{k}": v for k, v in ep.items()}}
        lines += [render(line, values) for line in loop_lines]
    return "\n".join(lines)


def test_the_terraform_config_template_validates_against_the_schema() -> None:
    rendered = render_terraform_template(
        "prod",
        {"loan-assessor": {"display_name": "Loan assessor", "endpoint_id": "1234567890123456789"}},
    )
    assert '[endpoints.loan-assessor]\nenvironment = "prod"' in rendered
    generated = tomllib.loads(rendered)
    # Alone it lacks only the team's part: every key it writes is a key of the schema.
    _, alone = check(generated)
    assert {(p.table, p.key, p.message) for p in alone} == {
        (("endpoints", "loan-assessor"), "model", "is required")
    }
    # Merged with the team's part (people, models, and each endpoint's model), it is valid.
    team = tomllib.loads(
        """
        platform = "vertex"
        [people]
        bob = { slack_id = "U0BOB" }
        carol = { slack_id = "U0CAROL" }
        [models.gemma-3-1b-it]
        versions = ["1.2.0"]
        [endpoints.loan-assessor]
        model = "gemma-3-1b-it"
        [environments.prod]
        approvers = ["bob", "carol"]
        """
    )
    merged = generated
    for table, values in team.items():
        if isinstance(values, dict) and isinstance(merged.get(table), dict):
            for name, sub in values.items():
                merged[table].setdefault(name, {}).update(sub) if isinstance(sub, dict) else merged[
                    table
                ].__setitem__(name, sub)
        else:
            merged[table] = values
    doc, found = check(merged)
    assert found == [] and doc is not None
    assert doc.endpoints["loan-assessor"].vertex_id == "1234567890123456789"


def test_an_explicit_mapping_is_read_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")  # the process's own, not part of the mapping
    assert Settings.from_env({"AIOPS_DATA_DIR": "x"}).port == 3000
    with pytest.raises(SettingsError, match="PORT='abc'"):
        Settings.from_env()


def test_readme_variables_table_names_every_variable_the_settings_read() -> None:
    from bot.settings import EnvValues

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| variable | meaning |") :]
    table = table[: table.index("\n\n")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert set(EnvValues.model_fields) <= documented


def test_config_check_notes_digest_times_the_clocks_skip_or_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import date

    from bot.cli.main import clock_notes
    from commands.config import load_config

    path = tmp_path / "night.toml"
    text = BUNDLED_CONFIG.read_text(encoding="utf-8").replace(
        'morning = "08:30"', 'morning = "02:30"'
    )
    path.write_text(text.replace('days = "mon-fri"', 'days = "daily"'), encoding="utf-8")
    assert clock_notes(load_config(path), today=date(2026, 9, 1)) == [
        "[digests] prod morning 02:30 does not exist on 2026-10-04 in Australia/Sydney; it runs"
        " at 03:30 AEDT",
        "[digests] prod morning 02:30 occurs twice on 2027-04-04 in Australia/Sydney; it runs"
        " once, at the first (02:30 AEDT)",
    ]
    assert main(["config", "check", "--config", str(path)]) == 0
    assert "note: [digests] prod morning 02:30" in capsys.readouterr().out
    assert clock_notes(load_config(BUNDLED_CONFIG)) == []
    weekdays = tmp_path / "weekdays.toml"
    weekdays.write_text(text, encoding="utf-8")  # Sundays have no digest: nothing to note
    assert clock_notes(load_config(weekdays), today=date(2026, 9, 1)) == []
