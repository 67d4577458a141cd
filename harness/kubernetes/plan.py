"""The kubernetes commands' sequencing: read the release record, its report and the settings; build, validate, render.

Everything is checked before anything is written: `manifests_for` returns the
files' names and texts (and the commands to print), the CLI writes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.config import Config
from harness.kubernetes.manifests import ManifestError, Release, check_release, pull_commands, thread_env, workload
from harness.kubernetes.settings import parse_kubernetes


@dataclass(frozen=True)
class Written:
    """What a kubernetes command writes (file name -> text) and prints (commands), all validated."""

    files: dict[str, str]
    commands: tuple[str, ...]
    version: str  # the Kubernetes version the objects were validated against
    release: Release
    namespace: str
    after: tuple[str, ...] = ()  # printed after the apply commands (wait, logs, collect)
    job: str | None = None  # the verification Job's (and ConfigMap's) name
    timeout: float = 0.0  # the verification Job's deadline (activeDeadlineSeconds)


def read_release_report(config: Config, record_path: Path, report_path: Path):
    """(settings, the checked release, the thread environment of its verification, the released report)."""
    from harness.lock import read_lock
    from harness.release import ReleaseRecord
    from harness.release.publish import read_report

    settings = parse_kubernetes(config.kubernetes, project=config.project)
    try:
        text = Path(record_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"release record {record_path}: expected the file 'mlrepro release' writes, found none; "
                            "release first, or pass --release PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"release record {record_path}: expected a readable JSON file, found {exc}") from None
    try:
        record = ReleaseRecord.from_json(text)
    except (ValueError, TypeError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise ManifestError(f"release record {record_path}: expected a release record written by 'mlrepro release', "
                            f"found {first}; pass the record of a release") from None
    data, report, problem = read_report(Path(report_path))
    if report is None or data is None:
        raise ManifestError(f"{problem}; pass the verification report the release was made from with --report")
    release = check_release(record, lock_sha256=read_lock(config.lock).sha256, report=report,
                            report_sha256=hashlib.sha256(data).hexdigest(), source=str(record_path),
                            report_source=str(report_path))
    return settings, release, thread_env(report.environments.get("image", {}), source=str(report_path)), report


def verification_job_for(config: Config, record_path: Path, report_path: Path) -> Written:
    """The verification Job and its ConfigMap, validated; the commands that run it and collect its result."""
    import shlex

    from harness.kubernetes.validate import render, validate
    from harness.kubernetes.verification import job_name, verification_objects

    settings, release, env, _ = read_release_report(config, record_path, report_path)
    secret, commands = pull_commands(settings, release.registry)
    inputs = {}
    for path in config.inputs:
        try:
            inputs[path.name] = path.read_bytes()
        except OSError as exc:
            raise ManifestError(f"input {path}: expected a readable file, found {exc.strerror or exc}") from None
    configmap, job = verification_objects(config, settings, release, env, pull_secret=secret, inputs=inputs)
    version = validate([configmap, job], version=settings.version, image=release.reference)
    name = job_name(settings)
    ns = shlex.quote(settings.namespace)
    timeout = int(settings.verification_timeout)
    return Written(files={f"{name}-configmap.yaml": render(configmap), f"{name}-job.yaml": render(job)},
                   commands=tuple(commands), version=version, release=release, namespace=settings.namespace,
                   after=(f"kubectl wait --namespace {ns} --for=condition=complete --timeout={timeout}s job/{name}",
                          f"kubectl logs --namespace {ns} job/{name} > {name}.log",
                          f"mlrepro kubernetes collect --release {shlex.quote(str(record_path))} "
                          f"--report {shlex.quote(str(report_path))} --logs {name}.log",
                          f"kubectl delete --namespace {ns} job/{name} configmap/{name}"),
                   job=name, timeout=settings.verification_timeout)


def manifests_for(config: Config, record_path: Path, report_path: Path) -> Written:
    """The workload's manifest, validated; the pull-access command."""
    from harness.kubernetes.validate import render, validate

    settings, release, env, _ = read_release_report(config, record_path, report_path)
    secret, commands = pull_commands(settings, release.registry)
    obj = workload(settings, release, env, pull_secret=secret)
    version = validate([obj], version=settings.version, image=release.reference)
    name = f"{settings.name}-{settings.kind.lower()}.yaml"
    return Written(files={name: render(obj)}, commands=tuple(commands), version=version, release=release,
                   namespace=settings.namespace)


__all__ = ["Written", "manifests_for", "read_release_report", "verification_job_for"]
