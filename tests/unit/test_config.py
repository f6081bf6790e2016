from __future__ import annotations

import pytest

from bot.settings import BUNDLED_CONFIG
from commands.config import ConfigError, load_config, parse_config
from commands.parsing import ParseError, parse


def test_bundled_config_is_the_example_workspace() -> None:
    config = load_config(BUNDLED_CONFIG)
    assert set(config.environments) == {"dev", "staging", "prod"}
    assert config.environments["prod"].needs_approval
    assert not config.environments["staging"].needs_approval
    assert {e.region for e in config.environments.values()} == {"australia-southeast1"}
    assert config.endpoints["loan-assessor"].environment == "prod"
    assert config.endpoints["loan-assessor-stg"].environment == "staging"
    model = config.models["gemma-3-1b-it"]
    assert model.initial == "1.2.0"
    assert model.faulty == {"1.3.0-rc1": "canary_breach", "1.3.0-rc2": "deploy_fails"}
    assert config.resolve_person("bob") == "U0BOB"


def test_region_outside_allowed_list_is_refused() -> None:
    import tomllib

    data = tomllib.loads(BUNDLED_CONFIG.read_text())
    data["endpoints"]["loan-assessor"]["region"] = "us-central1"
    with pytest.raises(ConfigError, match="data residency"):
        parse_config(data)


def test_unknown_person_in_config_is_refused() -> None:
    import tomllib

    data = tomllib.loads(BUNDLED_CONFIG.read_text())
    data["environments"]["prod"]["approvers"] = ["mallory"]
    with pytest.raises(ConfigError, match="mallory"):
        parse_config(data)


def test_parser_quotes_and_errors() -> None:
    args = parse('ep m@1.0.0 reason="two words" canary=5', {"reason", "canary"}, 2)
    assert args.positionals == ["ep", "m@1.0.0"]
    assert args.options == {"reason": "two words", "canary": "5"}
    assert parse("ep reason=“curly quotes”", {"reason"}, 1).options["reason"] == "curly quotes"
    for bad, message in [
        ("ep canary=1 canary=2", "twice"),
        ("ep =x", "no name"),
        ("ep x=1 tail", "after an option"),
        ("a b c", "unexpected"),
    ]:
        with pytest.raises(ParseError, match=message):
            parse(bad, {"canary", "x"}, 2)
