"""The HTML report's plots: matplotlib's SVG backend when importable, else hand-drawn SVG (`svg`).

matplotlib is never a dependency of the harness: the host side computes in
the project's own environment, and installing a plotting library there could
change the versions it computes with. When the project already has it, its
SVG backend draws the plots; otherwise `harness.report.svg` does. Both give
the same bytes for the same evidence: matplotlib is run with a fixed
`svg.hashsalt`, no Date metadata, and text kept as text (`svg.fonttype`
'none'), on a Figure of its own (the global backend is left alone). Several
figures share one HTML document, so each figure's ids (and the references to
them) get a prefix derived from its title: no two plots on a page clash.
Titles are drawn as plain text (`parse_math=False`): a `$` in an artifact's
path is not mathtext.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from typing import Any, Sequence

from harness.report.svg import decade_label
from harness.report.svg import histogram as inline_histogram
from harness.report.svg import scatter as inline_scatter

__all__ = ["backend", "histogram_svg", "scatter_svg"]

_FONT_PT = 10  # matplotlib sizes are points: 10 pt is 13.3 px at 96 dpi


def _matplotlib() -> Any:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return None
    return matplotlib


def backend() -> str:
    """'matplotlib' when it is importable here, else 'inline' (the hand-drawn fallback)."""
    return "matplotlib" if _matplotlib() is not None else "inline"


def _figure_svg(draw: Any, title: str) -> str:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    settings = {"svg.hashsalt": "mlrepro", "svg.fonttype": "none", "font.size": _FONT_PT, "font.family": "sans-serif"}
    with matplotlib.rc_context(settings):
        figure = Figure(figsize=(6.4, 3.2))
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        draw(axes)
        axes.set_title(title, parse_math=False)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    # Inline in HTML: no XML declaration or DOCTYPE; a role and a class like the fallback's.
    text = _scoped_ids(text[text.index("<svg"):], "p" + hashlib.sha256(title.encode()).hexdigest()[:8] + "-")
    return re.sub(r"^<svg ", '<svg class="plot" role="img" aria-label="' + _attr(title) + '" ', text, count=1)


def _scoped_ids(text: str, prefix: str) -> str:
    """Every id="X" and its references (url(#X), href="#X") as prefix+X: unique within the page, still stable."""
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    return re.sub(r'(\bxlink:href|\bhref)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', text)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def histogram_svg(counts: Sequence[int], decade_min: int, *, title: str, atol: float = 0.0) -> str:
    """A histogram of |diff| per decade (log scale), as an inline <svg>."""
    if _matplotlib() is None or not any(counts):
        return inline_histogram(counts, decade_min, title=title, atol=atol)
    used = [i for i, c in enumerate(counts) if c]
    first, last = max(0, used[0] - 1), min(len(counts) - 1, used[-1] + 1)

    def draw(axes: Any) -> None:
        edges = [10.0 ** (decade_min + i) for i in range(first, last + 2)]
        heights = [counts[i] for i in range(first, last + 1)]
        bars = axes.bar(edges[:-1], heights, width=[b - a for a, b in zip(edges, edges[1:])], align="edge",
                        color="#4a6fa5", edgecolor="#1f3a63")
        axes.bar_label(bars, labels=[str(h) if h else "" for h in heights])
        axes.set_ylim(0, max(heights) * 1.2)  # room for the tallest bar's count under the title
        axes.set_xscale("log")
        # Plain "1e-7" labels, as the fallback draws them: mathtext's 10^-7 sets its exponent below 12 px.
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

        every = math.ceil(len(edges) / 10)  # at most about ten labels, so that they never overlap
        axes.xaxis.set_major_locator(FixedLocator(edges[::every]))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: decade_label(round(math.log10(value)))))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.xaxis.set_minor_formatter(NullFormatter())
        if atol > 0 and edges[0] <= atol <= edges[-1]:
            axes.axvline(atol, color="#000000", linestyle="--", label=f"atol {atol:g}")
            axes.legend()
        axes.set_xlabel("|image − host|, log scale (one bar per decade)")
        axes.set_ylabel("values")

    return _figure_svg(draw, title)


def scatter_svg(pairs: Sequence[tuple[float, float]], *, title: str) -> str:
    """Image value against host value for each sampled pair, with the line image = host."""
    finite = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    if _matplotlib() is None or not finite:
        return inline_scatter(finite, title=title)

    def draw(axes: Any) -> None:
        values = [v for pair in finite for v in pair]
        lo, hi = min(values), max(values)
        axes.plot([lo, hi], [lo, hi], color="#777777", linestyle="--", label="image = host")
        axes.scatter([a for a, _ in finite], [b for _, b in finite], s=12, color="#c0392b", alpha=0.6, label="differing value")
        axes.legend()
        axes.set_xlabel("value in the image")
        axes.set_ylabel("value on the host")

    return _figure_svg(draw, title)
