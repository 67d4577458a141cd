"""Running the verification Job on a cluster with kubectl: apply, wait with a timeout, read the log, delete.

The one place that runs `kubectl` (a subprocess; the cluster and its
credentials are whatever kubectl's current context and `KUBECONFIG` say).
The ConfigMap is applied and the Job created from the validated YAML that
`mlrepro kubernetes verification-job` writes (piped on stdin, nothing left
on disk); a Job of that name that exists already is refused, never deleted
or reused (its log would be another run's). Whatever happens after creation
(timeout, failure, Ctrl-C) the Job and the ConfigMap are deleted again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

from harness.errors import MlreproError, tail

POLL_SECONDS = 2.0
COMMAND_TIMEOUT = 120.0


class KubectlError(MlreproError):
    """kubectl failed, or the cluster did not run the verification Job: read the message, fix the cluster or context."""


@dataclass
class Kubectl:
    """kubectl against `namespace` (optionally another `context`); every call's arguments kept in `calls`."""

    namespace: str
    context: str | None = None
    executable: str = "kubectl"
    calls: list[list[str]] = field(default_factory=list)

    def path(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            raise KubectlError(f"--kubectl: expected {self.executable} on PATH, found none; install kubectl and point it "
                               "at the cluster (KUBECONFIG), or run the Job yourself and pass its log with --logs FILE")
        return found

    def run(self, *args: str, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.path(), *(["--context", self.context] if self.context else []), "--namespace", self.namespace, *args]
        self.calls.append(argv[1:])
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise KubectlError(f"kubectl {' '.join(args[:2])} did not answer within {timeout:g} s; check that the cluster "
                               "is reachable (kubectl cluster-info)") from None
        except OSError as exc:
            raise KubectlError(f"cannot run {argv[0]}: {exc.strerror or exc}; check the kubectl installation") from None
        if check and done.returncode != 0:
            raise self.failed(args, done)
        return done

    @staticmethod
    def failed(args: tuple[str, ...], done: subprocess.CompletedProcess[str]) -> KubectlError:
        last = tail(done.stderr or done.stdout, 1) or "no output"
        return KubectlError(f"kubectl {' '.join(args[:2])} failed (exit {done.returncode}): {last[:240]}",
                            evidence=tail(done.stderr + done.stdout, 20))


def job_state(kubectl: Kubectl, name: str) -> tuple[str, str]:
    """('complete' | 'failed' | 'running', the condition's reason and message) of Job `name`."""
    done = kubectl.run("get", "job", name, "--output", "json")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except (ValueError, AttributeError):
        raise KubectlError(f"kubectl get job {name}: expected a JSON object, found {done.stdout.strip()[:120]!r}") from None
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
            return ("complete" if condition["type"] == "Complete" else "failed"), why
    if status.get("succeeded"):
        return "complete", ""
    if status.get("failed"):
        return "failed", f"{status['failed']} pod(s) failed"
    return "running", ""


def run_job(kubectl: Kubectl, *, name: str, configmap_yaml: str, job_yaml: str, timeout: float,
            progress: Callable[[str], None] = lambda message: None, poll: float = POLL_SECONDS,
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> tuple[str, str, str]:
    """Run the verification Job to its end; (its pod's log, 'complete' or 'failed', why). Deleted again whatever happens."""
    existing = kubectl.run("get", "job", name, "--ignore-not-found", "--output", "name")
    if existing.stdout.strip():
        raise KubectlError(f"a Job {name} exists already in namespace {kubectl.namespace}: expected none (its log would be "
                           f"another run's); delete it with 'kubectl delete --namespace {kubectl.namespace} job/{name}' and retry")
    applied = created = False
    try:
        kubectl.run("apply", "--filename", "-", stdin=configmap_yaml)
        applied = True
        kubectl.run("create", "--filename", "-", stdin=job_yaml)
        created = True
        progress(f"kubectl: created job/{name} in namespace {kubectl.namespace}; waiting up to {timeout:g} s")
        deadline = clock() + timeout
        state, why = job_state(kubectl, name)
        while state == "running":
            left = deadline - clock()
            if left <= 0:
                raise KubectlError(f"job/{name} did not finish within {timeout:g} s: expected it to complete; check its pod "
                                   f"(kubectl describe --namespace {kubectl.namespace} job/{name}) or raise --timeout")
            sleep(min(poll, left))
            state, why = job_state(kubectl, name)
        progress(f"kubectl: job/{name} {state}" + (f" ({why})" if why else ""))
        logs = kubectl.run("logs", f"job/{name}", check=False)
        if logs.returncode != 0:
            if state == "failed":
                raise KubectlError(f"job/{name} failed ({why or 'no reason given'}) and its log cannot be read: "
                                   f"{tail(logs.stderr, 1)[:200]}; check the pod (kubectl describe job/{name})",
                                   evidence=tail(logs.stderr, 20))
            raise Kubectl.failed(("logs", f"job/{name}"), logs)
        return logs.stdout, state, why
    finally:
        if created:
            kubectl.run("delete", "job", name, "--ignore-not-found", "--cascade=background", "--wait=false", check=False)
        if applied:
            kubectl.run("delete", "configmap", name, "--ignore-not-found", "--wait=false", check=False)


__all__ = ["COMMAND_TIMEOUT", "POLL_SECONDS", "Kubectl", "KubectlError", "job_state", "run_job"]
