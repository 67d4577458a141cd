"""`mlrepro check` (before deploy: is this digest's proof valid?) and `mlrepro key generate`.

Exit codes of check: 0 the image carries a valid attestation by the key, REPRODUCIBLE, the policy
met (one `PASSED:` line on stdout); 1 it does not (signature, subject, verdict, SBOM or policy: one
`FAILED:` line on stderr naming which); 2 an error (bad reference, key or policy file, registry
unreachable or refusing). The library is `harness.attest.check`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import Group


@click.command("check", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reference", metavar="REGISTRY/REPOSITORY@sha256:DIGEST")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="PUB.pem",
              help="The releaser's public key (PEM; a private key file works too, its public half is used).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="POLICY.toml",
              help="Requirements beyond the signature: lock_sha256, platforms, max_atol, max_rtol.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="requirements.txt",
              help="Require the image to have been verified against exactly this lock file (its sha256).")
@click.option("--auth", "auth_method", default="auto", show_default=True,
              help="Registry credentials, as for 'mlrepro release --auth' (anonymous for public registries).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write what was proven (the attested predicate) as JSON here when the check passes.")
def check_command(reference: str, key_path: Path, policy_path: Path | None, lock_path: Path | None, auth_method: str,
                  json_path: Path | None) -> None:
    """Verify the signed attestation of an image digest before deploying it.

    \b
    mlrepro check myreg.azurecr.io/ml/model@sha256:... --key release.pub && kubectl apply -f k8s/
    """
    from harness.cli.options import run

    run(lambda: _check(reference, key_path, policy_path, lock_path, auth_method, json_path))


def _check(reference, key_path, policy_path, lock_path, auth_method, json_path) -> int:
    import dataclasses
    import hashlib

    from harness.attest.check import Policy, check_image, parse_reference
    from harness.attest.errors import AttestError, CheckFailed
    from harness.attest.keys import load_verifier
    from harness.cli.options import err, out, progress, write_atomic
    from harness.errors import EXIT_DRIFT, EXIT_OK
    from harness.release import RegistryClient, auth_for

    registry, repository, digest = parse_reference(reference)
    verifier = load_verifier(key_path)
    policy = Policy.from_toml(policy_path) if policy_path else Policy()
    if lock_path is not None:
        try:
            policy = dataclasses.replace(policy, lock_sha256=hashlib.sha256(lock_path.read_bytes()).hexdigest())
        except OSError as exc:
            raise AttestError(f"--lock {lock_path}: cannot read it ({exc.strerror or exc}); give the lock file the image was verified against") from None
    provider = auth_for(registry, auth_method, docker_config=_docker_config)
    credentials = provider.credentials(registry)
    progress(f"checking {reference} with key {verifier.keyid[:19]}... ({credentials.source if credentials else 'anonymous'} credentials)")
    try:
        result = check_image(RegistryClient(registry, credentials), repository, digest, verifier, policy)
    except CheckFailed as exc:
        err.print(f"FAILED: {exc}", markup=False, soft_wrap=True)
        return EXIT_DRIFT
    if json_path is not None:
        write_atomic(json_path, result.to_json())
    out.print(result.summary(), markup=False, soft_wrap=True)
    return EXIT_OK


def _docker_config(registry: str):
    """The docker config's credentials for `registry` (no engine needed)."""
    from harness.docker.engine import docker_config_credentials

    return docker_config_credentials(registry)


@click.group("key", cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def key_group() -> None:
    """Signing keys for 'mlrepro verify/release --sign-key' and 'mlrepro check --key'."""


@key_group.command("generate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="KEY.pem")
@click.option("--algorithm", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519", show_default=True)
def generate_command(path: Path, algorithm: str) -> None:
    """Write a new private key (mode 600) and its public key beside it (KEY.pem.pub)."""
    from harness.cli.options import out, run

    def body() -> int:
        from harness.attest.keys import generate_key

        key = generate_key(path, algorithm)
        out.print(f"{path} (private, mode 600) and {path}.pub (public): key id {key.keyid}", markup=False, soft_wrap=True)
        return 0

    run(body)


__all__ = ["check_command", "key_group"]
