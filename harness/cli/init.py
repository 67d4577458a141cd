"""`mlrepro init [DIR]`: adopt mlrepro in an existing project, writing only what is missing.

Exit codes: 0 written or kept (a second run only keeps); 2 nothing could be
adopted (no dependency list, an unreadable pyproject.toml, an unhashed
requirements.txt without --move-requirements): one `error:` line, nothing
written. The library is `harness.init`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import EXIT_OK, out, run


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("."), required=False)
@click.option("--move-requirements", is_flag=True,
              help="Rename an unhashed requirements.txt to requirements.in (the lock takes the name requirements.txt).")
def init_command(directory: Path, move_requirements: bool) -> None:
    """Write a hermetic Dockerfile, a .dockerignore and a [tool.mlrepro] skeleton where they are missing."""

    def body() -> int:
        from harness.init import apply, plan, read_layout

        layout = read_layout(directory)
        planned = plan(layout, move_requirements=move_requirements)
        apply(planned)
        for action in planned.actions:
            out.print(action.line(), markup=False, soft_wrap=True)
        where = "" if directory.resolve() == Path.cwd().resolve() else f" (in {directory})"
        if not layout.has_config:
            out.print("then fill in [tool.mlrepro] steps and artifacts in pyproject.toml (commented examples are there)", markup=False, soft_wrap=True)
        out.print(f"next{where}: mlrepro lock", markup=False, soft_wrap=True)
        out.print(f"then{where}: mlrepro verify", markup=False, soft_wrap=True)
        return EXIT_OK

    run(body)
