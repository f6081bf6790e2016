"""The canary analysis' chart, posted in the deploy's thread after each check: canary and
stable P95 (top) and error rate (bottom) over the analysis so far, the paging thresholds,
and the moments the canary's share changed. Titled, with labelled axes and units.

Drawn with matplotlib (Agg, no display) in the process that ran the check — a command
worker or the scheduler process — and imported only there, lazily: the server that acks
never loads it (`tests/edge/test_serve_processes.py`), like the digest's chart
(`bot/charts.py`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from commands.ports import CanaryChart

if TYPE_CHECKING:
    from matplotlib.figure import Figure


CANARY_COLOUR = "#ea580c"  # orange
STABLE_COLOUR = "#2563eb"  # blue
THRESHOLD_COLOUR = "#dc2626"  # red, dashed
SHARE_COLOUR = "#6b7280"  # grey, dotted


def draw(chart: CanaryChart) -> Figure:
    """The figure (not yet rendered): two panels sharing the time axis (UTC)."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    times = [p.at for p in chart.points]

    def series(values: list[float | None]) -> list[float]:
        return [float("nan") if v is None else v for v in values]

    top.plot(times, series([p.canary_p95_ms for p in chart.points]), "o-",
             color=CANARY_COLOUR, label=f"canary {chart.canary_label}")  # fmt: skip
    top.plot(times, series([p.stable_p95_ms for p in chart.points]), "o-",
             color=STABLE_COLOUR, label=f"stable {chart.stable_label}")  # fmt: skip
    top.axhline(chart.p95_threshold_ms, color=THRESHOLD_COLOUR, linestyle="--",
                label=f"threshold {chart.p95_threshold_ms:.0f} ms")  # fmt: skip
    top.set_ylabel("P95 latency (ms)")
    top.set_ylim(bottom=0)
    bottom.plot(times, series([pct(p.canary_error_rate) for p in chart.points]), "o-",
                color=CANARY_COLOUR, label=f"canary {chart.canary_label}")  # fmt: skip
    bottom.plot(times, series([pct(p.stable_error_rate) for p in chart.points]), "o-",
                color=STABLE_COLOUR, label=f"stable {chart.stable_label}")  # fmt: skip
    bottom.axhline(chart.error_threshold * 100, color=THRESHOLD_COLOUR, linestyle="--",
                   label=f"threshold {chart.error_threshold:.0%}")  # fmt: skip
    bottom.set_ylabel("error rate (%)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("time (UTC)")
    bottom.xaxis.set_major_formatter(DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]
    for at, share in chart.share_changes:
        for ax in (top, bottom):
            ax.axvline(at, color=SHARE_COLOUR, linestyle=":")
        top.annotate(f"{share} %", (at, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -12), textcoords="offset points", color=SHARE_COLOUR)  # fmt: skip
    top.legend(loc="upper left", fontsize="small")
    bottom.legend(loc="upper left", fontsize="small")
    top.set_title(chart.title)
    return fig


def pct(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def render(chart: CanaryChart) -> bytes:
    """The chart as a PNG."""
    buf = io.BytesIO()
    draw(chart).savefig(buf, format="png")
    return buf.getvalue()
