"""Kubernetes (issue #16): manifests pinned by the released digest, and the verification run on the cluster.

- `settings`: `[tool.mlrepro.kubernetes]` read key by key;
- `manifests`: the workload's objects (pure): digest-only images, hardened pods, thread variables, pull access;
- `verification`: the verification Job and its ConfigMap (pure), commands expanded by `harness.sides.steps`;
- `runner`: stdlib-only, run in the pod: the steps and the probe, one checksummed reference bundle printed;
  also the one encoder of reference bundles (`harness.reference` uses it);
- `bundle`: finds and checks that bundle in a pod log (pure);
- `validate`: offline strict validation (kubernetes-validate, the `kubernetes` extra) and YAML rendering;
- `plan`: the sequencing the CLI calls (read, check, build, validate; nothing written);
- `kubectl`: apply the Job, wait with a timeout, read its log, delete it (the one kubectl caller);
- `collect`: the pod's log as the image side of a normal comparison.

Nothing imported here imports kubernetes-validate, kubectl or harness.reference; the package import stays cheap
(and `harness.reference`, which imports `runner`, can import this package).
"""

from harness.kubernetes.bundle import ResultBundleError, extract_bundle, read_bundle
from harness.kubernetes.manifests import DIGEST_REFERENCE, THREAD_VARIABLES, ManifestError, Release, check_release, workload
from harness.kubernetes.settings import KubernetesConfig, parse_kubernetes

__all__ = ["DIGEST_REFERENCE", "THREAD_VARIABLES", "KubernetesConfig", "ManifestError", "Release", "ResultBundleError",
           "check_release", "extract_bundle", "parse_kubernetes", "read_bundle", "workload"]
