"""The verification Job: the configured steps and the probe, in the released image, on the cluster. Pure.

A ConfigMap carries the runner (`harness.kubernetes.runner`), the probe
(`harness.sides.probe`), the configured inputs and `mlrepro-run.json`; the Job
runs `python RUNNER RUN_JSON` in the released image by digest, in the same
hardened pod as the workload (`manifests.pod_spec`), the ConfigMap mounted
read-only at `FILES_DIR`, the workspace (`run.workdir_in_image`) an emptyDir.

Every command and variable is expanded here, for the pod, by the functions
the container side uses (`harness.sides.steps`: `expand` fills `{out}`,
`{inputs}`, `{python}`; `expand_env` a step's `env`; `forwarded_env` the
`run.env` table, over the thread variables the verification ran with), so the
runner only executes; the probe's command is `steps.probe_argv`'s. `python` is
the image's own, found on its PATH, as in the container side.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.config import Config
from harness.kubernetes.manifests import ManifestError, Release, annotations, labels, pod_spec
from harness.kubernetes.runner import RUN_SCHEMA
from harness.kubernetes.settings import KubernetesConfig
from harness.sides.container import ContainerSide
from harness.sides.side import Workspace
from harness.sides.steps import PROBE_SOURCE, PROBE_TIMEOUT, expand, expand_env, forwarded_env, probe_argv

#: Where the pod sees the ConfigMap's files (read-only).
FILES_DIR = "/etc/mlrepro"
RUNNER_FILE, RUN_FILE, PROBE_FILE = "mlrepro-runner.py", "mlrepro-run.json", "probe.py"
RUNNER_SOURCE = Path(__file__).with_name("runner.py").read_text(encoding="utf-8")
#: What a command's first word `python` becomes in the pod: the image's own, as in the container side.
POD_PYTHON = ContainerSide.python
#: The API server refuses a ConfigMap over 1 MiB; this leaves room for its metadata.
MAX_CONFIGMAP_BYTES = 1000 * 1024
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_VOLUME = "mlrepro-files"
_WORKSPACE_VOLUME = "mlrepro-workspace"


@dataclass(frozen=True)
class PodPlace:
    """The pod as `harness.sides.steps` sees a side: its interpreter and its workspace paths."""

    python: str
    workspace: Workspace


def job_name(settings: KubernetesConfig) -> str:
    """The verification Job's (and its ConfigMap's) name: the workload's name + '-verify' (63 characters at most)."""
    return f"{settings.name}-verify"


def place(config: Config) -> PodPlace:
    wd = config.run.workdir_in_image.rstrip("/") or "/"
    return PodPlace(POD_PYTHON, Workspace(root=wd, out=f"{wd}/out", inputs=f"{wd}/in"))


def input_key(path: Path) -> str:
    key = f"input-{path.name}"
    if not _KEY.match(key) or len(key) > 253:
        raise ManifestError(f"[tool.mlrepro] inputs: {path.name!r} cannot be a ConfigMap key (expected [-._a-zA-Z0-9] "
                            "only, 246 characters at most); rename the input file")
    return key


def run_description(config: Config, release: Release, where: PodPlace) -> dict[str, Any]:
    """`mlrepro-run.json`: everything the runner does, already expanded for the pod."""
    ws = where.workspace
    steps = [{"name": step.name, "argv": expand(step.command, ws, where.python),
              "env": expand_env(step.env, ws, where.python), "timeout": step.timeout} for step in config.steps]
    return {
        "schema": RUN_SCHEMA, "where": "image", "lock_sha256": release.lock_sha256, "image_id": release.image_id,
        "files_dir": FILES_DIR, "out": ws.out, "inputs": ws.inputs, "probe_file": PROBE_FILE, "probe_path": ws.probe,
        "input_files": {path.name: input_key(path) for path in config.inputs},
        "probe": {"argv": probe_argv(config, where), "timeout": PROBE_TIMEOUT},  # type: ignore[arg-type]
        "steps": steps,
        "artifacts": [rule.path for rule in config.artifacts],
    }


def pod_env(config: Config, thread_env: Mapping[str, str], where: PodPlace) -> dict[str, str]:
    """The thread variables of the verification, then `run.env` filled for the pod (as the container side does)."""
    return {**thread_env, **forwarded_env(config, {}, workspace=where.workspace, python=where.python)}


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def verification_objects(config: Config, settings: KubernetesConfig, release: Release, thread_env: Mapping[str, str], *,
                         pull_secret: str | None, inputs: Mapping[str, bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ConfigMap, Job) running the configured steps and the probe in the released image; `inputs`: name -> bytes."""
    config.require_steps(), config.require_artifacts()
    where = place(config)
    name = job_name(settings)
    description = run_description(config, release, where)
    data = {RUNNER_FILE: RUNNER_SOURCE, PROBE_FILE: PROBE_SOURCE.decode("utf-8"),
            RUN_FILE: json.dumps(description, indent=2, sort_keys=True) + "\n"}
    binary = {input_key(Path(n)): base64.b64encode(inputs[n]).decode("ascii") for n in sorted(description["input_files"])}
    size = sum(len(v) for v in data.values()) + sum(len(v) for v in binary.values())
    if size > MAX_CONFIGMAP_BYTES:
        raise ManifestError(f"the verification Job's ConfigMap would hold {size} bytes (runner, probe, inputs): expected "
                            f"at most {MAX_CONFIGMAP_BYTES} (Kubernetes refuses a ConfigMap over 1 MiB); make the "
                            "configured inputs smaller")
    meta = {"name": name, "namespace": settings.namespace, "labels": labels(settings, "verification"),
            "annotations": annotations(release)}
    configmap: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    if binary:
        configmap["binaryData"] = binary
    mounts: list[tuple[dict, dict]] = [
        ({"name": _VOLUME, "configMap": {"name": name, "defaultMode": 0o444}},
         {"name": _VOLUME, "mountPath": FILES_DIR, "readOnly": True})]
    if not _under(where.workspace.root, settings.writable_paths):
        mounts.append(({"name": _WORKSPACE_VOLUME, "emptyDir": {}}, {"name": _WORKSPACE_VOLUME, "mountPath": where.workspace.root}))
    spec = pod_spec(settings, release, pod_env(config, thread_env, where),
                    command=[where.python, f"{FILES_DIR}/{RUNNER_FILE}", f"{FILES_DIR}/{RUN_FILE}"], args=[],
                    restart="Never", pull_secret=pull_secret, mounts=tuple(mounts))
    template = {"metadata": {"labels": labels(settings, "verification"), "annotations": annotations(release)}, "spec": spec}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": dict(meta),
           "spec": {"backoffLimit": 0, "activeDeadlineSeconds": max(1, int(settings.verification_timeout)),
                    "template": template}}
    return configmap, job


__all__ = ["FILES_DIR", "MAX_CONFIGMAP_BYTES", "POD_PYTHON", "PROBE_FILE", "RUNNER_FILE", "RUN_FILE", "PodPlace", "input_key",
           "job_name", "place", "pod_env", "run_description", "verification_objects"]
