"""The verification report: `model` is the record (pure data, JSON, verdict); `render` shows it in a terminal, `html` as a page.

The page and its plots load on first use of `render_html`/`Aside`: every
command imports the model, few write a page.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.report.model import DEFAULT_REPORT_IGNORED, SCHEMA, VERDICT_MAX_DIFFERENCES, ImageInfo, Report
from harness.report.render import render

_LAZY = {"Aside": "harness.report.html", "render_html": "harness.report.html"}

__all__ = ["DEFAULT_REPORT_IGNORED", "SCHEMA", "VERDICT_MAX_DIFFERENCES", "Aside", "ImageInfo", "Report", "render", "render_html"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
