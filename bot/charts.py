"""The morning digest's chart: the last 24 h of P95 latency (top) and error rate (bottom)
for the endpoints that breach, uploaded to the digest's thread by the Slack notifier.

Titled, with labelled axes and units, the time axis in the digest's timezone, each
threshold drawn (dashed red) and labelled, and a legend naming every endpoint. Drawn with
matplotlib (Agg, no display) in the process that posts the digest — the scheduler
process, a command worker, or `aiops-bot digest --chart` — and imported only there,
lazily: the server that acks never loads it (`tests/edge/test_serve_processes.py`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from commands.ports import Chart, SeriesPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# One colour an endpoint, as many as the digest charts (`commands.digests.gather.CHART_ENDPOINTS`).
COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#ca8a04", "#78350f")
THRESHOLD_COLOUR = "#dc2626"  # red, dashed


def zone_name(chart: Chart) -> str:
    """The zone as people know it (`Australia/Sydney`), else its abbreviation now."""
    return str(
        getattr(chart.timezone, "key", None) or chart.until.astimezone(chart.timezone).tzname()
    )


def draw(chart: Chart) -> Figure:
    """The figure (not yet rendered): two panels sharing a time axis in `chart.timezone`."""
    from matplotlib.dates import DateFormatter, HourLocator
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    series = list(chart.series.items())[: len(COLOURS)]

    def values(points: list[SeriesPoint], scale: float, attr: str) -> list[float]:
        out = []
        for p in points:
            v = getattr(p, attr)
            out.append(float("nan") if v is None else v * scale)
        return out

    def panel(ax: Axes, attr: str, scale: float, threshold: float, label: str) -> None:
        peak = threshold
        for (slug, points), colour in zip(series, COLOURS, strict=False):
            ys = values(points, scale, attr)
            times = [p.at for p in points]
            ax.plot(times, ys, "-o", color=colour, linewidth=1.6, markersize=2.5, label=slug)  # type: ignore[arg-type]
            peak = max([peak, *(y for y in ys if y == y)])  # NaN != NaN: gaps left out
        ax.axhline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label=label)
        ax.set_ylim(0, peak * 1.15)
        ax.grid(True, color="#e5e7eb", linewidth=0.8)
        ax.legend(loc="upper left", fontsize="small", ncols=2)

    p95_ms = chart.p95_threshold_ms
    panel(top, "p95_latency_ms", 1.0, p95_ms, f"threshold {p95_ms:,.0f} ms")
    top.set_ylabel("P95 latency (ms)")
    panel(bottom, "error_rate", 100.0, chart.error_threshold * 100,
          f"threshold {chart.error_threshold:.2%}".replace(".00%", "%"))  # fmt: skip
    bottom.set_ylabel("error rate (%)")
    tz = chart.timezone
    since, until = chart.since.astimezone(tz), chart.until.astimezone(tz)
    bottom.set_xlim(since, until)
    bottom.xaxis.set_major_locator(HourLocator(byhour=range(0, 24, 3), tz=tz))  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
    days = f"{since:%a %d %b}" + (f" – {until:%a %d %b}" if since.date() != until.date() else "")
    bottom.set_xlabel(f"time ({zone_name(chart)}), {days}")
    top.set_title(chart.title)
    return fig


def render(chart: Chart) -> bytes:
    """The chart as a PNG."""
    buf = io.BytesIO()
    draw(chart).savefig(buf, format="png")
    return buf.getvalue()
