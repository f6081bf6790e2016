"""An unknown endpoint, version, environment or person is refused with the closest known
names ("did you mean …"), what was typed quoted escaped."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli.main import UsageError, _person
from bot.slack.blocks import render_message
from commands.messages import did_you_mean
from tests.support.harness import ALICE, Bot, example_config, text_of


def test_the_closest_names_are_suggested_case_ignored_and_escaped() -> None:
    endpoints = ["loan-assessor", "loan-assessor-stg", "fraud-scorer"]
    assert did_you_mean("loan-asesor", endpoints) == (
        "; did you mean `loan-assessor` or `loan-assessor-stg`?"
    )
    assert did_you_mean("FRAUD-SCORER", endpoints) == "; did you mean `fraud-scorer`?"
    assert did_you_mean("nowhere", endpoints) == ""
    assert did_you_mean("a<b", ["a<bc"]) == "; did you mean `a&lt;bc`?"


def test_an_unknown_endpoint_names_the_closest(bot: Bot) -> None:
    reply = bot.run(ALICE, "/deploy loan-asesor gemma-3-1b-it@1.2.1 canary=10")
    assert not reply.ok
    assert reply.text.startswith(
        "unknown endpoint `loan-asesor`; did you mean `loan-assessor` or `loan-assessor-stg`?"
    )
    assert "Known endpoints" in text_of(reply)  # the whole list is still in the hint
    for line in (
        "/aiops status loan-asesor",
        "/aiops canary loan-asesor",
        "/aiops approve loan-asesor",  # a change by its endpoint
        "/rollback loan-asesor",
    ):
        reply = bot.run(ALICE, line)
        assert not reply.ok and "did you mean `loan-assessor`" in reply.text, (line, reply.text)
    far = bot.run(ALICE, "/deploy nowhere gemma-3-1b-it@1.2.1")
    assert "unknown endpoint `nowhere`" in far.text and "did you mean" not in far.text
    by_id = bot.run(ALICE, "/aiops approve CHG-999")
    assert "no change `CHG-999`" in by_id.text and "did you mean" not in by_id.text


def test_what_was_typed_is_quoted_escaped(bot: Bot) -> None:
    reply = bot.run(ALICE, "/aiops status loan-asesor<!channel>")
    shown = text_of(reply)
    assert "loan-asesor&lt;!channel&gt;" in shown and "<!channel>" not in shown
    assert "did you mean `loan-assessor`" in shown


def test_an_unknown_version_names_the_closest(bot: Bot) -> None:
    reply = bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.2")
    assert not reply.ok
    assert reply.text.startswith(
        "`gemma-3-1b-it@1.2.2` is not in the model registry; did you mean `1.2.1`, `1.2.0`"
    )
    far = bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@9.9.9")
    assert "not in the model registry" in far.text and "did you mean" not in far.text


def test_an_unknown_environment_names_the_closest(bot: Bot) -> None:
    reply = bot.run(ALICE, "/aiops digest morning prd")
    assert not reply.ok
    assert "unknown environment `prd`; did you mean `prod`?" in reply.text


def test_an_unknown_person_names_the_closest(tmp_path: Path) -> None:
    config = example_config()
    with pytest.raises(UsageError) as caught:
        _person(config, "@bobb")
    assert "unknown person `@bobb`; did you mean `bob`?" in str(caught.value)
    assert "people: alice, bob, carol, dave" in str(caught.value)
    assert _person(config, "bob") == "U0BOB"
    assert _person(config, "U0FORMER") == "U0FORMER"  # someone no longer in the config

    from bot.cli.console import Console
    from bot.settings import Settings

    out = io.StringIO()
    console = Console(Settings(data_dir=tmp_path), "alice", out=out)
    console.run_line("as carl")
    assert "unknown person `carl`; did you mean `carol`?" in out.getvalue()
    assert console.who == "alice"


def test_a_near_prefix_of_a_name_is_suggested_too(bot: Bot) -> None:
    """`gema` is too short to be close to `gemma-3-1b-it` as a whole, but begins it (one
    letter left out): models get the did-you-mean endpoints get, from the same helper."""
    assert did_you_mean("gema", ["gemma-3-1b-it", "loan-assessor"]) == (
        "; did you mean `gemma-3-1b-it`?"
    )
    assert did_you_mean("loan", ["gemma-3-1b-it", "loan-assessor"]) == (
        "; did you mean `loan-assessor`?"
    )
    assert did_you_mean("ge", ["gemma-3-1b-it"]) == ""  # two letters say too little
    assert did_you_mean("xyz", ["gemma-3-1b-it"]) == ""
    for line in ("/aiops models gema", '/aiops retrain gema reason="drift"'):
        reply = bot.run(ALICE, line)
        assert not reply.ok
        assert reply.text.startswith("unknown model `gema`; did you mean `gemma-3-1b-it`"), (
            line,
            reply.text,
        )


def test_a_backtick_typed_never_breaks_the_code_it_is_quoted_in(bot: Bot) -> None:
    for line, said in (
        ("/aiops models gem`ma", "unknown model `gem'ma`"),
        ("/aiops status loan`assessor", "unknown endpoint `loan'assessor`"),
    ):
        reply = bot.run(ALICE, line)
        assert not reply.ok
        assert reply.text.startswith(said), (line, reply.text)
        assert reply.text.count("`") % 2 == 0


def test_models_by_endpoint_names_the_endpoint_in_its_title(bot: Bot) -> None:
    reply = bot.run(ALICE, "/aiops models loan-assessor-stg")
    assert reply.ok
    header = render_message(reply)["blocks"][0]["text"]["text"]
    assert header == "Model gemma-3-1b-it · served by loan-assessor-stg"
    by_model = render_message(bot.run(ALICE, "/aiops models gemma-3-1b-it"))
    assert by_model["blocks"][0]["text"]["text"] == "Model gemma-3-1b-it"
