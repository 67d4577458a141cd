"""`mlrepro kubernetes collect`: the verification Job's log as the image side of an ordinary comparison.

The log's bundle (`harness.kubernetes.bundle`) is checked first, and against
the release (the same lock, the released image's ID), before anything else
runs: a truncated, altered or foreign log never reaches a comparison. The
other side is a recorded reference (`--against`) or the configured steps
run on the host now; `harness.verify.compare_runs` then makes the same
report `mlrepro verify` makes, the image named by the released digest.
The Job sets every thread variable explicitly (`manifests.thread_env`): one
the verification ran unset is pinned to the size its pool had, so on the
other side it is unset; that alone is a note, not drift (the pools' sizes
themselves are still compared, and differ if the pin changed them).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

from harness.config import Config
from harness.kubernetes.bundle import ResultBundleError, read_bundle


def pod_run(release, lock, log: str, *, source: str, record_path: Path, lock_name: str):  # -> harness.reference.Reference
    """The pod's run in `log` as a Reference, checked against the release (its lock, its image ID)."""
    pod = read_bundle(log, source=source)
    if pod.lock_sha256 != lock.sha256:
        raise ResultBundleError(f"{source}: the Job's result was computed for lock sha256 {pod.lock_sha256[:12]}, but "
                                f"{lock_name} is sha256 {lock.sha256[:12]}: expected a verification Job of this "
                                "release; regenerate it ('mlrepro kubernetes verification-job') and run it again")
    if pod.image_id != release.image_id:
        raise ResultBundleError(f"{source}: the Job's result is of image {pod.image_id[:19]}, but release record {record_path} "
                                f"is image {release.image_id[:19]}: expected the log of this release's verification Job; "
                                "pass the matching --release, or regenerate the Job and run it again")
    return pod


def pinned_threads(thread_env: Mapping[str, str], report) -> dict[str, str]:
    """The thread variables the Job sets (`thread_env`) that the released verification's image side ran unset."""
    ran_with = dict(report.environments.get("image", {}).get("env") or {})
    return {name: value for name, value in thread_env.items() if name not in ran_with}


def explain_pinned(report, pinned: Mapping[str, str]):  # -> harness.report.Report
    """`report` with each env difference that is only a variable the Job pinned (pod: the pinned value, other side:
    unset, as in the verification) made a note; every other difference as it was."""
    def relaxed(d):
        if (d.category == "env" and d.subject in pinned and d.details.get("image") == pinned[d.subject]
                and d.details.get("host") is None):
            return replace(d, severity="note", message=f"{d.message} (set by the verification Job to the thread count "
                                                       "the verification ran with, where it was unset)")
        return d

    return replace(report, differences=tuple(relaxed(d) for d in report.differences))


def collect(config: Config, record_path: Path, report_path: Path, log: str, *, source: str, against=None,
            python: str | None = None, progress: Callable[[str], None] = print):  # -> harness.report.Report
    """The report of the pod's run against `against` (a Reference) or, without one, the host side run now."""
    from harness.kubernetes.plan import read_release_report
    from harness.lock import read_lock
    from harness.verify import compare_runs

    _, release, thread_env, released = read_release_report(config, record_path, report_path)
    lock = read_lock(config.lock)
    pod = pod_run(release, lock, log, source=source, record_path=record_path, lock_name=config.lock.name)
    image = replace(released.image, tag=release.reference)  # the image as the report names it: by digest
    progress(f"the verification Job's result: bundle sha256:{pod.sha256[:12]}, {len(pod.files)} artifact(s), image {image.tag}")
    if against is not None:
        against.require_lock(lock.sha256, source="given to collect()", lock_name=config.lock.name)
        other = against.run_result()
    else:
        from harness.sides import run_on_host

        other = run_on_host(config, python, progress=progress)
    report = explain_pinned(compare_runs(config, lock, image, pod.run_result(), other), pinned_threads(thread_env, released))
    return report if against is None else replace(report, reference_sha256=against.sha256)


def run_on_cluster(config: Config, record_path: Path, report_path: Path, *, context: str | None = None,
                   timeout: float | None = None, progress: Callable[[str], None] = print) -> tuple[str, str]:
    """(the Job's log, how to name it): the Job exactly as `verification-job` writes it, run with kubectl, deleted."""
    from harness.kubernetes.bundle import extract_bundle
    from harness.kubernetes.kubectl import Kubectl, KubectlError, run_job
    from harness.kubernetes.plan import verification_job_for

    written = verification_job_for(config, record_path, report_path)  # validated, like the files the command writes
    name = written.job or ""
    kubectl = Kubectl(namespace=written.namespace, context=context)
    kubectl.path()  # one line now when kubectl is missing
    configmap_yaml, job_yaml = written.files.values()  # in this order: the ConfigMap exists before the Job
    log, state, why = run_job(kubectl, name=name, configmap_yaml=configmap_yaml, job_yaml=job_yaml,
                              timeout=timeout or written.timeout + 300, progress=progress)
    source = f"the log of job/{name}"
    if state == "failed":
        try:
            extract_bundle(log, source=source)  # a failed step says which (StepError); anything else is the Job's failure
        except ResultBundleError:
            raise KubectlError(f"job/{name} failed ({why or 'no reason given'}) before its runner printed a result: "
                               "check the pod (image pull, memory limit, deadline)",
                               evidence="\n".join(log.splitlines()[-40:])) from None
    return log, source


__all__ = ["collect", "explain_pinned", "pinned_threads", "pod_run", "run_on_cluster"]
