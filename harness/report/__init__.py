"""The verification report: `model` is the record (pure data, JSON, verdict); `render` shows it in a terminal, `html` as a page."""

from __future__ import annotations

from harness.report.html import Aside, render_html
from harness.report.model import DEFAULT_REPORT_IGNORED, SCHEMA, VERDICT_MAX_DIFFERENCES, ImageInfo, Report
from harness.report.render import render

__all__ = ["DEFAULT_REPORT_IGNORED", "SCHEMA", "VERDICT_MAX_DIFFERENCES", "Aside", "ImageInfo", "Report", "render", "render_html"]
