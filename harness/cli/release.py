"""`mlrepro release`: push the verified image by digest under an immutable tag, write the release record.

Exit codes: 0 released (or already released: a no-op that says so; the
`REGISTRY/REPOSITORY@sha256:...` reference is the only line on stdout);
2 refused (not verified, changed image, dirty tree, tag taken by another image)
or failed (credentials, registry down, push error): one line on stderr, and
no release record. The library is `harness.release`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import click

from harness.cli.options import config_option, sign_key_option
from harness.release import AUTH_METHODS


@click.command("release", context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--registry", required=True, metavar="HOST[:PORT]", help="Registry host: NAME.azurecr.io, ACCOUNT.dkr.ecr.REGION.amazonaws.com, or any OCI registry.")
@click.option("--repository", required=True, metavar="REPO", help="Repository in the registry (e.g. team/model).")
@click.option("--tag", required=True, metavar="VERSION", help="Tag to release under; never moved once it names an image.")
@click.option("--image", default=None, metavar="REF",
              help="Local image to release (tag or ID). Default: the current tree's image, as 'mlrepro verify' builds or reuses it.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/report.json"), show_default=True,
              help="The passing verification report for exactly this image (what 'mlrepro verify --json' / 'make verify' writes).")
@click.option("--verify", "verify_first", is_flag=True, help="Run the verification first and write its report to --report.")
@click.option("--allow-dirty", is_flag=True, help="Release from a tree with uncommitted changes or an image built from another revision (recorded).")
@click.option("--auth", "auth_method", type=click.Choice(AUTH_METHODS), default="auto", show_default=True,
              help="Credentials: auto = MLREPRO_REGISTRY_USERNAME/PASSWORD if set, else Entra for ACR, boto3 for ECR, the docker config otherwise.")
@click.option("--record", "record_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/release.json"), show_default=True,
              help="Where to write the release record (JSON); written only after the push is confirmed.")
@click.option("--no-report-artifact", is_flag=True, help="Do not push the verification report beside the image (its sha256 is still recorded).")
@click.option("--push-timeout", type=click.FloatRange(min=1), default=None, envvar="MLREPRO_PUSH_TIMEOUT", show_envvar=True,
              metavar="SECONDS", help="How long the push may stay silent before it counts as stalled (default 120).")
@sign_key_option
def release_command(config_path: str | None, registry: str, repository: str, tag: str, image: str | None, report_path: Path,
                    verify_first: bool, allow_dirty: bool, auth_method: str, record_path: Path, no_report_artifact: bool,
                    push_timeout: float | None, sign_key: Path | None) -> None:
    """Push the verified image to a registry by digest, under a tag that never moves.

    \b
    ACR:  mlrepro release --registry myreg.azurecr.io --repository ml/model --tag 1.4.0
    ECR:  mlrepro release --registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com --repository model --tag 1.4.0
    any:  MLREPRO_REGISTRY_USERNAME=... MLREPRO_REGISTRY_PASSWORD=... mlrepro release --registry reg.example.com ...

    \b
    The report is trusted only when this run made it (--verify) or it is signed by --sign-key's key
    ('mlrepro verify --json R --sign-key KEY.pem'). With --sign-key the release also attaches a CycloneDX
    SBOM and a signed in-toto attestation beside the image; 'mlrepro check' verifies them before deploy.
    """
    from harness.cli.options import run

    run(lambda: _release(config_path, registry, repository, tag, image, report_path, verify_first, allow_dirty,
                         auth_method, record_path, no_report_artifact, sign_key, push_timeout))


def _release(config_path, registry, repository, tag, image, report_path, verify_first, allow_dirty, auth_method,
             record_path, no_report_artifact, sign_key, push_timeout) -> int:
    from harness.cli.options import load, out, progress, signer
    from harness.docker.engine import Engine
    from harness.errors import EXIT_OK
    from harness.release import ReleaseTarget, auth_for, release_project

    target = ReleaseTarget(registry, repository, tag)  # a bad name fails before any build or network
    key = signer(sign_key)  # so does an unusable key
    config = load(config_path)
    engine = Engine.connect()
    provider = auth_for(registry, auth_method, docker_config=engine.registry_credentials)
    with _layer_bars() as on_layer:
        record = release_project(
            config, target, image=image, report_path=report_path, verify_first=verify_first, engine=engine,
            progress=progress, auth=provider, allow_dirty=allow_dirty, record_path=record_path,
            push_verification_report=not no_report_artifact, on_layer=on_layer, signer=key, push_timeout=push_timeout,
        )
    if record.already_released:
        progress(f"already released: {target.ref} is this image; nothing pushed")
    if record.allow_dirty and record.git_dirty:
        progress("released from a dirty tree (--allow-dirty); the record says so")
    if record.attestation:
        progress(f"signed attestation {record.attestation['digest'][:19]} and SBOM {record.sbom['digest'][:19]} attached; "
                 f"check before deploy: mlrepro check {record.reference} --key PUBLIC.pem")
    out.print(record.reference, markup=False, soft_wrap=True)
    return EXIT_OK


@contextlib.contextmanager
def _layer_bars() -> Iterator:
    """One progress bar per layer on stderr (rich), fed by the engine's push stream."""
    from rich.progress import BarColumn, Progress, TextColumn

    from harness.cli.options import err

    bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[size]}"), console=err)
    tasks: dict[str, int] = {}

    def on_layer(event) -> None:  # harness.docker.LayerProgress
        if not tasks:
            bars.start()  # only once something moves: a no-op release prints no empty bar block
        if event.layer not in tasks:
            tasks[event.layer] = bars.add_task("", total=None, size="")
        task = tasks[event.layer]
        description = f"{event.layer} {event.status}"
        if event.total:
            size = f"{(event.current or 0) / 1e6:.1f}/{event.total / 1e6:.1f} MB"
            bars.update(task, description=description, completed=event.current or 0, total=event.total, size=size)
        elif event.status in ("Pushed", "Layer already exists") or event.status.startswith("Mounted from"):
            total = bars.tasks[task].total or 1  # done: a layer that never reported bytes shows a full bar
            bars.update(task, description=description, completed=total, total=total)
        else:
            bars.update(task, description=description)

    try:
        yield on_layer
    finally:
        if tasks:
            bars.stop()
