"""The morning digest's chart, read back from matplotlib's own objects: title, axes and
units, thresholds, legend, the time axis in the digest's zone; the PNG written by
`aiops-bot digest --chart`, and words when there is nothing to chart; the sandbox's history
of a canary starting when it was deployed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.charts import THRESHOLD_COLOUR, draw
from bot.cli.digest import _chart
from commands.digests.render import compose
from commands.digests.schedule import DigestKind
from commands.ports import Chart
from tests.support.harness import ALICE, Bot

SYDNEY = ZoneInfo("Australia/Sydney")
STG = "loan-assessor-stg"


def breaching_chart(bot: Bot, canary_for: timedelta) -> Chart:
    """The staging morning digest's chart, `canary_for` after a faulty canary at 50 %."""
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.3.0-rc1 canary=50").ok
    bot.clock.advance(canary_for.total_seconds())
    digest = compose(bot.rt, DigestKind.MORNING, "staging")
    assert digest.counts["breaching"] == 1 and digest.chart is not None
    return digest.chart


def test_the_chart_is_titled_labelled_and_in_the_digests_zone(bot: Bot) -> None:
    chart = breaching_chart(bot, timedelta(hours=3))
    assert chart.timezone == SYDNEY
    fig = draw(chart)
    top, bottom = fig.axes
    assert top.get_title() == chart.title and "staging" in chart.title
    assert top.get_ylabel() == "P95 latency (ms)"
    assert bottom.get_ylabel() == "error rate (%)"
    assert bottom.get_xlabel().startswith("time (Australia/Sydney)")
    for ax, threshold, label in (
        (top, 2000.0, "threshold 2,000 ms"),
        (bottom, 1.0, "threshold 1%"),
    ):
        legend = ax.get_legend()
        assert legend is not None
        assert [t.get_text() for t in legend.get_texts()] == [STG, label]
        dashed = [line for line in ax.get_lines() if line.get_label() == label]
        assert len(dashed) == 1 and dashed[0].get_linestyle() == "--"
        assert set(dashed[0].get_ydata()) == {threshold}  # type: ignore[arg-type]
        assert dashed[0].get_color() == THRESHOLD_COLOUR
    # The ticks fall on whole local hours, every 3 h, and say the local time.
    formatter = bottom.xaxis.get_major_formatter()
    assert getattr(formatter, "tz", None) == SYDNEY
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # rendered, as the PNG is: tick labels are set by a draw
    ticks = [
        (t.get_loc(), t.label1.get_text())
        for t in bottom.xaxis.get_major_ticks()
        if t.label1.get_text()
    ]
    assert len(ticks) >= 7
    from matplotlib.dates import num2date

    for loc, text in ticks:
        local = num2date(loc, tz=SYDNEY)
        assert local.minute == 0 and local.hour % 3 == 0 and text == f"{local:%H:%M}"
        assert num2date(loc, tz=UTC).hour % 3 != 0  # so not UTC's hours (Sydney is +10/+11)


def test_a_canary_deployed_a_minute_ago_does_not_breach_for_24_hours(bot: Bot) -> None:
    deployed = bot.clock()
    chart = breaching_chart(bot, timedelta(minutes=1))
    points = chart.series[STG]
    assert points[-1].at == chart.until.replace(microsecond=0)  # it ends with the status
    assert points[-1].p95_latency_ms is not None and points[-1].p95_latency_ms > 2000
    before = [p for p in points if p.at < deployed]
    assert len(before) >= 95  # the stable version's 24 h, every 15 min
    assert all(p.p95_latency_ms is not None and p.p95_latency_ms < 2000 for p in before)
    assert all(p.error_rate is not None and p.error_rate < 0.01 for p in before)


def test_a_canary_deployed_hours_ago_breaches_from_then(bot: Bot) -> None:
    deployed = bot.clock()
    chart = breaching_chart(bot, timedelta(hours=5))
    points = chart.series[STG]
    since = [p for p in points if p.at >= deployed + timedelta(minutes=1)]
    assert len(since) >= 20
    assert all(p.p95_latency_ms is not None and p.p95_latency_ms > 2000 for p in since)
    assert all(
        p.p95_latency_ms is not None and p.p95_latency_ms < 2000 for p in points if p.at < deployed
    )


def test_the_cli_writes_a_png(bot: Bot, tmp_path: Path) -> None:
    chart = breaching_chart(bot, timedelta(hours=1))
    digest = compose(bot.rt, DigestKind.MORNING, "staging")
    path = tmp_path / "chart.png"
    said = _chart(digest, path, enabled=True)
    assert said.startswith(f"chart: {path} (") and STG in said
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert int.from_bytes(data[16:20], "big") == 900  # width, as drawn
    assert chart.filename.endswith(".png")


def test_nothing_breaching_is_said_in_words_and_exits_0(tmp_path: Path) -> None:
    env = dict(os.environ, AIOPS_DATA_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    path = tmp_path / "chart.png"
    argv = ["digest", "morning", "--environment", "staging", "--chart", str(path)]
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "chart: none written: nothing is breaching in staging, so there is nothing to chart."
        in out.stdout
    )
    assert not path.exists()


def test_the_end_of_day_digest_says_it_has_no_chart(bot: Bot, tmp_path: Path) -> None:
    digest = compose(bot.rt, DigestKind.EOD, "prod", now=datetime(2026, 12, 1, 6, 30, tzinfo=UTC))
    (tmp_path / "old.png").write_bytes(b"old")
    said = _chart(digest, tmp_path / "old.png", enabled=True)
    assert "only the morning digest has a chart" in said and "left as it was" in said
    assert (tmp_path / "old.png").read_bytes() == b"old"
