"""`mlrepro demo`: show what a different set of pins does to the same project.

Exit codes: 0 when the demo ran (drift is the expected outcome of a demo, not
a failure); 2 on usage, configuration or infrastructure errors (one line on
stderr, `error: ...`). The library is `harness.demo`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import config_option


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--drift-lock", "drift_lock", type=click.Path(dir_okay=False), default=None,
              help="The deliberately different lock (pip-compile'd, with hashes); default: examples/drift/requirements.txt under the project root.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the demo (report, version changes, cross-load result) as JSON here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the demo's report as one self-contained HTML page here (plots of what moved, the cross-load).")
def demo_command(config_path: str | None, drift_lock: str | None, json_path: str | None, html_path: str | None) -> None:
    """Run the same steps in the verified image and in a venv with other pins; show what changes.

    The drifted venv is made under .mlrepro/drift-venv (from the package index,
    once; reused while the drifted lock is unchanged). The image's trained model
    is then used by the project's predict step in that venv, and what happens
    (warnings, a failure, other predictions) is shown as measured.
    """
    from harness.cli.options import run

    def body() -> int:
        from harness.cli.options import check_writable, load, out, progress, write_atomic
        from harness.demo import render_demo, run_demo
        from harness.errors import EXIT_OK

        config = load(config_path)
        lock = Path(drift_lock).resolve() if drift_lock else None  # relative to the shell, like every path option
        for path in (json_path, html_path):  # before minutes of venv and image work, not after
            if path:
                check_writable(Path(path))
        result = run_demo(config, drift_lock=lock, progress=progress)
        # Files first, the terminal last: a closed stdout must not lose them.
        if json_path:
            write_atomic(Path(json_path), result.to_json())
            progress(f"JSON written to {json_path}")
        if html_path:
            write_atomic(Path(html_path), demo_html(result))
            progress(f"HTML report written to {html_path}")
        render_demo(result, out)
        return EXIT_OK

    run(body)


def demo_html(result) -> str:  # noqa: ANN001 (a DemoResult; imported lazily like every command's library)
    """The demo's page: its report (the drifted venv as the host side), then the cross-load and the version changes."""
    from harness.report import Aside, render_html

    load = result.load
    exit_code = "killed at its timeout" if load.exit_code is None else str(load.exit_code)
    cross_load = (f"command: {' '.join(load.command)}", f"exit code: {exit_code}", f"outcome: {load.outcome}",
                  f"summary: {load.summary()}", *(f"| {line}" for line in load.lines[-40:]),
                  *(f"{a.status}: {a.summary}" for a in load.artifacts))
    changes = tuple(f"{name}: image {image}, drifted venv {drifted}" for name, image, drifted in result.version_changes())
    return render_html(
        result.report,
        title=f"mlrepro demo: {result.report.project}, the verified image against a venv with other pins",
        logs=result.logs or None,
        context=f"The report's 'host' is a venv installed from {result.drift_lock} (sha256:{result.drift_lock_sha256[:12]}).",
        asides=(Aside("The image's trained model, used in the drifted venv", cross_load),
                Aside("Versions (image, drifted venv)", changes or ("the drifted venv holds the image's versions",))),
    )
