"""`mlrepro verify`: build or reuse the image, run the steps on both sides, compare, report (exit 0 / 1 / 2 / 3).

Exit 3 (`EXIT_NON_DETERMINISTIC`) only with `--repeat N` (or `compare.repeat`):
two runs of the same side disagreed, so the project is not deterministic by
itself and image vs host is not judged.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import (
    EXIT_DRIFT,
    EXIT_OK,
    check_writable,
    config_option,
    load,
    out,
    progress,
    run,
    sign_key_option,
    signer,
    write_atomic,
)
from harness.errors import EXIT_NON_DETERMINISTIC, MlreproError


@click.command("verify")
@config_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the full report as JSON here.")
@click.option("--host-mode", type=click.Choice(["current", "venv"]), default=None, help="Host side: this interpreter, or a venv synced from the lock.")
@click.option("--against", "against_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare the image with this recorded reference ('mlrepro record') instead of running the host side.")
@click.option("--repeat", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run the host side N times (default: compare.repeat, 1); runs that disagree give NON-DETERMINISTIC, exit 3.")
@click.option("--repeat-image/--no-repeat-image", default=None, help="With --repeat: repeat the image side too (default: compare.repeat_image).")
@click.option("--summary-md", "summary_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a short Markdown verdict (the table of differences) here, e.g. $GITHUB_STEP_SUMMARY.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as one self-contained HTML page here (plots of what moved; no network needed to view it).")
@sign_key_option
def verify_command(config_path: str | None, json_path: str | None, host_mode: str | None, against_path: Path | None,
                   repeat: int | None, repeat_image: bool | None, summary_path: str | None, html_path: str | None,
                   sign_key: Path | None) -> None:
    """Build the image, run the configured steps in it and on the host, compare everything.

    With --sign-key, the JSON report is signed (a DSSE envelope written beside it as <json>.dsse):
    what 'mlrepro release' needs to trust a report it did not produce itself.
    """
    if against_path is not None and (repeat is not None or repeat_image):
        raise click.UsageError("--repeat runs the host side again, --against runs no host side; drop one of them")
    if sign_key is not None and not json_path:
        raise click.UsageError("--sign-key signs the JSON report: give --json PATH too")

    def body() -> int:
        import dataclasses

        from harness.lock import read_lock
        from harness.report import render
        from harness.verify import verify as do_verify

        config = load(config_path)
        if host_mode:
            config = dataclasses.replace(config, host=dataclasses.replace(config.host, mode=host_mode))
        if repeat is not None or repeat_image is not None:
            compare = dataclasses.replace(config.compare, repeat=repeat or config.compare.repeat,
                                          repeat_image=config.compare.repeat_image if repeat_image is None else repeat_image)
            config = dataclasses.replace(config, compare=compare)
        config.require_steps(), config.require_artifacts()
        # Every local input is checked before the engine is asked for anything.
        lock = read_lock(config.lock)
        against = None
        if against_path is not None:
            from harness.reference import load_reference

            against = load_reference(against_path)
            against.require_lock(lock.sha256, source=str(against_path), lock_name=str(config.lock.name))
        key = signer(sign_key)  # an unusable key fails before the engine is asked for anything
        for path in (json_path, summary_path, html_path):
            if path:
                check_writable(Path(path))
        logs: dict = {}
        report = do_verify(config, progress=progress, against=against, logs=logs)
        # Files first, the terminal last: a closed stdout must not lose the JSON or change the exit code;
        # a file that cannot be written (a full disk) still lets the verdict be shown before the error.
        try:
            if json_path:
                text = report.to_json()
                write_atomic(Path(json_path), text)
                progress(f"JSON report written to {json_path}")
                if key is not None:
                    from harness.attest.reports import write_signature

                    progress(f"report signed by {key.keyid[:19]}...: {write_signature(Path(json_path), text.encode(), key)}")
            if summary_path:
                from harness.report.markdown import markdown

                # Appended when the file exists: $GITHUB_STEP_SUMMARY collects every step's summary.
                target = Path(summary_path)
                before = target.read_text(encoding="utf-8") if target.is_file() else ""
                write_atomic(target, before + markdown(report))
                progress(f"Markdown summary written to {summary_path}")
            if html_path:
                from harness.report import render_html

                context = (f"The host columns are the recorded reference {against_path.name} (sha256:{report.reference_sha256[:12]}), "
                           "not a run on this machine." if against_path is not None and report.reference_sha256 else None)
                write_atomic(Path(html_path), render_html(report, context=context, logs=logs))
                progress(f"HTML report written to {html_path}")
        except MlreproError:
            render(report, out)
            raise
        render(report, out)
        if not report.deterministic:
            return EXIT_NON_DETERMINISTIC
        return EXIT_OK if report.reproducible else EXIT_DRIFT

    run(body)
