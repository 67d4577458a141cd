"""The report as a short Markdown verdict, for a CI step summary or a pull-request comment.

`mlrepro verify --summary-md PATH` writes it. It holds what a reviewer acts
on: the verdict, the table of differences (drift first, then notes), the
artifacts, and for repeated runs what moved and why it may have; the full
record stays in the JSON report. Pure: a Report in, text out.
"""

from __future__ import annotations

from harness.report.model import Report

__all__ = ["markdown"]


def _cell(value: object) -> str:
    # A table cell is one line, and a pipe would end it.
    return " ".join(str(value).split()).replace("|", "\\|") or "-"


def _headline(report: Report) -> str:
    if not report.deterministic:
        return "NON-DETERMINISTIC"
    return "REPRODUCIBLE" if report.reproducible else "DRIFT"


def markdown(report: Report) -> str:
    """The verdict and the tables of differences, as GitHub-flavoured Markdown."""
    icon = {"REPRODUCIBLE": "✅", "DRIFT": "❌", "NON-DETERMINISTIC": "⚠️"}[_headline(report)]
    lines = [f"### {icon} mlrepro: {_cell(report.project)}: {_headline(report)}", "", f"`{_cell(report.verdict())}`", "",
             f"Image `{_cell(report.image.tag)}`, lock sha256 `{report.lock_sha256[:12]}`.", ""]
    differences = [*(d for d in report.drift), *report.notes]
    if differences:
        lines += ["| severity | category | subject | difference |", "| --- | --- | --- | --- |"]
        lines += [f"| {d.severity} | {_cell(d.category)} | {_cell(d.subject)} | {_cell(d.message)} |" for d in differences]
        lines.append("")
    if report.artifacts:
        lines += ["| artifact | compare | status | summary |", "| --- | --- | --- | --- |"]
        lines += [f"| {_cell(a.path)} | {a.mode} | {a.status} | {_cell(a.summary)} |" for a in report.artifacts]
        lines.append("")
    for side in report.consistency:
        if not side.moved:
            lines += [f"{side.runs} runs of the {side.side} side agree.", ""]
            continue
        lines += [f"**{side.runs} runs of the {side.side} side disagree** (the project, not the image):", ""]
        lines += [f"- `{_cell(a.path)}`: {_cell(a.summary)}" for a in side.moved]
        lines += ["", "Likely causes:", "", *(f"- {_cell(cause)}" for cause in side.causes), ""]
    return "\n".join(lines) + "\n"
