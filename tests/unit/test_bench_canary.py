"""The canary bench works and its baseline (a) is today's judge (tiny runs, no timing)."""

from __future__ import annotations

import json

import pytest

from bench import bench_canary


def test_baseline_a_is_the_per_window_judge_the_bot_used() -> None:
    """(a) restates the per-window judge the bot used before the sequential one; these are
    that judge's own unit-test cases (canary figures against a 5,000-request baseline)."""
    fig = bench_canary.Fig
    base = fig(800.0, 0.002, 5000)
    verdict = bench_canary.today_verdict
    assert verdict(fig(900.0, 0.003, 500), base) == "pass"
    assert verdict(fig(1300.0, 0.003, 500), base) == "breach"  # 1.625× the baseline P95
    assert verdict(fig(900.0, 0.008, 500), base) == "breach"  # errors 4× the baseline
    assert verdict(fig(2100.0, 0.02, 500), base) == "breach"  # the absolute limits
    # a baseline with too little traffic is not compared against
    assert verdict(fig(1300.0, 0.003, 500), fig(800.0, 0.0, 20)) == "pass"
    # too little canary traffic is never a pass, however good the figures
    assert verdict(fig(100.0, 0.0, 99), base) == "not_enough_data"
    assert verdict(fig(None, None, 500), base) == "not_enough_data"


def test_a_tiny_run_of_the_bench() -> None:
    data = bench_canary.run(3, rates=[5000], hours=1.0, scenarios=("A/A", "P95 ×2"))
    aa, ab = data["results"]["5000/A/A"], data["results"]["5000/P95 ×2"]
    assert aa["new"]["rollbacks"] == 0  # identical versions are never rolled back
    assert ab["new"]["rollbacks"] == 3 and ab["new"]["median_min"] <= 60
    assert ab["today"]["rollbacks"] == 0  # 42 canary requests a window: not enough data
    assert all(ab[j]["runs"] == 3 for j in bench_canary.JUDGES)


def test_the_bench_prints_a_table_and_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_canary.main(["--runs", "1", "--rates", "50000", "--hours", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "| req/h" in out and "(d) new" in out
    line = next(x for x in out.splitlines() if x.startswith('{"bench": "canary"'))
    data = json.loads(line)
    assert set(data["results"]) == {f"50000/{s}" for s in bench_canary.SCENARIOS}
    assert "req/h A/A false rollbacks" in out
