"""The report as one self-contained HTML page, for people deciding whether drift matters.

Built from the same Report as the terminal view and the JSON file (read
through its public properties only, so new fields and verdicts do not break
it), plus, optionally, each step's log from both sides (the Report does not
carry logs; `RunResult.logs` does). The page needs nothing else: inline CSS,
inline SVG plots (`plots`), no script, no font, no network (its
Content-Security-Policy forbids them, should anything slip in). It reads without
JavaScript, prints one section per page, uses no text under 12 px, and says
every status in words and symbols, never by colour alone. Every string that
comes from a run (package names, summaries, cells, logs) is escaped. The
same inputs give the same bytes: nothing here reads the clock, a path or a
random source, and run-specific temp dirs in logs are replaced by `{tmp}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any, Iterable, Mapping, Sequence

from harness.compare import normalize_name
from harness.compare.evidence import is_label_column, is_probability_column
from harness.errors import tail
from harness.ownership import TEMP_PREFIX
from harness.report.model import Report
from harness.report.plots import histogram_svg, scatter_svg

__all__ = ["LOG_TAIL_LINES", "WORST_ROWS_SHOWN", "Aside", "render_html", "stable_log"]

LOG_TAIL_LINES = 40
WORST_ROWS_SHOWN = 10

# Enforced by the browser: the page can load nothing and run nothing, whatever a run's strings held.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_ARTIFACT_STATUS = {"identical": "✓ identical", "equivalent": "≈ equivalent", "differs": "✗ differs", "missing": "✗ missing"}
_TEMP_DIR = re.compile(r"(?:/[^\s/'\"]+)*/" + re.escape(TEMP_PREFIX) + r"[a-z0-9_.]+-[0-9]+-[A-Za-z0-9_]+-[A-Za-z0-9_]+")

_CSS = """
:root { color-scheme: light; }
body { font-family: sans-serif; font-size: 16px; line-height: 1.45; color: #111; background: #fff; margin: 0 auto; max-width: 1100px; padding: 16px 24px; }
h1 { font-size: 26px; margin: 0 0 8px; } h2 { font-size: 21px; margin: 0 0 10px; } h3 { font-size: 18px; margin: 18px 0 8px; }
section, header { border-top: 2px solid #bbb; padding: 14px 0 18px; }
.verdict { border: 3px solid #b00020; background: #fdecee; padding: 12px 16px; }
.verdict.ok { border-color: #1b7f3b; background: #e9f7ee; }
.status { font-size: 24px; font-weight: bold; margin: 0 0 6px; color: #b00020; } .verdict.ok .status { color: #1b7f3b; }
.summary { font-size: 16px; margin: 0 0 10px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; font-size: 14px; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; font-family: monospace; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 12px; }
th, td { border: 1px solid #999; padding: 3px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.artifact-list td:nth-child(-n+3), table.artifact-list th { white-space: nowrap; overflow-wrap: normal; }
th { background: #eee; }
td.num { font-family: monospace; text-align: right; }
tr.drift td { background: #fdecee; } tr.note td { background: #fff6dd; } tr.differs td { background: #f3ecfb; }
.bad { color: #b00020; font-weight: bold; } .warn { color: #7a5600; font-weight: bold; } .good { color: #1b7f3b; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; overflow-x: auto; }
figcaption { font-size: 14px; max-width: 640px; }
svg.plot { max-width: none; }
pre { font-size: 13px; background: #f6f6f6; border: 1px solid #ccc; padding: 6px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: bold; }
@media print {
  body { max-width: none; padding: 0; }
  section { break-before: page; border-top: none; }
  article.artifact, figure, tr { break-inside: avoid; }
  details::details-content { content-visibility: visible; display: block; }
}
"""


@dataclass(frozen=True)
class Aside:
    """An extra section of plain text lines (escaped like everything else), e.g. the demo's cross-load."""

    title: str
    lines: tuple[str, ...]


def _e(value: Any) -> str:
    return escape("–" if value is None else str(value), quote=True)


def stable_log(text: str) -> str:
    """A step's output without this run's temp dirs (`mlrepro-<run>-<pid>-<kind>-...` becomes `{tmp}`)."""
    return _TEMP_DIR.sub("{tmp}", text)


def _number(value: Any) -> str:
    return "–" if value is None else (format(value, ".3g") if isinstance(value, float) else str(value))


def _table(headers: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]], *, cls: str = "") -> str:
    """Rows are (row class, already-escaped cells)."""
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{c}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>" for c, cells in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _verdict(report: Report, title: str | None, context: str | None) -> str:
    verdict = report.verdict()
    word = verdict.split(":", 1)[0] if ":" in verdict else verdict
    ok = report.reproducible
    img = report.image
    facts = [("project", report.project), ("image", img.tag), ("image ID", img.image_id), ("content hash", img.content_hash),
             ("lock sha256", report.lock_sha256), ("base image", f"{img.base_image} ({img.base_image_id})")]
    if report.reference_sha256:  # `verify --against`: the "host" columns below are this recorded run
        facts.append(("reference", f"sha256:{report.reference_sha256} (the host columns are this recorded run)"))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    heading = title or f"Reproducibility report: {report.project}"
    extra = f'<p class="summary">{_e(context)}</p>' if context else ""
    return (f'<header id="verdict" class="verdict {"ok" if ok else "fail"}"><h1>{_e(heading)}</h1>{extra}'
            f'<p class="status">{"✓" if ok else "✗"} {_e(word)}</p>'
            f'<p class="summary" id="summary">{_e(verdict)}</p><dl class="facts">{dl}</dl></header>')


def _packages(report: Report) -> str:
    envs = report.environments
    # Keyed like compare_packages' subjects (normalised names), so a probe's spelling cannot hide a row.
    image_pk = {normalize_name(k): v for k, v in envs.get("image", {}).get("packages", {}).items()}
    host_pk = {normalize_name(k): v for k, v in envs["host"].get("packages", {}).items()} if "host" in envs else None
    differing = {d.subject: d for d in report.differences if d.category == "package" and d.subject != "host extras"}
    rows: list[tuple[str, list[str]]] = []
    for d in sorted(differing.values(), key=lambda d: (d.severity != "drift", d.subject)):
        info = d.details
        host = "not run" if not info.get("host_run", True) else info.get("host")
        problems = ", ".join(info.get("problems", [])) or d.severity
        symbol = "✗ drift" if d.severity == "drift" else "! note"
        rows.append((d.severity, [_e(d.subject), _e(info.get("lock")), _e(info.get("image")), _e(host), f"{symbol}: {_e(problems)}"]))
    rest = sorted((set(image_pk) | set(host_pk or ())) - set(differing))
    ignored = [name for name in rest if report.ignores(name)]
    host_only = [name for name in rest if name not in ignored and name not in image_pk]
    locked = [name for name in rest if name not in ignored and name not in host_only]
    # Differences first, then the image's (locked) packages, then the host's tooling and what is ignored.
    for name in locked:
        in_image, on_host = image_pk[name], (host_pk or {}).get(name)
        host = on_host if host_pk is not None else "not run"
        if host_pk is not None and on_host != in_image:
            rows.append(("differs", [_e(name), _e(in_image), _e(in_image), _e(host), "≠ differs, not compared"]))
        else:
            rows.append(("", [_e(name), _e(in_image), _e(in_image), _e(host), '<span class="good">✓ same</span>']))
    rows += [("", [_e(name), "–", "–", _e((host_pk or {}).get(name)), "– host only, not locked (tooling)"]) for name in host_only]
    rows += [("", [_e(name), "n/a", _e(image_pk.get(name)), _e((host_pk or {}).get(name) if host_pk is not None else "not run"),
                   "– ignored (compare.ignore_packages)"]) for name in ignored]
    compared = len(differing) + len(locked)
    count = f"{len(differing)} of {compared} packages differ" if differing else f"No package differs ({compared} compared)"
    extra = "".join(f", {len(names)} {what}" for names, what in ((host_only, "only on the host (not locked)"), (ignored, "ignored"))
                    if names)
    return (f'<section id="packages"><h2>Packages</h2><p>{_e(count + extra)}. Differences first, then the locked packages, '
            "then the host's tooling and the ignored ones.</p>"
            + _table(("package", "lock", "image", "host", "status"), rows) + "</section>")


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, Mapping) and value:
        for key in sorted(value, key=str):  # the JSON record sorts its keys: so does the page, to stay a function of it
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif prefix:  # an empty record has no rows, not one row without a name
        out[prefix] = "unset" if value is None else str(value)
    return out


def _environment(report: Report) -> str:
    envs = report.environments
    image = _flatten({k: v for k, v in envs.get("image", {}).items() if k != "packages"}, "", {})
    host_env = envs.get("host")
    host = _flatten({k: v for k, v in host_env.items() if k != "packages"}, "", {}) if host_env is not None else {}
    judged = [d for d in report.differences if d.category not in ("package", "artifact")]
    items = "".join(f'<li><span class="{"bad" if d.severity == "drift" else "warn"}">'
                    f'{"✗ drift" if d.severity == "drift" else "! note"}</span>: {_e(d.message)}</li>' for d in judged)
    judged_html = f"<ul>{items}</ul>" if items else "<p>No environment difference was judged drift or note.</p>"
    keys = list(image) + [k for k in host if k not in image]
    differ = [k for k in keys if host_env is not None and image.get(k) != host.get(k)]
    rows = []
    for key in differ + [k for k in keys if k not in differ]:
        h = "not run" if host_env is None else host.get(key, "absent")
        mark = "≠ differs" if key in differ else '<span class="good">✓ same</span>'
        rows.append(("differs" if key in differ else "", [_e(key), _e(image.get(key, "absent")), _e(h), mark]))
    return (f'<section id="environment"><h2>Environment</h2>{judged_html}'
            f"<p>{len(differ)} of {len(keys)} recorded values differ between the sides; differences first.</p>"
            + _table(("value", "image", "host", "status"), rows) + "</section>")


def _diff_text(image: Any, host: Any) -> str:
    try:
        return format(float(host) - float(image), ".3g")
    except (TypeError, ValueError, OverflowError):
        return "–"


def _cell_rows(entries: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Cells in the table's column order (the rest sorted): the same page before and after a JSON round trip."""
    rows = []
    for entry in entries:
        found = entry.get("cells", {})
        for column in [c for c in columns if c in found] + sorted(c for c in found if c not in columns):
            cells = found[column]
            label = is_label_column(column)
            rows.append(("drift" if label else "", [
                f'<span class="num">{_e(entry.get("row"))}</span>', _e(column) + (" (label)" if label else ""),
                f'<span class="num">{_e(cells.get("image"))}</span>', f'<span class="num">{_e(cells.get("host"))}</span>',
                f'<span class="num">{_e(_diff_text(cells.get("image"), cells.get("host")))}</span>']))
    return rows


def _decisions(columns: Sequence[str], evidence: Mapping[str, Any]) -> list[str]:
    lines = []
    labels = evidence.get("labels", {})
    for column in [c for c in columns if is_label_column(c)]:
        info = labels.get(column)
        if info:
            changes = ", ".join(f"{k}: {v}" for k, v in info.get("changes", {}).items())
            rows = info.get("rows_changed")
            lines.append(f"✗ label column '{column}': {rows} row{'' if rows == 1 else 's'} changed ({changes})")
        else:
            lines.append(f"✓ label column '{column}': no label changed")
    threshold = evidence.get("threshold", {})
    crossings = threshold.get("crossings", {})
    for column, count in crossings.items():
        lines.append(f"✗ '{column}' crossed {threshold.get('value')} in {count} row{'' if count == 1 else 's'} (a thresholded decision flips)")
    if not crossings and any(is_probability_column(c) for c in columns):
        lines.append(f"✓ no probability crossed {threshold.get('value', 0.5)}")
    return lines


def _artifact(index: int, a: Any) -> str:
    details = a.details
    status = _ARTIFACT_STATUS.get(a.status, f"? {a.status}")
    cls = "good" if a.status == "identical" else ("warn" if a.status == "equivalent" else "bad")
    facts = [("mode", a.mode), ("status", status)]
    for key in ("rows", "rows_differing", "cells_differing", "values", "values_differing", "max_abs_diff", "max_rel_diff", "atol", "rtol"):
        if key in details:
            facts.append((key.replace("_", " "), _number(details[key])))
    evidence = details.get("evidence") or {}
    direction = evidence.get("direction")
    if direction and (direction.get("host_higher") or direction.get("host_lower")):
        facts.append(("direction", f"host higher in {direction.get('host_higher')} values, lower in {direction.get('host_lower')}"))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    parts = [f'<article class="artifact" id="artifact-{index}"><h3>{_e(a.path)} <span class="{cls}">{_e(status)}</span></h3>',
             f'<p class="summary">{_e(a.summary)}</p><dl class="facts">{dl}</dl>']
    decisions = _decisions(details.get("columns") or [], evidence) if evidence else []
    if decisions:
        items = "".join(f'<li class="{"bad" if line.startswith("✗") else "good"}">{_e(line)}</li>' for line in decisions)
        parts.append(f'<h4>Decisions</h4><ul class="decisions">{items}</ul>')
    decades = evidence.get("abs_diff_decades")
    if a.status == "identical" or (decades and not any(decades.get("counts", []))):
        parts.append('<p class="nothing-moved"><span class="good">✓</span> No value differs between the image and the host: '
                     "nothing to plot.</p>")
    elif decades:
        sample = evidence.get("sample", {})
        pairs = [(p["image"], p["host"]) for p in sample.get("pairs", [])]
        atol = details.get("atol") if isinstance(details.get("atol"), (int, float)) else 0.0
        hist = histogram_svg(decades["counts"], decades["min"], title=f"{a.path}: |image − host|", atol=atol)
        dots = scatter_svg(pairs, title=f"{a.path}: image vs host")
        shown = f"all {len(pairs)}" if len(pairs) == sample.get("of") else f"a sample of {len(pairs)} of {sample.get('of')}"
        parts.append(f'<div class="plots"><figure class="histogram">{hist}<figcaption>How many values moved by how much: '
                     f"{sum(decades['counts'])} values differ (a ≠ b), by decade of |image − host|.</figcaption></figure>"
                     f'<figure class="scatter">{dots}<figcaption>Image value against host value, {_e(shown)} differing '
                     "values; points off the dashed line moved.</figcaption></figure></div>")
    worst = evidence.get("worst_rows")
    headers = ("row (0-based)", "column", "image", "host", "host − image")
    if worst:
        parts.append(f"<h4>Worst rows (the {len(worst[:WORST_ROWS_SHOWN])} with the largest |image − host|)</h4>")
        parts.append(_table(headers, _cell_rows(worst[:WORST_ROWS_SHOWN], details.get("columns") or []), cls="worst-rows"))
    first = details.get("first_differences")
    if first and not worst:
        named = [{"row": f.get("row", f.get("key")), "cells": f.get("cells") or {str(f.get("key")): f}} for f in first]
        parts.append("<h4>First differences</h4>" + _table(headers, _cell_rows(named, details.get("columns") or []), cls="first-differences"))
    if "value_image" in details:
        parts.append(_table(("side", "value"), [("", ["image", _e(details["value_image"])]), ("", ["host", _e(details["value_host"])])]))
    return "".join(parts) + "</article>"


def _artifacts(report: Report) -> str:
    if not report.artifacts:
        return '<section id="artifacts"><h2>Artifacts</h2><p>No artifacts compared.</p></section>'
    rows = [("drift" if a.status in ("differs", "missing") else "",
             [f'<a href="#artifact-{i}">{_e(a.path)}</a>', _e(a.mode), _e(_ARTIFACT_STATUS.get(a.status, f"? {a.status}")), _e(a.summary)])
            for i, a in enumerate(report.artifacts, start=1)]
    articles = "".join(_artifact(i, a) for i, a in enumerate(report.artifacts, start=1))
    return ('<section id="artifacts"><h2>Artifacts</h2>' + _table(("path", "mode", "status", "summary"), rows, cls="artifact-list")
            + articles + "</section>")


def _notes(report: Report) -> str:
    notes = report.notes
    items = "".join(f'<li><span class="warn">! note</span> ({_e(n.category)}): {_e(n.message)}</li>' for n in notes)
    return f'<section id="notes"><h2>Notes</h2>{"<ul>" + items + "</ul>" if items else "<p>No notes.</p>"}</section>'


def _consistency(report: Report) -> str:
    """`verify --repeat N`: whether each repeated side agreed with itself (absent when nothing was repeated)."""
    if not report.consistency:
        return ""
    parts = ['<section id="consistency"><h2>Repeated runs</h2>']
    for side in report.consistency:
        if not side.moved:
            parts.append(f'<p><span class="good">✓</span> {side.runs} runs of the {_e(side.side)} side agree.</p>')
            continue
        parts.append(f'<p><span class="bad">✗</span> {side.runs} runs of the {_e(side.side)} side disagree '
                     "(the project, not the image):</p>")
        parts.append("<ul>" + "".join(f"<li>{_e(a.path)}: {_e(a.summary)}</li>" for a in side.moved) + "</ul>")
        if side.causes:
            parts.append("<p>Likely causes:</p><ul>" + "".join(f"<li>{_e(c)}</li>" for c in side.causes) + "</ul>")
    return "".join(parts) + "</section>"


def _asides(asides: Sequence[Aside]) -> str:
    return "".join(f'<section class="aside"><h2>{_e(a.title)}</h2><pre>{_e(chr(10).join(a.lines))}</pre></section>' for a in asides)


def _logs(logs: Mapping[str, Mapping[str, str]] | None) -> str:
    if not logs:
        return ('<section id="logs"><h2>Step logs</h2><p>No step logs are part of this report; '
                "the run's terminal output holds them.</p></section>")
    sides = list(logs)
    steps = list(dict.fromkeys(step for side in sides for step in logs[side]))
    blocks = []
    for step in steps:
        columns = []
        for side in sides:
            text = logs[side].get(step)
            shown = "(step not run here)" if text is None else (stable_log(tail(text, LOG_TAIL_LINES)) or "(no output)")
            columns.append(f"<div><h4>{_e(side)}</h4><pre>{_e(shown)}</pre></div>")
        blocks.append(f"<details><summary>step {_e(step)}: last {LOG_TAIL_LINES} lines from {_e(', '.join(sides))}</summary>"
                      f'<div class="sides">{"".join(columns)}</div></details>')
    return '<section id="logs"><h2>Step logs</h2>' + "".join(blocks) + "</section>"


def render_html(report: Report, *, logs: Mapping[str, Mapping[str, str]] | None = None, title: str | None = None,
                context: str | None = None, asides: Sequence[Aside] = ()) -> str:
    """The whole page; `logs` is side name -> step name -> output (e.g. {"image": run.logs, "host": ...})."""
    verdict = report.verdict()
    word = verdict.split(":", 1)[0]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{_e(word)}: {_e(report.project)} ({_e(report.image.tag)})</title><style>{_CSS}</style></head><body>"
            + _verdict(report, title, context) + _packages(report) + _environment(report) + _artifacts(report)
            + _consistency(report) + _notes(report) + _asides(asides) + _logs(logs) + "</body></html>\n")
