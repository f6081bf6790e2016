"""The canary bench works and its baseline (a) is today's judge (tiny runs, no timing)."""

from __future__ import annotations

import importlib
import json
import random
from typing import Any

import pytest

from bench import bench_canary


def _today_judge() -> tuple[Any, Any]:
    """`judge` and `CanarySettings` of the per-window judge the bench calls (a)."""
    from commands.canary.judge import judge
    from commands.canary.model import CanarySettings

    return judge, CanarySettings


def test_baseline_a_is_todays_judge() -> None:
    judge, canary_settings = _today_judge()
    from commands.config import Thresholds

    model = importlib.import_module(judge.__module__)
    figures = model.Figures
    rnd = random.Random(7)
    for _ in range(3000):

        def fig() -> tuple[Any, Any]:
            requests = rnd.choice([0, 50, 99, 100, 101, 400, 5000])
            p95 = rnd.choice([None, 300.0, 800.0, 1199.0, 1200.0, 1201.0, 1999.0, 2001.0])
            err = rnd.choice([None, 0.0, 0.001, 0.0059, 0.006, 0.0061, 0.01, 0.0101, 0.05])
            return figures(p95, err, requests), bench_canary.Fig(p95, err, requests)

        c_orig, c_mine = fig()
        s_orig, s_mine = fig()
        verdict, _ = judge(c_orig, s_orig, Thresholds(), canary_settings())
        assert bench_canary.today_verdict(c_mine, s_mine) == verdict.value, (c_mine, s_mine)


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
