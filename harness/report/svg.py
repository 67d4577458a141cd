"""Hand-drawn inline SVG plots: the fallback when matplotlib is not importable.

The host side computes in the project's own environment, so the harness must
not bring a plotting library that could change the versions it computes
with. These two plots need nothing but the standard library: a histogram of
|image - host| in decades and an image-vs-host scatter. Output depends only
on the input (coordinates rounded to 0.01, no ids, no dates), so the same
evidence always gives the same bytes. Text is at least 12 px and every mark
is explained by words (axis titles, counts on the bars), never by colour.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

__all__ = ["FONT_PX", "decade_label", "histogram", "scatter"]

FONT_PX = 13
_W, _H = 640, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 36, 62
_LABEL_PX = 48  # room for one tick label such as "1e-15" at FONT_PX, with a gap


def _n(value: float) -> str:
    """A coordinate: two decimals, no '-0.00', so output is stable and small."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def decade_label(exponent: int) -> str:
    return f"1e{exponent}"


def _frame(title: str, description: str, body: list[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="{FONT_PX}">'
            f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
            f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>'
            f'<text x="{_W // 2}" y="22" text-anchor="middle" font-weight="bold">{escape(title)}</text>')
    return head + "".join(body) + "</svg>"


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def histogram(counts: Sequence[int], decade_min: int, *, title: str, atol: float = 0.0) -> str:
    """Bars of counts per decade of |diff| (bin k holds [10^(min+k), 10^(min+k+1))), shown from the first to the last non-empty bin."""
    used = [i for i, c in enumerate(counts) if c]
    if not used:
        return _frame(title, "no differing values", [_text(_W / 2, _H / 2, "no differing values")])
    first, last = max(0, used[0] - 1), min(len(counts) - 1, used[-1] + 1)
    shown = list(range(first, last + 1))
    top = max(counts[i] for i in shown)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    bar_w = plot_w / len(shown)
    base_y = _TOP + plot_h
    every = math.ceil(_LABEL_PX / bar_w)  # a tick label every `every` edges, so that labels never overlap
    body = [f'<line x1="{_LEFT}" y1="{base_y}" x2="{_W - _RIGHT}" y2="{base_y}" stroke="#000000"/>',
            f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base_y}" stroke="#000000"/>']
    for k, index in enumerate(shown):
        x = _LEFT + k * bar_w
        h = plot_h * counts[index] / top
        if counts[index]:
            body.append(f'<rect class="bar" x="{_n(x + 2)}" y="{_n(base_y - h)}" width="{_n(bar_w - 4)}" height="{_n(h)}" '
                        f'fill="#4a6fa5" stroke="#1f3a63"><title>{counts[index]} in [{decade_label(decade_min + index)}, '
                        f"{decade_label(decade_min + index + 1)})</title></rect>")
            body.append(_text(x + bar_w / 2, base_y - h - 4, str(counts[index])))
        if k % every == 0:
            body.append(f'<line x1="{_n(x)}" y1="{base_y}" x2="{_n(x)}" y2="{base_y + 5}" stroke="#000000"/>')
            body.append(_text(x, base_y + 18, decade_label(decade_min + index)))
    if len(shown) % every == 0:
        body.append(_text(_LEFT + len(shown) * bar_w, base_y + 18, decade_label(decade_min + last + 1)))
    if atol > 0:
        position = (math.log10(atol) - (decade_min + first)) / len(shown)
        if 0 <= position <= 1:
            x = _LEFT + position * plot_w
            body.append(f'<line x1="{_n(x)}" y1="{_TOP}" x2="{_n(x)}" y2="{base_y}" stroke="#000000" stroke-dasharray="6 4"/>')
            body.append(_text(x + 4, _TOP + 14, f"atol {atol:g}", anchor="start"))
    body.append(_text(_LEFT + plot_w / 2, _H - 14, "|image − host|, log scale (one bar per decade)"))
    body.append(_text(18, _TOP + plot_h / 2, "values", extra=f' transform="rotate(-90 18 {_n(_TOP + plot_h / 2)})"'))
    body.append(_text(_LEFT - 6, _TOP + 4, str(top), anchor="end"))
    body.append(_text(_LEFT - 6, base_y + 4, "0", anchor="end"))
    total = sum(counts)
    return _frame(title, f"{total} values differ; histogram of their absolute differences by decade", body)


def _ticks(lo: float, hi: float) -> list[float]:
    return [lo + (hi - lo) * k / 4 for k in range(5)]


def scatter(pairs: Sequence[tuple[float, float]], *, title: str) -> str:
    """Image value (x) against host value (y) for each pair, with the line image = host."""
    if not pairs:
        return _frame(title, "no differing values", [_text(_W / 2, _H / 2, "no differing values")])
    values = [v for pair in pairs for v in pair]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(v: float) -> float:
        return _LEFT + plot_w * (v - lo) / (hi - lo)

    def py(v: float) -> float:
        return _TOP + plot_h * (1 - (v - lo) / (hi - lo))

    body = [f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#000000"/>',
            f'<line x1="{_n(px(lo))}" y1="{_n(py(lo))}" x2="{_n(px(hi))}" y2="{_n(py(hi))}" stroke="#777777" stroke-dasharray="6 4"/>',
            # In the corner farthest from the diagonal, where no point can hide it.
            _text(px(hi) - 6, py(lo) - 8, "dashed line: image = host", anchor="end")]
    for tick in _ticks(lo, hi):
        label = format(tick, ".3g")
        body.append(_text(px(tick), _TOP + plot_h + 18, label))
        body.append(_text(_LEFT - 6, py(tick) + 4, label, anchor="end"))
    for a, b in pairs:
        body.append(f'<circle class="point" cx="{_n(px(a))}" cy="{_n(py(b))}" r="3" fill="#c0392b" fill-opacity="0.6"/>')
    body.append(_text(_LEFT + plot_w / 2, _H - 14, "value in the image"))
    body.append(_text(18, _TOP + plot_h / 2, "value on the host", extra=f' transform="rotate(-90 18 {_n(_TOP + plot_h / 2)})"'))
    return _frame(title, f"{len(pairs)} differing values, image value against host value", body)
