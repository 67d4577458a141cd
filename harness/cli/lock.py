"""`mlrepro lock`: refresh requirements.txt from requirements.in, or `--check` that it is fresh.

Exit codes: 0 locked / up to date / fresh; 1 stale (`--check` only: each reason
on stdout, then what to run); 2 unusable input or infrastructure (one line on
stderr, `error: ...`, requirements.txt untouched). The library is
`harness.lock` (`freshness` for --check; `update` and `resolvers` for a refresh).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from harness.cli.options import config_option, load


def _usage(check: bool, upgrade: bool, upgrade_packages: tuple[str, ...], resolver: str | None,
           index_url: str | None, find_links: Path | None) -> None:
    if check:
        used = [flag for flag, on in (("--upgrade", upgrade), ("--upgrade-package", upgrade_packages), ("--resolver", resolver),
                                      ("--index-url", index_url), ("--find-links", find_links)) if on]
        if used:
            raise click.UsageError(f"--check changes nothing and resolves nothing; drop {', '.join(used)}")
    if upgrade and upgrade_packages:
        raise click.UsageError("--upgrade re-resolves every package; drop --upgrade-package, or drop --upgrade")


@click.command("lock", context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--check", is_flag=True,
              help="Change nothing: exit 1 when requirements.txt no longer resolves requirements.in for the image (offline when the locked wheels are in the wheelhouse).")
@click.option("--upgrade", "-U", is_flag=True, help="Re-resolve every package to the newest version allowed.")
@click.option("--upgrade-package", "-P", "upgrade_packages", multiple=True, metavar="NAME",
              help="Re-resolve only NAME (repeatable; 'NAME<3' also works); every other pin stays.")
@click.option("--resolver", type=click.Choice(["container", "host"]), default=None,
              help="Where pip-compile runs: 'container' (default: the base image's own Python) or 'host' (only when the host's Python, OS, machine and glibc equal the image's).")
@click.option("--index-url", default=None, metavar="URL", help="Index to resolve against (default: PIP_INDEX_URL, else PyPI); never written to the lock.")
@click.option("--find-links", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Resolve offline from the wheels in DIR only (--no-index).")
def lock_command(config_path: str | None, check: bool, upgrade: bool, upgrade_packages: tuple[str, ...],
                 resolver: str | None, index_url: str | None, find_links: Path | None) -> None:
    """Lock requirements.in into requirements.txt (exact pins + hashes, resolved by the image's Python).

    Adding a dependency: add it to requirements.in, run `mlrepro lock`. Upgrading
    one: `mlrepro lock -P NAME`. CI runs `mlrepro lock --check`.
    """
    _usage(check, upgrade, upgrade_packages, resolver, index_url, find_links)
    from harness.cli.options import run

    run(lambda: _check(config_path) if check else _refresh(config_path, upgrade, upgrade_packages, resolver or "container", index_url, find_links))


def _check(config_path: str | None) -> int:
    from harness.cli.options import out, progress
    from harness.errors import EXIT_DRIFT, EXIT_OK
    from harness.lock import check, host_target
    from harness.image.wheelhouse import Target, fetch

    config = load(config_path)
    # The image's machine is taken to be the host's: --check needs no Docker engine.
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    result = check(config.requirements_in, config.lock, target, config.wheelhouse.dir, fetch=fetch, progress=progress)
    if result.fresh:
        out.print(f"{config.lock.name} is fresh: its {result.pins} pins are the resolution of {config.requirements_in.name} for {result.target}", markup=False, soft_wrap=True)
        return EXIT_OK
    for finding in result.findings:
        out.print(f"stale: {finding.message}", markup=False, soft_wrap=True)
    out.print(f"{config.lock.name} no longer matches {config.requirements_in.name}: run 'mlrepro lock' to refresh it, then commit both files", markup=False, soft_wrap=True)
    return EXIT_DRIFT


def _refresh(config_path: str | None, upgrade: bool, upgrade_packages: tuple[str, ...], resolver: str,
             index_url: str | None, find_links: Path | None) -> int:
    import dataclasses

    from harness.cli.options import out, progress, write_atomic
    from harness.errors import EXIT_OK
    from harness.lock import CompileOptions, HostResolver, container_resolver, host_target, plan_refresh, refresh
    from harness.image.wheelhouse import Target

    config = load(config_path)
    options = CompileOptions(upgrade=upgrade, upgrade_packages=upgrade_packages, index_url=index_url, find_links=find_links)
    target = Target(config.wheelhouse.python_version, host_target()["machine"], config.wheelhouse.glibc)
    # Inputs first: a bad line costs no container and no network.
    plan = plan_refresh(config.requirements_in, config.lock, target, options)
    if resolver == "host":
        update = refresh(plan, HostResolver(), progress=progress)
    else:
        from harness.image.base import resolve_base
        from harness.docker.engine import Engine

        engine = Engine.connect()
        plan = dataclasses.replace(plan, target=dataclasses.replace(target, arch=engine.architecture()))
        image, _ = resolve_base(engine, config.build)
        with container_resolver(engine, image, plan.target, progress=progress) as in_image:
            update = refresh(plan, in_image, progress=progress)
    name = config.lock.name
    if not update.changed:
        out.print(f"{name} is up to date: {len(update.lock.pins)} pins for Python {plan.target.python_version} (resolved by {update.resolver})", markup=False, soft_wrap=True)
        return EXIT_OK
    mode = stat.S_IMODE(config.lock.stat().st_mode) if config.lock.exists() else 0o644
    write_atomic(config.lock, update.text)
    os.chmod(config.lock, mode)  # the temp file behind the atomic write is 0600
    for change in update.changes:
        out.print(f"  {change}", markup=False, soft_wrap=True)
    if not update.changes:
        out.print("  (same versions; hashes or annotations changed)", markup=False, soft_wrap=True)
    out.print(f"{name} written: {len(update.lock.pins)} pins for Python {plan.target.python_version} (resolved by {update.resolver}); commit it with {config.requirements_in.name}", markup=False, soft_wrap=True)
    return EXIT_OK
