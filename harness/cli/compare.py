"""`mlrepro compare IMAGE_FILE HOST_FILE`: one artifact comparison outside a verification (exit 0 / 1 / 2).

The same rule, the same reader and the same one-line summary as the report's
artifact lines, on two files given by path: 0 identical or equivalent, 1
differs (or missing content), 2 bad input (a missing file, a bad mode or
tolerance, an optional reader not installed), always one line.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from harness.cli.options import EXIT_DRIFT, EXIT_OK, out, run

#: `--mode`: the artifact modes, plus 'npy' for arrays whose file name does not say so.
MODES = ("numeric", "json", "bitwise", "hash", "npy")


def _tolerance(name: str, text: str) -> float:
    from harness.errors import MlreproError

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise MlreproError(f"--{name}: expected a finite number >= 0, found {text!r}; e.g. --{name} 1e-9")
    return value


@click.command("compare")
@click.argument("image_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("host_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice(MODES), default="numeric", show_default=True,
              help="How to compare: numeric (CSV, JSON lines, .npy/.npz, Parquet by suffix), json, bitwise, hash (with --key), npy.")
@click.option("--atol", default="0", help="Absolute tolerance for numbers.")
@click.option("--rtol", default="0", help="Relative tolerance for numbers.")
@click.option("--key", default=None, help="Dotted key: the value to compare (hash) or the part of the document (json).")
def compare_command(image_file: Path, host_file: Path, mode: str, atol: str, rtol: str, key: str | None) -> None:
    """Compare two files as verification compares an artifact; print the report's one-line summary."""

    def body() -> int:
        from harness.compare import ArtifactRule, Unavailable, compare_files
        from harness.errors import MlreproError

        for label, path in (("IMAGE_FILE", image_file), ("HOST_FILE", host_file)):
            if not path.is_file():
                raise MlreproError(f"{label}: expected an existing file, found {str(path)!r}; check the path")
        tolerances = {"atol": _tolerance("atol", atol), "rtol": _tolerance("rtol", rtol)}
        if mode == "hash" and not key:
            raise MlreproError("--mode hash: expected --key naming the hash inside the JSON file, found none; e.g. --key canonical_hash")
        try:
            rule = ArtifactRule(host_file.name, "numeric" if mode == "npy" else mode, key=key, **tolerances)
        except ValueError as exc:
            raise MlreproError(f"{exc}; fix the options") from None
        fmt = "npz" if mode == "npy" and host_file.suffix.lower() == ".npz" else "npy" if mode == "npy" else None
        try:
            result = compare_files(rule, image_file, host_file, fmt=fmt)
        except Unavailable as exc:
            raise MlreproError(str(exc)) from None
        except OSError as exc:
            raise MlreproError(f"cannot read {exc.filename}: {exc.strerror or exc}; check the file") from None
        out.print(result.summary, markup=False, soft_wrap=True)
        return EXIT_OK if result.status in ("identical", "equivalent") else EXIT_DRIFT

    run(body)
