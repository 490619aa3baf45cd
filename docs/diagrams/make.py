"""Draw the docs' diagrams as SVG files beside this script: the script is their source.

No diagram tool (Graphviz, Mermaid) is needed to build the docs: the SVG files are committed,
and ``tests/test_docs_diagrams.py`` checks that they are what this script draws. After
changing a drawing here, run::

    .venv/bin/python docs/diagrams/make.py

Each drawing is a list of boxes, arrows and labels at fixed coordinates (in pixels), so the
output is the same on every machine.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
FONT = "font-family='Helvetica, Arial, sans-serif'"
INK = "#1f2933"
ACCENT = "#2563eb"
MUTED = "#52606d"
FILL = "#eef2ff"


class Drawing:
    """An SVG document built from a few primitives."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width = width
        self.height = height
        self.parts: list[str] = [f"<title>{escape(title)}</title>"]

    def box(self, x: float, y: float, w: float, h: float, *lines: str, fill: str = FILL) -> None:
        """A rounded box with centred lines of text; the first line is bold."""
        self.parts.append(
            f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='8' fill='{fill}' "
            f"stroke='{INK}' stroke-width='1.5'/>"
        )
        top = y + h / 2 - (len(lines) - 1) * 9 + 5
        for n, line in enumerate(lines):
            weight = "bold" if n == 0 else "normal"
            size = 15 if n == 0 else 12
            self.text(x + w / 2, top + n * 18, line, size=size, weight=weight)

    def text(
        self,
        x: float,
        y: float,
        line: str,
        *,
        size: int = 12,
        weight: str = "normal",
        anchor: str = "middle",
        color: str = INK,
    ) -> None:
        """One line of text; ``anchor`` is start, middle or end."""
        self.parts.append(
            f"<text x='{x}' y='{y}' {FONT} font-size='{size}' font-weight='{weight}' "
            f"text-anchor='{anchor}' fill='{color}'>{escape(line)}</text>"
        )

    def arrow(self, path: str, *, color: str = INK, dashed: bool = False) -> None:
        """An SVG path (``M x y L ...`` or ``M x y Q ...``) ending in an arrowhead."""
        dash = " stroke-dasharray='5 4'" if dashed else ""
        marker = "head-accent" if color == ACCENT else "head"
        self.parts.append(
            f"<path d='{path}' fill='none' stroke='{color}' stroke-width='1.6'{dash} "
            f"marker-end='url(#{marker})'/>"
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, *, dashed: bool = False) -> None:
        """A plain line."""
        dash = " stroke-dasharray='4 4'" if dashed else ""
        self.parts.append(
            f"<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='{MUTED}' "
            f"stroke-width='1'{dash}/>"
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1) -> None:
        """A plain filled rectangle (bars of a chart)."""
        self.parts.append(
            f"<rect x='{x}' y='{y}' width='{w}' height='{h}' fill='{fill}' "
            f"fill-opacity='{opacity}'/>"
        )

    def svg(self) -> str:
        """The whole document."""
        heads = "".join(
            f"<marker id='{name}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='8' "
            f"markerHeight='8' orient='auto-start-reverse'><path d='M0 0 L10 5 L0 10 z' "
            f"fill='{color}'/></marker>"
            for name, color in (("head", INK), ("head-accent", ACCENT))
        )
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' "
            f"height='{self.height}' viewBox='0 0 {self.width} {self.height}'>\n"
            f"<defs>{heads}</defs>\n"
            f"<rect width='{self.width}' height='{self.height}' fill='white'/>\n"
            + "\n".join(self.parts)
            + "\n</svg>\n"
        )


def client_states() -> Drawing:
    """EventSource's ready states and what moves it between them."""
    d = Drawing(820, 360, "EventSource ready states")
    d.box(70, 150, 180, 60, "CONNECTING", "request sent, waiting")
    d.box(400, 150, 160, 60, "OPEN", "events arrive")
    d.box(660, 150, 130, 60, "CLOSED", "nothing reconnects")
    # start
    d.parts.append(f"<circle cx='30' cy='180' r='7' fill='{INK}'/>")
    d.arrow("M 37 180 L 68 180")
    d.text(14, 136, "startService()", anchor="start", color=MUTED)
    # connecting -> open
    d.arrow("M 250 165 L 398 165", color=ACCENT)
    d.text(324, 142, "200 text/event-stream", color=ACCENT)
    d.text(324, 157, "(the policy says open)", color=ACCENT)
    # open -> connecting
    d.arrow("M 400 195 L 252 195")
    d.text(326, 222, "body ends, network error,")
    d.text(326, 238, "idle timeout, parse error: wait")
    d.text(326, 254, "(the base delay if it delivered an event)")
    # self loop on connecting
    d.arrow("M 120 150 C 100 70, 220 70, 200 148")
    d.text(160, 40, "refused, connect timeout, retried status", weight="bold")
    d.text(160, 58, "(5xx, 408, 429 with the resilient policy):")
    d.text(160, 76, "wait a growing delay, try again")
    # connecting -> closed
    d.arrow("M 160 210 C 160 320, 725 320, 725 212")
    d.text(440, 326, "refused for good (the policy says fail: 404, 204, not an event stream,")
    d.text(440, 342, "too many redirects, https to http): the error is reported")
    # open -> closed
    d.arrow("M 560 180 L 658 180")
    d.text(609, 140, "close(),")
    d.text(609, 156, "stopService()")
    d.text(609, 172, "(from any state)", color=MUTED)
    return d


def reconnect_timing() -> Drawing:
    """The delay before each reconnection: growth, cap, jitter, reset by a healthy connection."""
    d = Drawing(820, 380, "EventSource reconnection delays")
    left, bottom, top, scale = 80, 300, 60, 7.0  # scale: pixels per second
    d.line(left, bottom, 790, bottom)
    d.line(left, top - 10, left, bottom)
    for seconds in (0, 10, 20, 30):
        y = bottom - seconds * scale
        d.line(left - 5, y, left, y)
        d.text(left - 10, y + 4, f"{seconds} s", anchor="end", color=MUTED)
    cap = bottom - 30 * scale
    d.line(left, cap, 790, cap, dashed=True)
    d.text(left + 10, cap - 8, "max_reconnect_delay (30 s): nothing waits longer", anchor="start")
    bars = [
        ("1st failure", 3.0),
        ("2nd", 6.0),
        ("3rd", 12.0),
        ("4th", 24.0),
        ("5th", 30.0),
        ("6th", 30.0),
        ("after an event", 3.0),
        ("1st failure", 3.0),
    ]
    width = 62
    for n, (label, delay) in enumerate(bars):
        x = left + 20 + n * 86
        jitter = min(delay * 1.2, 30.0) - delay
        color = ACCENT if n < 6 else "#16a34a"
        d.rect(x, bottom - delay * scale, width, delay * scale, color, 0.85)
        if jitter > 0:
            d.rect(x, bottom - (delay + jitter) * scale, width, jitter * scale, color, 0.3)
        d.text(x + width / 2, bottom - 6, f"{delay:g} s", weight="bold", color="#ffffff")
        d.text(x + width / 2, bottom + 18, label, size=11)
    d.text(left, 24, "Delay before each reconnection (reconnect_delay = 3 s, backoff_factor = 2,"
           " jitter = 20 %)", anchor="start", weight="bold")  # fmt: skip
    d.text(left, 42, "Failures in a row grow the delay from max(base, 0.5 s); jitter (light) only "
           "lengthens it.", anchor="start")  # fmt: skip
    d.text(left, 340, "After a connection that delivered an event (or stayed open 60 s), the "
           "reconnection waits the base", anchor="start")  # fmt: skip
    d.text(left, 358, "(the server's retry:, or reconnect_delay) again, and failures grow "
           "from there.", anchor="start")  # fmt: skip
    return d


def hub_flow() -> Drawing:
    """Where an event goes in twistd sse-hub, from a publisher or an upstream to subscribers."""
    d = Drawing(860, 430, "twistd sse-hub data flow")
    d.box(20, 60, 170, 64, "Publishers", "your backends", fill="#f8fafc")
    d.box(20, 200, 170, 64, "Upstream stream", "any event stream", fill="#f8fafc")
    d.box(250, 30, 385, 270, "", fill="#ffffff")
    d.text(442, 52, "twistd sse-hub (one process, or many)", weight="bold", size=14)
    d.box(270, 70, 150, 56, "POST /topics/t", "bearer token, size limit")
    d.box(270, 200, 150, 56, "UpstreamRelay", "EventSource + lease")
    d.box(450, 130, 140, 64, "channel of t", "Memory or Redis")
    d.box(480, 228, 140, 56, "GET /topics/t", "replay, keep-alive")
    d.box(680, 100, 160, 64, "Subscribers", "browsers, EventSource", fill="#f8fafc")
    d.box(680, 230, 160, 64, "Subscribers", "of another process", fill="#f8fafc")
    d.box(
        330,
        350,
        330,
        60,
        "Redis (--redis): streams + pub/sub",
        "XADD and PUBLISH in one script; SUBSCRIBE per topic",
    )
    d.arrow("M 190 92 L 268 98")
    d.text(229, 84, "POST", color=MUTED)
    d.arrow("M 190 232 L 268 228")
    d.text(229, 222, "events", color=MUTED)
    d.arrow("M 420 100 L 448 150")
    d.arrow("M 420 226 L 448 176")
    d.arrow("M 550 194 L 550 226")
    d.arrow("M 620 250 C 655 250, 650 140, 678 132", color=ACCENT)
    d.text(660, 196, "encoded once,", color=ACCENT, anchor="start", size=11)
    d.text(660, 210, "written to all", color=ACCENT, anchor="start", size=11)
    d.arrow("M 462 194 L 462 348", dashed=True)
    d.arrow("M 640 348 C 660 320, 690 310, 700 296", dashed=True)
    d.text(452, 318, "with --redis: every process", color=MUTED, anchor="end", size=11)
    d.text(452, 332, "serves every topic, same ids", color=MUTED, anchor="end", size=11)
    d.text(20, 300, "Last-Event-ID resumes on any", color=MUTED, anchor="start", size=11)
    d.text(20, 314, "process; a gap is a reset event.", color=MUTED, anchor="start", size=11)
    return d


DRAWINGS = {
    "client-states.svg": client_states,
    "reconnect-timing.svg": reconnect_timing,
    "hub-flow.svg": hub_flow,
}


def render() -> dict[str, str]:
    """Every diagram's file name and SVG text."""
    return {name: draw().svg() for name, draw in DRAWINGS.items()}


if __name__ == "__main__":
    for name, svg in render().items():
        (HERE / name).write_text(svg, encoding="utf-8")
        print(f"wrote {HERE / name}")
