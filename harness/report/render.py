"""The report for people: rich tables in a terminal, ending with the one-line verdict.

The only module of the report that knows about rich; a Report itself stays
plain data (see `model`).
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.terminal import safe

from harness.report.model import Report

__all__ = ["render"]

_SEVERITY_STYLE = {"drift": "bold red", "note": "yellow"}
_STATUS_STYLE = {"identical": "green", "equivalent": "cyan", "differs": "bold red", "missing": "bold red"}


def _short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12] if image_id else "?"


def _text(value: Any, style: str = "") -> Text:
    # Text, never markup: summaries contain brackets like 'proba[0]'.
    return Text("-" if value is None else safe(str(value)), style=style)


def _render_header(report: Report, console: Console) -> None:
    img = report.image
    console.print(Text(f"Reproducibility report: {report.project}", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("image", f"{img.tag} ({_short_id(img.image_id)})")
    grid.add_row("content hash", img.content_hash)
    grid.add_row("base image", f"{img.base_image} ({_short_id(img.base_image_id)})")
    grid.add_row("lock sha256", report.lock_sha256)
    if report.reference_sha256:  # the "host" column is then the recorded reference
        grid.add_row("reference", f"sha256:{report.reference_sha256} (the host column is this recorded run)")
    console.print(grid)


def _render_packages(report: Report, console: Console) -> None:
    image_pk = report.environments.get("image", {}).get("packages", {})
    host_env = report.environments.get("host")
    host_pk = host_env.get("packages", {}) if host_env is not None else None
    by_name = {d.subject: d for d in report.differences if d.category == "package" and d.subject != "host extras"}

    table = Table(title="Packages", title_justify="left")
    for column in ("package", "lock", "image", "host", "status"):
        table.add_column(column)
    for name in sorted(by_name):
        diff = by_name[name]
        info = diff.details
        host_cell = "not run" if not info.get("host_run", True) else info.get("host")
        status = ", ".join(info.get("problems", [])) or diff.severity
        style = _SEVERITY_STYLE.get(diff.severity, "")
        table.add_row(
            _text(name, style), _text(info.get("lock")), _text(info.get("image")), _text(host_cell), _text(status, style)
        )
    agreeing, host_only = [], []
    for name in sorted((set(image_pk) | set(host_pk or ())) - set(by_name)):
        in_image, on_host = image_pk.get(name), (host_pk or {}).get(name)
        host_cell = on_host if host_pk is not None else "not run"
        if report.ignores(name):
            # Not compared, so the lock's version is unknown here.
            table.add_row(*(_text(c, "dim") for c in (name, "n/a", in_image, host_cell, "ignored (compare.ignore_packages)")))
        elif in_image is None:
            host_only.append(f"{name}=={on_host}")
        elif host_pk is not None and on_host != in_image:
            table.add_row(*(_text(c, "dim") for c in (name, in_image, in_image, on_host, "not compared")))
        else:
            # No difference means the image matched the lock (it must equal it
            # exactly) and the host did too: one version says it all.
            agreeing.append(f"{name}=={in_image}")
    if agreeing:
        sides = "lock, image and host" if host_pk is not None else "lock and image (host not run)"
        table.add_row(
            _text(f"{len(agreeing)} more", "dim"), "", "", "", _text(f"same on {sides}", "green")
        )
    if host_only:
        table.add_row(_text(f"{len(host_only)} more", "dim"), "", "", "", _text("host only, not locked (tooling)", "dim"))
    console.print(table)
    if agreeing:
        console.print(Text(f"Same on {sides}: " + ", ".join(agreeing), style="dim"))
    if host_only:
        console.print(Text("Host only, not locked: " + ", ".join(host_only), style="dim"))


def _pool_text(pools: list[Mapping[str, Any]]) -> str:
    if not pools:
        return "none"
    return "\n".join(
        f"{p.get('internal_api')} {p.get('version')} x{p.get('num_threads')}"
        + (f" ({p.get('architecture')})" if p.get("architecture") else "")
        for p in pools
    )


def _environment_rows(image: Mapping, host: Mapping) -> list[tuple[str, str, str, tuple[str, str | None]]]:
    """(label, image cell, host cell, (difference category, subject prefix or None))."""
    rows = []
    py_i, py_h = image.get("python", {}), host.get("python", {})
    rows.append(("python", f"{py_i.get('implementation')} {py_i.get('version')}", f"{py_h.get('implementation')} {py_h.get('version')}", ("python", None)))
    rows.append(("compiler", str(py_i.get("compiler")), str(py_h.get("compiler")), ("python", "compiler")))
    pl_i, pl_h = image.get("platform", {}), host.get("platform", {})
    for key in ("system", "machine", "libc"):
        rows.append((key, str(pl_i.get(key)), str(pl_h.get(key)), ("platform", key)))
    apis = sorted({str(p.get("user_api")) for p in [*(image.get("threadpools") or []), *(host.get("threadpools") or [])]})
    for api in apis:
        pools_i = [p for p in (image.get("threadpools") or []) if str(p.get("user_api")) == api]
        pools_h = [p for p in (host.get("threadpools") or []) if str(p.get("user_api")) == api]
        rows.append((f"threads: {api}", _pool_text(pools_i), _pool_text(pools_h), ("threads", api)))
    env_i, env_h = image.get("env", {}), host.get("env", {})
    for name in sorted(set(env_i) | set(env_h)):
        rows.append((name, env_i.get(name, "unset"), env_h.get(name, "unset"), ("env", name)))
    return rows


def _row_style(report: Report, category: str, subject: str | None) -> str:
    matching = [
        d for d in report.differences
        if d.category == category and (subject is None or d.subject == subject or d.subject.startswith(subject + "."))
    ]
    if any(d.severity == "drift" for d in matching):
        return _SEVERITY_STYLE["drift"]
    if matching:
        return _SEVERITY_STYLE["note"]
    return "magenta"  # differs, but nothing compared it: shown for context only


def _render_environment(report: Report, console: Console) -> None:
    image = report.environments.get("image", {})
    host = report.environments.get("host")
    table = Table(title="Environment", title_justify="left")
    table.add_column("")
    table.add_column("image")
    table.add_column("host")
    for label, cell_i, cell_h, (category, subject) in _environment_rows(image, host or {}):
        if host is None:
            cell_h, style = "not run", ""
        else:
            style = _row_style(report, category, subject) if cell_i != cell_h else ""
        table.add_row(_text(label), _text(cell_i, style), _text(cell_h, style))
    console.print(table)


def _render_artifacts(report: Report, console: Console) -> None:
    if not report.artifacts:
        console.print(Text("Artifacts: none compared", style="bold"))
        return
    table = Table(title="Artifacts", title_justify="left")
    for column in ("path", "mode", "status", "summary"):
        table.add_column(column)
    for a in report.artifacts:
        table.add_row(_text(a.path), _text(a.mode), _text(a.status, _STATUS_STYLE.get(a.status, "")), _text(a.summary))
    console.print(table)


def render(report: Report, console: Console) -> None:
    """Print the report for people."""
    _render_header(report, console)
    _render_packages(report, console)
    _render_environment(report, console)
    _render_artifacts(report, console)
    if report.notes:
        console.print(Text("Notes", style="bold"))
        for note in report.notes:
            console.print(Text(f"  note: {note.message}", style="yellow"))
    for side in report.consistency:  # `verify --repeat N`: did each repeated side agree with itself?
        if side.moved:
            console.print(Text(f"Self-consistency: {side.runs} runs of the {side.side} side disagree", style="bold red"))
            for artifact in side.moved:
                console.print(Text(f"  moved: {artifact.summary}", style="red"))
            for cause in side.causes:
                console.print(Text(f"  likely cause: {cause}", style="yellow"))
        else:
            console.print(Text(f"Self-consistency: {side.runs} runs of the {side.side} side agree", style="green"))
    style = "bold green" if report.reproducible else "bold red"
    # soft_wrap keeps the verdict one line, so it can be grepped from logs.
    console.print(Text(report.verdict(), style=style), soft_wrap=True)
