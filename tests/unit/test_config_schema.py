"""The config schema fails closed: unknown keys, wrong types, out-of-range values and broken
cross-table rules are each refused with a line that names the file, table and key, and
every problem is reported at once."""

from __future__ import annotations

import copy
import re
import tomllib
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.settings import BUNDLED_CONFIG
from commands.config import ConfigError, parse_config
from commands.config_schema import check

EXAMPLE: dict[str, Any] = tomllib.loads(BUNDLED_CONFIG.read_text(encoding="utf-8"))


def example(**changes: Any) -> dict[str, Any]:
    """The bundled example with `table__key=value` changes (`table__sub__key` nests)."""
    data = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *tables, key = path.split("__")
        target = data
        for t in tables:
            target = target.setdefault(t.replace("_", "-") if t.startswith("loan") else t, {})
        target[key] = value
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="bot.toml")
    return info.value.problems


def test_the_bundled_example_is_valid() -> None:
    doc, found = check(EXAMPLE)
    assert found == [] and doc is not None


def test_a_typo_in_prod_is_refused_with_the_closest_key() -> None:
    data = example()
    del data["environments"]["prod"]["approvals_required"]
    data["environments"]["prod"]["aprovals_required"] = 1
    assert problems(data) == [
        "bot.toml: [environments.prod] aprovals_required: not a key of [environments.prod];"
        " did you mean `approvals_required`?"
    ]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("require_ticket", "false", "must be `true` or `false` (a TOML boolean, not a string)"),
        ("rollback_requires_approval", 1, "must be `true` or `false`"),
        ("approvals_required", 1.7, "must be a whole number, not `1.7`"),
        ("approvals_required", True, "must be a whole number, not `true`"),
        ("approvals_required", "1", "must be a whole number"),
        ("approvals_required", -1, "must be ≥ 0, not `-1`"),
        ("approval_ttl", 14400, "must be a string in quotes"),
        ("approval_ttl", "4 hours", "is not a duration; write e.g. `30m`"),
        ("canary_auto_rollback", "sometimes", "must be 'yes', 'page' or 'ask'"),
        ("promote_steps", [50, 25], "must rise strictly"),
        ("request_channels", ["ops"], "`ops` is not a Slack channel id"),
    ],
)
def test_types_are_strict_and_ranges_checked(key: str, value: Any, words: str) -> None:
    found = problems(example(**{f"environments__prod__{key}": value}))
    assert len(found) == 1, found
    assert found[0].startswith(f"bot.toml: [environments.prod] {key}")
    assert words in found[0]


def test_every_table_forbids_unknown_keys() -> None:
    data = example()
    data["platfrom"] = "vertex"
    data["slack"]["ops_chanel"] = "C0OPS"
    data["thresholds"]["p95_latency"] = 1
    data["people"]["bob"]["slackid"] = "U0BOB"
    data["models"]["gemma-3-1b-it"]["version"] = ["1"]
    data["endpoints"]["loan-assessor"]["replicas"] = 2
    data["canary"]["intervall"] = "5m"
    data["digests"]["morning_time"] = "08:00"
    data["digests"]["staging"]["eodd"] = "off"
    data["audit"]["retention"] = 5
    data["sandbox"]["seconds"] = 1
    data["vertex"] = {"read_timeout": 3}
    data["freezes"] = [
        {"name": "x", "weekly": {"from": "fri 16:00", "until": "mon 08:00"}, "env": []}
    ]
    found = problems(data)
    assert sorted(found) == sorted(
        [
            "bot.toml: platfrom: not a key of the top level; did you mean `platform`?",
            "bot.toml: [slack] ops_chanel: not a key of [slack]; did you mean `ops_channel`?",
            "bot.toml: [thresholds] p95_latency: not a key of [thresholds]; did you mean `p95_latency_ms`?",
            "bot.toml: [people.bob] slackid: not a key of [people.bob]; did you mean `slack_id`?",
            "bot.toml: [models.gemma-3-1b-it] version: not a key of [models.gemma-3-1b-it]; did you mean `versions`?",
            "bot.toml: [endpoints.loan-assessor] replicas: not a key of [endpoints.loan-assessor];"
            " did you mean `min_replicas`?",
            "bot.toml: [sandbox] seconds: not a key of [sandbox]; keys are `operation_seconds`",
            "bot.toml: [audit] retention: not a key of [audit]; did you mean `retention_days`?",
            "bot.toml: [canary] intervall: not a key of [canary]; did you mean `interval`?",
            "bot.toml: [digests] morning_time: not a key of [digests]; did you mean `morning`?",
            "bot.toml: [digests.staging] eodd: not a key of [digests.staging]; did you mean `eod`?",
            "bot.toml: [freezes[0]] env: not a key of [freezes[0]]; keys are `environments`, `from`,"
            " `name`, `until`, `weekly`",
            "bot.toml: [vertex] read_timeout: not a key of [vertex]; did you mean `read_timeout_s`?",
        ]
    )


def test_cross_table_rules_are_all_reported_with_the_key_errors() -> None:
    data = example()
    data["environments"]["prod"]["aprovals_required"] = 1
    data["environments"]["prod"]["approvers"] = ["bob", "mallory", "S0MLAPPROVE"]
    data["slack"]["approvals_channel"] = "approvals"
    data["endpoints"]["loan-assessor"]["environment"] = "prd"
    data["endpoints"]["loan-assessor-stg"]["model"] = "gemma-3-1b"
    data["endpoints"]["loan-assessor-stg"]["region"] = "us-central1"
    data["digests"]["environments"] = ["prod", "qa"]
    data["freezes"] = [
        {"name": "y", "from": "23/12/2026", "until": "2027-01-05", "environments": ["prod"]}
    ]
    found = problems(data)
    text = "\n".join(found)
    assert "[environments.prod] aprovals_required: not a key" in text
    assert "[slack] approvals_channel: `approvals` is not a Slack channel id" in text
    assert "[environments.prod] approvers[1]: `mallory` is neither a person of [people]" in text
    assert (
        "[endpoints.loan-assessor] environment: `prd` is not an environment; did you mean `prod`?"
        in text
    )
    assert (
        "[endpoints.loan-assessor-stg] model: `gemma-3-1b` is not a model; did you mean `gemma-3-1b-it`?"
        in text
    )
    assert (
        "[endpoints.loan-assessor-stg] region: `us-central1` is outside the allowed regions" in text
    )
    assert "[digests] environments[1]: `qa` is not an environment" in text
    assert "[freezes[0]] from: `23/12/2026` is not a date or local date-time" in text
    assert len(found) == 8, text
    assert all(line.startswith("bot.toml: [") for line in found)


def test_approvers_without_approvals_fail_closed() -> None:
    data = example()
    del data["environments"]["prod"]["approvals_required"]
    prod = parse_config(data).environments["prod"]
    assert prod.approvals_required == 1 and prod.require_reason  # not 0 and no reason
    data["environments"]["prod"]["approvals_required"] = 0  # said explicitly: allowed
    prod = parse_config(data).environments["prod"]
    assert prod.approvals_required == 0 and not prod.require_reason
    data["environments"]["prod"]["approvals_required"] = 3  # more than can ever approve
    assert problems(data) == [
        "bot.toml: [environments.prod] approvals_required: 3 distinct approvals needed but"
        " only 2 approver(s) named"
    ]
    data["environments"]["prod"]["approvers"] = []
    data["environments"]["prod"]["approvals_required"] = 1
    assert "nobody could approve" in problems(data)[0]


def test_dated_freeze_bounds_in_a_change_of_clocks_are_refused() -> None:
    from datetime import datetime

    data = example()
    data["freezes"] = [
        # Sydney: clocks go back at 03:00 on 4 April 2027 (02:30 happens twice) and forward
        # at 02:00 on 3 October 2027 (02:30 never happens).
        {"name": "a", "from": datetime(2027, 4, 4, 2, 30), "until": datetime(2027, 4, 5)},
        {"name": "b", "from": datetime(2027, 10, 2), "until": datetime(2027, 10, 3, 2, 30)},
    ]
    assert problems(data) == [
        "bot.toml: [freezes[0]] from: 2027-04-04T02:30:00 occurs twice in Australia/Sydney"
        " (daylight saving); pick a time outside the change of clocks",
        "bot.toml: [freezes[1]] until: 2027-10-03T02:30:00 does not exist in Australia/Sydney"
        " (daylight saving); pick a time outside the change of clocks",
    ]


def test_digest_days_words_are_a_closed_grammar() -> None:
    from commands.config_schema import parse_days

    assert parse_days("weekends") == (5, 6)
    assert parse_days("Weekdays") == (0, 1, 2, 3, 4)
    assert parse_days("monday-friday") == (0, 1, 2, 3, 4)
    assert parse_days("mon, Thurs") == (0, 3)
    for word in ("dairy", "evening", "weekend", "allways", "someday", "mo", ""):
        with pytest.raises(ValueError, match=r"is not a day|no days"):
            parse_days(word)
    found = problems(example(digests__days="dairy"))
    assert found == [
        "bot.toml: [digests] days: `dairy` is not a day; write e.g. `mon-fri`, `daily`,"
        ' `weekdays`, `weekends`, `"mon,thu"` or `["mon", "thu"]`'
    ]


def test_canary_and_digest_durations_use_the_one_grammar() -> None:
    from commands.canary.model import canary_settings
    from commands.digests.schedule import digest_settings

    config = parse_config(
        example(canary__interval="1h30m", canary__max_undecided="3H", digests__misfire_grace="90M")
    )
    assert canary_settings(config).interval == timedelta(minutes=90)
    assert canary_settings(config).max_undecided == timedelta(hours=3)
    assert "shorter than one `interval`" in problems(example(canary__interval="1h30m"))[0]
    assert digest_settings(config).misfire_grace == timedelta(minutes=90)
    assert "shorter than 1m" in problems(example(canary__interval="30s"))[0]
    assert "[canary] interval: `5` is not a duration" in problems(example(canary__interval="5"))[0]


def test_environment_table_re_read_by_the_canary_policy_is_checked_too() -> None:
    from commands.canary.model import env_policy

    config = parse_config(example())
    config.raw["environments"]["prod"]["canary_promote_gate"] = "yes"
    with pytest.raises(ConfigError, match=r"\[environments.prod\] canary_promote_gate: must be"):
        env_policy(config, config.environments["prod"])


def test_problems_are_listed_in_the_order_of_the_file() -> None:
    data = example()
    data["platform"] = "cloud"  # top of the file
    data["environments"]["dev"]["project"] = "Dev Project"
    data["endpoints"]["loan-assessor"]["vertex_id"] = "projects/p/endpoints/1"
    data["slack"]["team_id"] = "acme"
    assert problems(data) == [
        "bot.toml: platform: must be 'sandbox' or 'vertex', not `\"cloud\"`",
        'bot.toml: [slack] team_id: `"acme"` is not a Slack team id, e.g. `T0123ABCD`',
        'bot.toml: [environments.dev] project: `"Dev Project"` is not a GCP project id (6–30'
        " lowercase letters, digits and hyphens, starting with a letter)",
        'bot.toml: [endpoints.loan-assessor] vertex_id: `"projects/p/endpoints/1"` is not a'
        " Vertex AI endpoint id (digits only)",
    ]


def _tables(data: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not isinstance(data, dict):
        return []
    out = [path]
    for key, value in data.items():
        # free-keyed maps
        if isinstance(value, dict) and key not in ("faulty", "metrics", "retrain_parameters"):
            out += _tables(value, (*path, key))
    return out


TABLES = [
    t
    for t in _tables(EXAMPLE)
    if t
    not in (
        ("people",),
        ("environments",),
        ("models",),
        ("endpoints",),
        # keyed by names of things outside the file (alert policies) or checked against
        # [endpoints] (`test_runbooks_are_https_links_of_known_endpoints`)
        ("runbooks", "policies"),
        ("runbooks", "endpoints"),
    )
]


@given(
    table=st.sampled_from(TABLES),
    pick=st.integers(min_value=0),
    edit=st.sampled_from(["drop", "double", "swap"]),
)
def test_a_misspelt_key_anywhere_is_named_with_its_table_and_the_right_key(
    table: tuple[str, ...], pick: int, edit: str
) -> None:
    data = copy.deepcopy(EXAMPLE)
    target = data
    for t in table:
        target = target[t]
    keys = [k for k, v in target.items() if not isinstance(v, dict) and len(k) > 4]
    if not keys:
        return
    key = keys[pick % len(keys)]
    i = 1 + pick % (len(key) - 2)
    typo = {
        "drop": key[:i] + key[i + 1 :],
        "double": key[:i] + key[i] + key[i:],
        "swap": key[: i - 1] + key[i] + key[i - 1] + key[i + 1 :],
    }[edit]
    if typo == key or typo in target:
        return
    target[typo] = target.pop(key)
    # a key that is not bare (a version, `1.0.0`) is quoted, as TOML writes it
    dotted = ".".join(t if re.fullmatch(r"[A-Za-z0-9_-]+", t) else f'"{t}"' for t in table)
    where = f"[{dotted}] " if table else ""
    found = [line for line in problems(data) if f" {typo}: " in line]
    assert len(found) == 1
    assert found[0].startswith(f"bot.toml: {where}{typo}: not a key of ")
    assert found[0].endswith(f"did you mean `{key}`?")


def test_every_table_of_the_schema_is_closed() -> None:

    from commands import config_schema

    models = [
        v
        for v in vars(config_schema).values()
        if isinstance(v, type)
        and issubclass(v, config_schema.Table)
        and v is not config_schema.Table
    ]
    assert len(models) >= 17
    for model in models:
        expected = "allow" if model is config_schema.DigestsTable else "forbid"
        assert model.model_config.get("extra") == expected, model
        assert model.model_config.get("strict") is True, model


def test_who_may_approve_must_be_a_known_person_or_a_user_group() -> None:
    data = example()
    prod = data["environments"]["prod"]
    prod["approvers"] = ["bob", "U0CAROL", "S0MLAPPROVE", "U0STRANGER", "@carol"]
    prod["break_glass"] = ["U0NOBODY"]
    prod["requesters"] = ["alice", "U0NEWHIRE", "S0ENGINEERS"]  # requesters may be any id
    found = problems(data)
    who = "nor a Slack user-group id (`S…`): who may approve must be a known person"
    people = "; people are `alice`, `bob`, `carol`, `dave`"
    assert found == [
        f"bot.toml: [environments.prod] approvers[3]: `U0STRANGER` is neither a person of [people] {who}{people}",
        f"bot.toml: [environments.prod] approvers[4]: `@carol` is neither a person of [people] {who}; did you mean `carol`?",
        f"bot.toml: [environments.prod] break_glass[0]: `U0NOBODY` is neither a person of [people] {who}{people}",
    ]


def test_runbooks_are_https_links_of_known_endpoints() -> None:
    data = example()
    data["runbooks"]["policies"]["plain"] = "http://wiki.example.com/p95"
    data["runbooks"]["policies"]["spaced"] = "https://wiki.example.com/p95 latency"
    data["runbooks"]["policies"]["script"] = "javascript:alert(1)"
    data["runbooks"]["endpoints"]["loan-asessor"] = "https://wiki.example.com/x"
    data["runbooks"]["polices"] = {}
    found = problems(data)
    assert sorted(found) == sorted(
        [
            "bot.toml: [runbooks] policies.plain: `http://wiki.example.com/p95` is not an https"
            " link; write e.g. `https://wiki.example.com/runbooks/p95` (http and other schemes"
            " are refused)",
            "bot.toml: [runbooks] policies.spaced: `https://wiki.example.com/p95 latency` holds"
            " ' ', which a link may not; percent-encode it (e.g. `%20`)",
            "bot.toml: [runbooks] policies.script: `javascript:alert(1)` is not an https link;"
            " write e.g. `https://wiki.example.com/runbooks/p95` (http and other schemes are"
            " refused)",
            "bot.toml: [runbooks] endpoints.loan-asessor: `loan-asessor` is not an endpoint of"
            " [endpoints]; did you mean `loan-assessor`?",
            "bot.toml: [runbooks] polices: not a key of [runbooks]; did you mean `policies`?",
        ]
    )


def test_the_config_carries_the_runbooks_and_the_watch_table_is_checked() -> None:
    config = parse_config(example(), source="bot.toml")
    assert config.runbooks.endpoints == {
        "loan-assessor": "https://wiki.example.com/aiops/runbooks/loan-assessor"
    }
    assert "health watch: error rate" in config.runbooks.policies
    found = problems(
        example(alerts__watch_interval="30s", alerts__open_after=0, alerts__clear_ratio=1.5)
    )
    assert found == [
        "bot.toml: [alerts] watch_interval: `30s` is shorter than 1m (Monitoring's shortest"
        " period)",
        "bot.toml: [alerts] open_after: must be ≥ 1, not `0`",
        "bot.toml: [alerts] clear_ratio: must be ≤ 1.0, not `1.5`",
    ]
    assert problems(example(alerts__close_after="3")) == [
        'bot.toml: [alerts] close_after: must be a whole number, not `"3"`'
    ]
