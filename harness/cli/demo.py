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
def demo_command(config_path: str | None, drift_lock: str | None, json_path: str | None) -> None:
    """Run the same steps in the verified image and in a venv with other pins; show what changes.

    The drifted venv is made under .mlrepro/drift-venv (from the package index,
    once; reused while the drifted lock is unchanged). The image's trained model
    is then used by the project's predict step in that venv, and what happens
    (warnings, a failure, other predictions) is shown as measured.
    """
    from harness.cli.options import run

    def body() -> int:
        from harness.cli.options import load, out, progress, write_atomic
        from harness.demo import render_demo, run_demo
        from harness.errors import EXIT_OK

        config = load(config_path)
        lock = Path(drift_lock).resolve() if drift_lock else None  # relative to the shell, like every path option
        result = run_demo(config, drift_lock=lock, progress=progress)
        render_demo(result, out)
        if json_path:
            write_atomic(Path(json_path), result.to_json())
            progress(f"JSON written to {json_path}")
        return EXIT_OK

    run(body)
