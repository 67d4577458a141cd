"""`mlrepro kubernetes`: manifests pinned by the released digest, validated offline; the verification on the cluster.

`manifests --release out/release.json --out DIR` writes the workload configured
in `[tool.mlrepro.kubernetes]` (every image by digest, non-root, read-only root
filesystem, resources, thread variables), validated strictly with
kubernetes-validate, and prints the commands that give the cluster pull access
and apply it (stdout; no credential anywhere). Exit 0 written; 2 on errors
(one line, nothing written).

`verification-job --release ... --out DIR` writes a Job and its ConfigMap that
run the configured steps and the probe in the released image and print one
checksummed result bundle to the pod's log; `collect --logs FILE` (or
`--kubectl`: apply, wait, read the log, delete) compares that run with a
reference (`--against REF`) or the host: the report and exit codes of
`mlrepro verify` (0 reproducible, 1 drift, 2 error: a truncated or altered
bundle is one line naming its checksum, and nothing is compared).
The library is `harness.kubernetes`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import config_option

_CONTEXT = {"help_option_names": ["-h", "--help"]}
release_option = click.option("--release", "record_path", type=click.Path(dir_okay=False, path_type=Path),
                              default=Path("out/release.json"), show_default=True,
                              help="The release record 'mlrepro release' wrote.")
report_option = click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
                             default=Path("out/report.json"), show_default=True,
                             help="The verification report the release was made from (its thread counts are set in every pod).")
out_option = click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
                          help="Directory to write the manifests into (made when absent).")


@click.group("kubernetes", context_settings=_CONTEXT)
def kubernetes_group() -> None:
    """Deploy a released image to Kubernetes by digest (see README, 'Deploying to Kubernetes')."""


def check_out_dir(out_dir: Path) -> None:
    """`out_dir` can hold the files: a directory or nothing yet, writable (writes nothing)."""
    from harness.cli.options import check_writable
    from harness.errors import MlreproError

    if out_dir.exists() and not out_dir.is_dir():
        raise MlreproError(f"--out {out_dir}: expected a directory, found a file; choose a directory for the manifests")
    check_writable(out_dir / "manifest.yaml")


def write_all(out_dir: Path, files: dict[str, str]) -> None:
    from harness.cli.options import progress, write_atomic

    for name, text in files.items():
        write_atomic(out_dir / name, text)
        progress(f"wrote {out_dir / name}")


def print_commands(written, out_dir: Path) -> None:
    import shlex

    from harness.cli.options import out

    files = " ".join(f"-f {shlex.quote(str(out_dir / name))}" for name in written.files)
    for command in (*written.commands, f"kubectl apply --namespace {written.namespace} {files}", *written.after):
        out.print(command, markup=False, soft_wrap=True)


def write_planned(config_path: str | None, out_dir: Path, plan, *, needs_steps: bool) -> None:  # noqa: ANN001
    """The one body of `manifests` and `verification-job`: load, check, plan (validated), write, print the commands."""
    from harness.cli.options import run

    def body() -> int:
        from harness.cli.options import load, progress
        from harness.errors import EXIT_OK

        config = load(config_path)
        if needs_steps:
            config.require_steps(), config.require_artifacts()
        check_out_dir(out_dir)
        written = plan(config)
        write_all(out_dir, written.files)
        progress(f"validated against Kubernetes {written.version} (strict); image {written.release.reference}")
        print_commands(written, out_dir)
        return EXIT_OK

    run(body)


@kubernetes_group.command("manifests", context_settings=_CONTEXT)
@config_option
@release_option
@report_option
@out_option
def manifests_command(config_path: str | None, record_path: Path, report_path: Path, out_dir: Path) -> None:
    """Write the configured workload's manifest for the released image, validated; print the pull-access command."""
    def plan(config):  # noqa: ANN001, ANN202
        from harness.kubernetes.plan import manifests_for

        return manifests_for(config, record_path, report_path)

    write_planned(config_path, out_dir, plan, needs_steps=False)


@kubernetes_group.command("verification-job", context_settings=_CONTEXT)
@config_option
@release_option
@report_option
@out_option
def verification_job_command(config_path: str | None, record_path: Path, report_path: Path, out_dir: Path) -> None:
    """Write a Job + ConfigMap running the configured steps and the probe in the released image; print how to run it."""
    def plan(config):  # noqa: ANN001, ANN202
        from harness.kubernetes.plan import verification_job_for

        return verification_job_for(config, record_path, report_path)

    write_planned(config_path, out_dir, plan, needs_steps=True)


@kubernetes_group.command("collect", context_settings=_CONTEXT)
@config_option
@release_option
@report_option
@click.option("--logs", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The verification Job's pod log (kubectl logs job/NAME > FILE).")
@click.option("--kubectl", "use_kubectl", is_flag=True,
              help="Run the verification Job with kubectl (current context; needs a cluster): apply, wait, read the log, delete.")
@click.option("--context", "context", default=None, metavar="NAME", help="With --kubectl: the kubeconfig context to use.")
@click.option("--timeout", "timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="With --kubectl: how long to wait for the Job (default: kubernetes.verification_timeout + 300).")
@click.option("--against", "against_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare with this recorded reference ('mlrepro record') instead of running the host side.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the full report as JSON here.")
def collect_command(config_path: str | None, record_path: Path, report_path: Path, log_path: Path | None, use_kubectl: bool,
                    context: str | None, timeout: float | None, against_path: Path | None, json_path: str | None) -> None:
    """Compare the verification Job's run (its log) with a reference or the host: verify's report and exit codes."""
    if (log_path is None) == (not use_kubectl):
        raise click.UsageError("expected exactly one of --logs FILE and --kubectl")
    if not use_kubectl and (context is not None or timeout is not None):
        raise click.UsageError("--context and --timeout go with --kubectl")
    from harness.cli.options import run

    run(lambda: _collect(config_path, record_path, report_path, log_path, context, timeout, against_path, json_path))


def _collect(config_path, record_path, report_path, log_path, context, timeout, against_path, json_path) -> int:
    from harness.cli.options import EXIT_DRIFT, EXIT_OK, check_writable, load, out, progress, write_atomic
    from harness.errors import MlreproError
    from harness.kubernetes.collect import collect
    from harness.lock import read_lock
    from harness.report import render

    config = load(config_path)
    config.require_steps(), config.require_artifacts()
    lock = read_lock(config.lock)  # every local input is checked before a cluster or a step is asked for anything
    against = None
    if against_path is not None:
        from harness.reference import load_reference

        against = load_reference(against_path)
        against.require_lock(lock.sha256, source=str(against_path), lock_name=str(config.lock.name))
    if json_path:
        check_writable(Path(json_path))
    if log_path is not None:
        try:
            log, source = log_path.read_bytes().decode("utf-8", "replace"), str(log_path)
        except FileNotFoundError:
            raise MlreproError(f"--logs {log_path}: expected the verification Job's log, found no file; save it with "
                               "'kubectl logs job/NAME > FILE'") from None
        except OSError as exc:
            raise MlreproError(f"--logs {log_path}: expected a readable file, found {exc.strerror or exc}") from None
    else:
        from harness.kubernetes.collect import run_on_cluster

        log, source = run_on_cluster(config, record_path, report_path, context=context, timeout=timeout, progress=progress)
    report = collect(config, record_path, report_path, log, source=source, against=against, progress=progress)
    if json_path:
        write_atomic(Path(json_path), report.to_json())
        progress(f"JSON report written to {json_path}")
    render(report, out)
    return EXIT_OK if report.reproducible else EXIT_DRIFT


__all__ = ["kubernetes_group"]
