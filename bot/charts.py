"""The morning digest's chart: 24 h of P95 latency (top) and error rate (bottom) for the
endpoints that breached, as a PNG written with zlib + struct (no plotting library, so
the image stays slim and start-up fast), uploaded to the digest's thread with
`files_upload_v2`.

The picture carries no text (no font needed): the upload's comment names the colours,
the thresholds (dashed red) and each panel's scale.
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from collections.abc import Sequence

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from commands.digests.render import CHART_COLOURS
from commands.ports import Chart, SeriesPoint

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

PALETTE: dict[str, RGB] = {
    "blue": (37, 99, 235),
    "orange": (234, 88, 12),
    "green": (22, 163, 74),
    "purple": (147, 51, 234),
    "yellow": (202, 138, 4),
    "brown": (120, 53, 15),
}
WHITE: RGB = (255, 255, 255)
AXIS: RGB = (120, 120, 120)
GRID: RGB = (228, 228, 228)
THRESHOLD: RGB = (220, 38, 38)


def png(width: int, height: int, pixels: bytes | bytearray) -> bytes:
    """An 8-bit RGB PNG from `width * height * 3` bytes, row by row."""
    if len(pixels) != width * height * 3:
        raise ValueError("pixel buffer does not match the size")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    stride = width * 3
    raw = b"".join(b"\x00" + bytes(pixels[y * stride : (y + 1) * stride]) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


class Canvas:
    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, colour: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(colour)

    def hline(self, x0: int, x1: int, y: int, colour: RGB, dash: int = 0) -> None:
        for x in range(min(x0, x1), max(x0, x1) + 1):
            if not dash or (x // dash) % 2 == 0:
                self.dot(x, y, colour)

    def vline(self, x: int, y0: int, y1: int, colour: RGB) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            self.dot(x, y, colour)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: RGB, width: int = 2) -> None:
        """Bresenham, `width` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for ox in range(width):
                for oy in range(width):
                    self.dot(x0 + ox, y0 + oy, colour)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def png(self) -> bytes:
        return png(self.width, self.height, self.pixels)


def _nice_top(value: float) -> float:
    """A round upper bound ≥ value: a round multiple of a power of ten."""
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp


def render(chart: Chart, width: int = 800, height: int = 440) -> tuple[bytes, str]:
    """(PNG bytes, the scale note for the upload's comment)."""
    canvas = Canvas(width, height)
    left, right, gap = 16, width - 16, 24
    panel_h = (height - 3 * gap) // 2
    span = max(1.0, (chart.until - chart.since).total_seconds())
    series = list(chart.series.items())[: len(CHART_COLOURS)]

    def panel(
        top: int, values: Sequence[Sequence[tuple[float, float | None]]], threshold: float
    ) -> float:
        bottom = top + panel_h
        peak = max([threshold * 1.25] + [v for s in values for _, v in s if v is not None])
        ymax = _nice_top(peak * 1.05)
        for q in range(5):
            y = bottom - round(panel_h * q / 4)
            canvas.hline(left, right, y, GRID)
        hours = int(span // 3600)
        for h in range(0, hours + 1, 6):
            x = left + round((right - left) * h * 3600 / span)
            canvas.vline(x, top, bottom, GRID)
        canvas.vline(left, top, bottom, AXIS)
        canvas.hline(left, right, bottom, AXIS)
        ty = bottom - round(panel_h * threshold / ymax)
        canvas.hline(left, right, ty, THRESHOLD, dash=6)
        for (_slug, _), points, colour in zip(series, values, CHART_COLOURS, strict=False):
            prev: tuple[int, int] | None = None
            for t, v in points:
                if v is None:
                    prev = None
                    continue
                x = left + round((right - left) * t / span)
                y = bottom - round(panel_h * min(v, ymax) / ymax)
                if prev is not None:
                    canvas.line(prev[0], prev[1], x, y, PALETTE[colour])
                prev = (x, y)
        return ymax

    def xs(points: list[SeriesPoint], attr: str) -> list[tuple[float, float | None]]:
        return [((p.at - chart.since).total_seconds(), getattr(p, attr)) for p in points]

    p95_top = panel(gap, [xs(s, "p95_latency_ms") for _, s in series], chart.p95_threshold_ms)
    err_top = panel(
        2 * gap + panel_h,
        [
            [(t, v * 100 if v is not None else None) for t, v in xs(s, "error_rate")]
            for _, s in series
        ],
        chart.error_threshold * 100,
    )
    note = (
        f"Top panel 0–{p95_top:,.0f} ms, bottom 0–{err_top:g} %; gridlines every quarter"
        " of the scale and every 6 h."
    )
    return canvas.png(), note


def upload(client: WebClient, channel: str, thread_ts: str, chart: Chart, comment: str) -> bool:
    """Draw `chart` and upload it into the thread of the message at `thread_ts`."""
    data, note = render(chart)
    try:
        client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=data,
            filename=chart.filename,
            title=chart.title,
            initial_comment=f"{comment} {note}",
            alt_txt=chart.title,
        )
    except (SlackApiError, SlackRequestError) as exc:
        log.error("chart upload to %s failed: %s", channel, exc)
        return False
    return True
