"""`[tool.mlrepro.kubernetes]`: the workload to deploy the released image as, read key by key.

Only the kubernetes commands read this table (`harness.config` keeps it as
written), so a project that never deploys pays nothing for it; but every
error still names the exact key and the value found, like the rest of the
configuration (`harness.config._Table`).

    [tool.mlrepro.kubernetes]
    kind = "Job"                                    # Job, CronJob or Deployment
    command = ["python", "-m", "my_project.predict"]
    args = ["--input", "/data/in.csv"]
    namespace = "ml"
    service_account = "ml-runner"                   # optional
    schedule = "0 3 * * *"                          # CronJob only (required there)
    kubernetes_version = "1.29"                     # what the manifests are validated against
    pull = "auto"                # aks: print 'az aks update --attach-acr'; secret: imagePullSecrets (auto: aks for ACR)
    aks_cluster = "my-cluster"   # optional, AKS only: names the cluster in the printed command
    aks_resource_group = "my-rg"
    [tool.mlrepro.kubernetes.resources]
    requests = { cpu = "1", memory = "1Gi" }
    limits = { cpu = "1", memory = "1Gi" }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from harness.config import _Table
from harness.errors import MISSING, ConfigError

KINDS = ("Job", "CronJob", "Deployment")
PULL_MODES = ("auto", "aks", "secret")
#: Kubernetes' names for objects (RFC 1123 labels), at most 63 characters; the verification Job adds "-verify".
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,54}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*$")
DEFAULT_VERSION = "1.29"
DEFAULT_REQUESTS = {"cpu": "1", "memory": "1Gi"}


@dataclass(frozen=True)
class KubernetesConfig:
    """The workload: what runs, where, with which resources; validated, plain data."""

    kind: str
    name: str
    namespace: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    service_account: str | None
    schedule: str | None
    replicas: int
    pull_secret: str
    writable_paths: tuple[str, ...]
    run_as_user: int | None
    version: str
    verification_timeout: float
    pull: str = "auto"  # "aks" (attach the ACR to the cluster), "secret" (imagePullSecrets), "auto": aks for *.azurecr.io
    aks_cluster: str | None = None
    aks_resource_group: str | None = None


def default_name(project: str) -> str:
    """A Kubernetes name from the project's name (`my_project` -> `my-project`)."""
    name = re.sub(r"[^a-z0-9-]+", "-", project.lower()).strip("-")[:55].strip("-")
    return name or "mlrepro"


def parse_kubernetes(raw: Mapping[str, Any] | None, *, project: str) -> KubernetesConfig:
    """Validate the table; ConfigError naming the key otherwise (a missing table is an error too)."""
    if raw is None:
        raise ConfigError("kubernetes", "a [tool.mlrepro.kubernetes] table with at least kind and command "
                          "(see README, 'Deploying to Kubernetes')", MISSING)
    t = _Table(dict(raw), "kubernetes")
    kind = t.str("kind", "", KINDS) if "kind" in t.data else _missing(t, "kind", "one of " + ", ".join(KINDS))
    command = t.strings("command", []) if "command" in t.data else _missing(t, "command", "a non-empty list of strings")
    if not command:
        raise ConfigError(t.key("command"), "a non-empty list of strings", [])
    name = t.str("name", default_name(project))
    if not _NAME.match(name):
        raise ConfigError(t.key("name"), "a lower-case DNS label of at most 56 characters ([a-z0-9-])", name)
    namespace = t.str("namespace", "default")
    if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", namespace):
        raise ConfigError(t.key("namespace"), "a lower-case DNS label ([a-z0-9-], at most 63 characters)", namespace)
    service_account = t.get("service_account", None)
    if service_account is not None and (not isinstance(service_account, str) or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", service_account)):
        raise ConfigError(t.key("service_account"), "the name of a service account (lower-case DNS name)", service_account)
    schedule = t.get("schedule", None)
    if kind == "CronJob" and (not isinstance(schedule, str) or len(schedule.split()) != 5):
        raise ConfigError(t.key("schedule"), "a cron schedule of five fields, e.g. '0 3 * * *' (kind = 'CronJob')", schedule)
    if kind != "CronJob" and schedule is not None:
        raise ConfigError(t.key("schedule"), f"no schedule for kind = {kind!r} (only a CronJob has one)", schedule)
    replicas = t.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0 or (kind != "Deployment" and replicas != 1):
        raise ConfigError(t.key("replicas"), "a whole number >= 0 (and only for kind = 'Deployment')", replicas)
    run_as_user = t.get("run_as_user", None)
    if run_as_user is not None and (isinstance(run_as_user, bool) or not isinstance(run_as_user, int) or run_as_user <= 0):
        raise ConfigError(t.key("run_as_user"), "a numeric uid > 0 (a non-root user)", run_as_user)
    writable = t.strings("writable_paths", ["/tmp"])
    for i, path in enumerate(writable):
        if not path.startswith("/") or path == "/":
            raise ConfigError(f"{t.key('writable_paths')}[{i}]", "an absolute path other than /", path)
    pull_secret = t.str("pull_secret", f"{name}-registry")
    if not _NAME.match(pull_secret[:56]):
        raise ConfigError(t.key("pull_secret"), "a secret name ([a-z0-9-])", pull_secret)
    version = t.str("kubernetes_version", DEFAULT_VERSION)
    if not re.match(r"^v?1\.[0-9]+(\.[0-9]+)?$", version):
        raise ConfigError(t.key("kubernetes_version"), "a Kubernetes version such as '1.29'", version)
    resources = t.table("resources")
    # Every pod gets requests and limits: the configured ones, limits defaulting to the requests.
    requests = _quantities(resources, "requests") or dict(DEFAULT_REQUESTS)
    limits = _quantities(resources, "limits") or dict(requests)
    resources.done()
    settings = KubernetesConfig(
        kind=kind, name=name, namespace=namespace, command=command, args=t.strings("args", []),
        requests=requests, limits=limits, service_account=service_account, schedule=schedule, replicas=replicas,
        pull_secret=pull_secret, writable_paths=writable, run_as_user=run_as_user, version=version.lstrip("v"),
        verification_timeout=t.seconds("verification_timeout", 1800),
        pull=t.str("pull", "auto", PULL_MODES),
        aks_cluster=_optional_name(t, "aks_cluster"), aks_resource_group=_optional_name(t, "aks_resource_group"),
    )
    t.done()
    return settings


def _optional_name(t: _Table, name: str) -> str | None:
    value = t.get(name, None)
    if value is not None and (not isinstance(value, str) or not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.()]{0,89}$", value)):
        raise ConfigError(t.key(name), "an Azure resource name ([A-Za-z0-9-_.()], at most 90 characters)", value)
    return value


def _missing(t: _Table, name: str, expected: str) -> Any:
    raise ConfigError(t.key(name), expected, MISSING)


def _quantities(t: _Table, name: str) -> dict[str, str]:
    value = t.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(t.key(name), "a table such as { cpu = \"1\", memory = \"1Gi\" }", value)
    found: dict[str, str] = {}
    for resource, amount in value.items():
        text = str(amount) if isinstance(amount, (int, float)) and not isinstance(amount, bool) else amount
        if not isinstance(text, str) or not _QUANTITY.match(text) or not _RESOURCE_NAME.match(resource):
            raise ConfigError(f"{t.key(name)}.{resource}", "a Kubernetes quantity such as '500m', '2' or '1Gi'", amount)
        found[resource] = text
    return found


__all__ = ["DEFAULT_VERSION", "KINDS", "PULL_MODES", "KubernetesConfig", "default_name", "parse_kubernetes"]
