"""The verification report: `model` is the record (pure data, JSON, verdict), `render` shows it to people."""

from __future__ import annotations

from harness.report.model import DEFAULT_REPORT_IGNORED, SCHEMA, VERDICT_MAX_DIFFERENCES, ImageInfo, Report
from harness.report.render import render

__all__ = ["DEFAULT_REPORT_IGNORED", "SCHEMA", "VERDICT_MAX_DIFFERENCES", "ImageInfo", "Report", "render"]
