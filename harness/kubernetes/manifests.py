"""The workload's manifests from a release record. Pure: plain data in, Kubernetes objects (dicts) out.

Every image is referenced by the released digest (`REGISTRY/REPO@sha256:...`),
never by a tag; every pod runs as a non-root uid, with a read-only root
filesystem (the writable paths are emptyDir volumes), no privilege
escalation, every capability dropped, the runtime's seccomp profile, and
resource requests and limits; the thread variables the verification ran with
are set explicitly, so a node with more CPUs does not change a BLAS
reduction. Pull access is a printed command (`az aks update --attach-acr`
for AKS, `kubectl create secret docker-registry` elsewhere, credentials read
from the shell's variables at that moment): no credential is ever part of an
object or a file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Mapping

from harness.errors import MlreproError
from harness.kubernetes.settings import KubernetesConfig

#: `REGISTRY/REPOSITORY@sha256:<64 hex>`: the only image reference a manifest may hold.
DIGEST_REFERENCE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9]+([._/-][a-z0-9]+)*@sha256:[0-9a-f]{64}$")
#: The variables that set native thread pools' sizes, each set explicitly in every pod.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Which variable sizes which threadpoolctl pool (by its internal_api).
_POOL_VARIABLE = {"openmp": "OMP_NUM_THREADS", "openblas": "OPENBLAS_NUM_THREADS", "mkl": "MKL_NUM_THREADS",
                  "blis": "BLIS_NUM_THREADS"}
DEFAULT_UID = 10001  # the uid the verification's container side runs as
MANAGED_BY = "mlrepro"


class ManifestError(MlreproError):
    """A manifest cannot be written from these inputs (another image's record, a tag, an invalid object): fix the input."""


@dataclass(frozen=True)
class Release:
    """What the manifests need of a release record and its verification report."""

    reference: str  # REGISTRY/REPOSITORY@sha256:...
    registry: str
    image_id: str
    lock_sha256: str
    report_sha256: str
    git_revision: str | None


def check_release(record, *, lock_sha256: str, report, report_sha256: str, source: str, report_source: str) -> Release:
    """The release, if `record` (a ReleaseRecord) is this project's released image and `report` its verification."""
    reference = record.reference
    if not DIGEST_REFERENCE.match(reference) or reference != f"{record.registry}/{record.repository}@{record.digest}":
        raise ManifestError(f"release record {source}: expected reference REGISTRY/REPOSITORY@sha256:<64 hex> of its "
                            f"digest {record.digest}, found {reference!r}; a manifest never names an image by tag: "
                            "release again with 'mlrepro release'")
    if record.lock_sha256 != lock_sha256:
        raise ManifestError(f"release record {source} is for another image: built from lock sha256 {record.lock_sha256[:12]}, "
                            f"but this project's lock is sha256 {lock_sha256[:12]}; pass the record of this project's "
                            "release, or release this tree ('mlrepro release')")
    if report_sha256 != record.report_sha256 or report.image.image_id != record.image_id:
        raise ManifestError(f"verification report {report_source} (sha256 {report_sha256[:12]}, image {report.image.image_id[:19]}) "
                            f"is not the one release record {source} was made from (sha256 {record.report_sha256[:12]}, "
                            f"image {record.image_id[:19]}); pass the released report with --report")
    return Release(reference=reference, registry=record.registry, image_id=record.image_id, lock_sha256=record.lock_sha256,
                   report_sha256=record.report_sha256, git_revision=record.git_revision)


def thread_env(image_probe: Mapping[str, Any], *, source: str) -> dict[str, str]:
    """The determinism variables the image side ran with, every thread variable set (the pool's size when it was unset)."""
    recorded = {str(k): str(v) for k, v in dict(image_probe.get("env") or {}).items()}
    pools = [p for p in image_probe.get("threadpools") or [] if isinstance(p, dict) and isinstance(p.get("num_threads"), int)]
    by_variable = {_POOL_VARIABLE[p["internal_api"]]: p["num_threads"] for p in pools if p.get("internal_api") in _POOL_VARIABLE}
    fallback = recorded.get("OMP_NUM_THREADS") or (str(min(p["num_threads"] for p in pools)) if pools else None)
    if fallback is None:
        raise ManifestError(f"verification report {source}: expected the image side's thread counts (OMP_NUM_THREADS set, "
                            "or threadpoolctl's pools in the probe), found neither; set [tool.mlrepro.run] env "
                            "OMP_NUM_THREADS (and the others) and verify again")
    env = dict(recorded)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(by_variable.get(name, fallback)))
    return dict(sorted(env.items()))


def labels(settings: KubernetesConfig, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": MANAGED_BY}


def annotations(release: Release) -> dict[str, str]:
    found = {"mlrepro.io/image": release.reference, "mlrepro.io/image-id": release.image_id,
             "mlrepro.io/lock-sha256": release.lock_sha256, "mlrepro.io/report-sha256": release.report_sha256}
    if release.git_revision:
        found["mlrepro.io/git-revision"] = release.git_revision
    return found


def _volume_name(path: str) -> str:
    return ("w-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-"))[:63].rstrip("-")


def pod_spec(settings: KubernetesConfig, release: Release, env: Mapping[str, str], *, command: list[str], args: list[str],
             restart: str, pull_secret: str | None, mounts: tuple[tuple[dict, dict], ...] = (),
             extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A hardened pod running `command` in the released image; `mounts`: (volume, volumeMount) pairs added."""
    uid = settings.run_as_user or DEFAULT_UID
    writable = [({"name": _volume_name(p), "emptyDir": {}}, {"name": _volume_name(p), "mountPath": p})
                for p in settings.writable_paths]
    all_mounts = writable + list(mounts)
    container: dict[str, Any] = {
        "name": settings.name,
        "image": release.reference,
        "imagePullPolicy": "IfNotPresent",  # a digest never changes: what is on the node is that image
        "command": list(command),
        "env": [{"name": k, "value": v} for k, v in {**env, **(extra_env or {})}.items()],
        "resources": {"requests": dict(settings.requests), "limits": dict(settings.limits)},
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [mount for _, mount in all_mounts],
    }
    if args:
        container["args"] = list(args)
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "automountServiceAccountToken": settings.service_account is not None,
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [volume for volume, _ in all_mounts],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if pull_secret:
        spec["imagePullSecrets"] = [{"name": pull_secret}]
    return spec


def _metadata(settings: KubernetesConfig, name: str, release: Release, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": labels(settings, component),
            "annotations": annotations(release)}


def workload(settings: KubernetesConfig, release: Release, env: Mapping[str, str], *, pull_secret: str | None) -> dict[str, Any]:
    """The configured Job, CronJob or Deployment running the released image by digest."""
    template_meta = {"labels": labels(settings, "workload"), "annotations": annotations(release)}
    restart = "Always" if settings.kind == "Deployment" else "Never"
    spec = pod_spec(settings, release, env, command=list(settings.command), args=list(settings.args), restart=restart,
                    pull_secret=pull_secret)
    template = {"metadata": template_meta, "spec": spec}
    meta = _metadata(settings, settings.name, release, "workload")
    if settings.kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": settings.replicas, "selector": {"matchLabels": labels(settings, "workload")},
                         "template": template}}
    job_spec = {"backoffLimit": 0, "template": template}
    if settings.kind == "Job":
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
            "spec": {"schedule": settings.schedule, "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": job_spec}}}


def pull_mode(settings: KubernetesConfig, registry: str) -> str:
    """'aks' or 'secret' for this registry (`pull = "auto"`: aks for an ACR)."""
    acr = registry.lower().endswith(".azurecr.io")
    if settings.pull == "aks" and not acr:
        raise ManifestError(f"[tool.mlrepro] kubernetes.pull: expected 'secret' or 'auto' for registry {registry}, found 'aks' "
                            "(only an Azure Container Registry can be attached to an AKS cluster)")
    if settings.pull == "auto":
        return "aks" if acr else "secret"
    return settings.pull


def pull_commands(settings: KubernetesConfig, registry: str) -> tuple[str | None, list[str]]:
    """(imagePullSecrets name or None, the command that gives the cluster pull access): no credential in either."""
    if pull_mode(settings, registry) == "aks":
        acr = registry.split(".", 1)[0]
        return None, [" ".join(["az", "aks", "update",
                                "--resource-group", shlex.quote(settings.aks_resource_group or "<RESOURCE_GROUP>"),
                                "--name", shlex.quote(settings.aks_cluster or "<AKS_CLUSTER>"), "--attach-acr", shlex.quote(acr)])]
    secret = settings.pull_secret
    return secret, [f"kubectl create secret docker-registry {shlex.quote(secret)} --namespace {shlex.quote(settings.namespace)} "
                    f"--docker-server={shlex.quote(registry)} "
                    '--docker-username="$REGISTRY_USERNAME" --docker-password="$REGISTRY_PASSWORD"']


def pod_images(obj: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(container name, image) of every container and init container in `obj`'s pod template(s)."""
    spec = obj.get("spec") or {}
    pods = []
    if obj.get("kind") == "Pod":
        pods.append(spec)
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
    if template:
        pods.append(template.get("spec") or {})
    return [(c.get("name", "?"), c.get("image")) for pod in pods
            for c in list(pod.get("containers") or []) + list(pod.get("initContainers") or [])]


def require_digests(objects: list[Mapping[str, Any]], expected: str) -> None:
    """Every image in every object is `expected` (a digest reference); ManifestError naming the first that is not."""
    for obj in objects:
        for container, image in pod_images(obj):
            if image != expected or not isinstance(image, str) or not DIGEST_REFERENCE.match(image):
                what = "a tag" if isinstance(image, str) and "@" not in image else "another image"
                raise ManifestError(f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')} container {container}: "
                                    f"expected image {expected} (by digest), found {image!r} ({what}); "
                                    "a manifest must name the released digest")


__all__ = ["DEFAULT_UID", "DIGEST_REFERENCE", "THREAD_VARIABLES", "ManifestError", "Release", "annotations", "check_release",
           "labels", "pod_images", "pod_spec", "pull_commands", "pull_mode", "require_digests", "thread_env", "workload"]
