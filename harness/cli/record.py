"""`mlrepro record`: run the steps once on one side and keep the run as a reference bundle.

The bundle (`harness.reference`) is what `mlrepro verify --against REF` and
`mlrepro kubernetes collect --against REF` compare the image with instead of
running the host side again. Exit codes: 0 recorded (its sha256 is the only
line on stdout); 2 on errors (one line, nothing written).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness.cli.options import config_option


@click.command("record", context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--side", type=click.Choice(["host", "image"]), default="host", show_default=True,
              help="Where the steps run: the host interpreter, or a container of the current tree's image.")
@click.option("--python", "python", default=None, metavar="PATH",
              help="Host side only: the interpreter to run the steps with (e.g. .mlrepro/drift-venv/bin/python).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path), help="Where to write the reference bundle.")
def record_command(config_path: str | None, side: str, python: str | None, out_path: Path) -> None:
    """Record one run of the configured steps (probe, artifacts, lock sha256) as a reference bundle."""
    from harness.cli.options import run

    def body() -> int:
        from harness.cli.options import check_writable, load, out, progress, write_atomic
        from harness.errors import EXIT_OK, MlreproError
        from harness.lock import read_lock
        from harness.reference import encode_reference, record

        config = load(config_path)
        config.require_steps(), config.require_artifacts()
        read_lock(config.lock)  # every local input is checked before anything runs
        interpreter = None
        if python is not None:
            if side != "host":
                raise MlreproError(f"--python {python}: expected it only with --side host, found --side {side}; drop one of them")
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                raise MlreproError(f"--python {python}: expected an executable interpreter, found none there; give the path of a python")
            interpreter = os.path.abspath(python)  # not resolved: a venv's python is a symlink to its base
        if out_path.is_dir():
            raise MlreproError(f"--out {out_path}: expected a file path, found a directory; name the bundle file")
        check_writable(out_path)
        reference = record(config, side=side, python=interpreter, progress=progress)
        write_atomic(out_path, encode_reference(reference).decode("ascii"))
        progress(f"reference recorded {'in the image' if side == 'image' else 'on the host'}: {out_path} "
                 f"({len(reference.files)} artifacts, lock sha256 {reference.lock_sha256[:12]})")
        out.print(f"sha256:{reference.sha256}", markup=False, soft_wrap=True)
        return EXIT_OK

    run(body)


__all__ = ["record_command"]
