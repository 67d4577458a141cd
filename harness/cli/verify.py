"""`mlrepro verify`: build or reuse the image, run the steps on both sides, compare, report (exit 0 / 1 / 2)."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import EXIT_DRIFT, EXIT_OK, check_writable, config_option, load, out, progress, run, write_atomic


@click.command("verify")
@config_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the full report as JSON here.")
@click.option("--host-mode", type=click.Choice(["current", "venv"]), default=None, help="Host side: this interpreter, or a venv synced from the lock.")
def verify_command(config_path: str | None, json_path: str | None, host_mode: str | None) -> None:
    """Build the image, run train and predict in it and on the host, compare everything."""

    def body() -> int:
        import dataclasses

        from harness.lock import read_lock
        from harness.report import render
        from harness.verify import verify as do_verify

        config = load(config_path)
        if host_mode:
            config = dataclasses.replace(config, host=dataclasses.replace(config.host, mode=host_mode))
        # Every local input is checked before the engine is asked for anything.
        read_lock(config.lock)
        if json_path:
            check_writable(Path(json_path))
        report = do_verify(config, progress=progress)
        render(report, out)
        if json_path:
            write_atomic(Path(json_path), report.to_json())
            progress(f"JSON report written to {json_path}")
        return EXIT_OK if report.reproducible else EXIT_DRIFT

    run(body)
