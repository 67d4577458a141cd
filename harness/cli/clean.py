"""`mlrepro clean`: remove what crashed or killed runs left behind."""

from __future__ import annotations

import click

from harness.cli.options import EXIT_OK, out, progress, run


@click.command("clean")
@click.option("--all", "include_live", is_flag=True, help="Also remove what runs still in progress are using (they will fail).")
@click.option("--config", "config_path", type=click.Path(dir_okay=True), default=None,
              help="Also the project's leftovers (a killed wheelhouse fetch's staging directory); default: the nearest pyproject.toml, if any.")
def clean_command(include_live: bool, config_path: str | None) -> None:
    """Remove what crashed or killed runs left behind: labeled containers, volumes, networks, the images a run made for itself (a killed rebuild check's builds), temp dirs."""

    def body() -> int:
        from harness.docker.engine import Engine
        from harness.ownership import remove_stale_tempdirs, stop_stale_processes

        procs = stop_stale_processes(include_live=include_live)
        dirs = remove_stale_tempdirs(include_live=include_live) + _project_leftovers(config_path, include_live)
        counts = Engine.connect().remove_leftovers(include_live=include_live)
        out.print(f"removed {counts['container']} container(s), {counts['volume']} volume(s), {counts['network']} network(s), {counts['image']} image(s), "
                  f"{dirs} temporary director{'y' if dirs == 1 else 'ies'} and {procs} host process(es) left by runs", markup=False, soft_wrap=True)
        if counts["skipped"]:
            progress(f"kept {counts['skipped']} resource(s) of runs still in progress; 'mlrepro clean --all' removes them too")
        return EXIT_OK

    run(body)


def _project_leftovers(config_path: str | None, include_live: bool) -> int:
    """Remove a killed fetch's staging directories beside the project's wheelhouse; 0 outside a project."""
    import shutil

    from harness.cli.options import load
    from harness.errors import MlreproError
    from harness.image.wheelhouse import staging_prefix
    from harness.ownership import stale_staging_dirs

    try:
        config = load(config_path)
    except MlreproError:
        if config_path:  # named explicitly: its problem is the user's to know
            raise
        return 0
    wheelhouse = config.wheelhouse.dir
    stale = stale_staging_dirs(wheelhouse.parent, staging_prefix(wheelhouse), include_live=include_live)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
