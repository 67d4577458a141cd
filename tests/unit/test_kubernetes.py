"""`mlrepro kubernetes manifests` (issue 16, part 2): digest-only, hardened, validated manifests; bad inputs refused.

No engine, no cluster: a release record and its verification report are built
here (`ReleaseRecord`, `Report`), the real command line writes the manifests,
and they are read back and validated again with kubernetes-validate (strict).
Every refusal is one `error: ` line, exit 2, nothing written.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from harness.config import parse_config
from harness.errors import ConfigError
from harness.kubernetes.manifests import (THREAD_VARIABLES, ManifestError, Release, pull_commands, require_digests,
                                          thread_env, workload)
from harness.kubernetes.settings import parse_kubernetes
from harness.kubernetes.validate import validate
from harness.lock import read_lock
from harness.release import ReleaseRecord
from harness.report import ImageInfo, Report
from tests.cli_projects import assert_refused, mlrepro, snapshot

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "d" * 64
IMAGE_ID = "sha256:" + "1" * 64
REGISTRY, REPOSITORY = "127.0.0.1:5000", "ml/tiny"
REFERENCE = f"{REGISTRY}/{REPOSITORY}@{DIGEST}"
LOCK = "click==8.1.7 \\\n    --hash=sha256:" + "e" * 64 + "\n"
KUBERNETES = """
[tool.mlrepro.kubernetes]
kind = "Job"
command = ["python", "-m", "tiny.predict"]
args = ["--input", "/data/in.csv"]
namespace = "ml"
service_account = "ml-runner"
kubernetes_version = "1.29"
[tool.mlrepro.kubernetes.resources]
requests = { cpu = "500m", memory = "512Mi" }
limits = { cpu = "2", memory = "1Gi" }
"""
PYPROJECT = """\
[tool.mlrepro]
project = "tiny"

[[tool.mlrepro.steps]]
name = "job"
command = ["python", "job.py", "{out}"]

[[tool.mlrepro.artifacts]]
path = "result.txt"
"""
IMAGE_PROBE = {"env": {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "2"},
               "threadpools": [{"internal_api": "openblas", "num_threads": 4, "user_api": "blas"},
                               {"internal_api": "openmp", "num_threads": 2, "user_api": "openmp"}]}


def report(image_id: str = IMAGE_ID, lock_sha256: str = "0" * 64) -> Report:
    image = ImageInfo(tag="mlrepro/tiny:0123456789abcdef", image_id=image_id, content_hash="2" * 64,
                      base_image="base:1", base_image_id="sha256:" + "3" * 64)
    return Report(project="tiny", image=image, lock_sha256=lock_sha256,
                  environments={"image": IMAGE_PROBE, "host": IMAGE_PROBE}, differences=(), artifacts=())


def record(report_bytes: bytes, lock_sha256: str, **changes) -> ReleaseRecord:
    fields = dict(registry=REGISTRY, repository=REPOSITORY, tag="1.0.0", digest=DIGEST, reference=REFERENCE,
                  image_id=IMAGE_ID, report_sha256=hashlib.sha256(report_bytes).hexdigest(), lock_sha256=lock_sha256,
                  git_revision="f" * 40, git_dirty=False, allow_dirty=False, image_revision="f" * 40, provenance={},
                  verification_artifact=None, already_released=False, credentials_source="environment",
                  released_at="2026-01-01T00:00:00Z")
    fields.update(changes)
    return ReleaseRecord(**fields)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "out").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT + KUBERNETES)
    (root / "requirements.txt").write_text(LOCK)
    lock = read_lock(root / "requirements.txt").sha256
    data = report(lock_sha256=lock).to_json().encode()
    (root / "out" / "report.json").write_bytes(data)
    (root / "out" / "release.json").write_text(record(data, lock).to_json())
    return root


def cli(args: list[str], *, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess with no engine (tests.cli_projects.mlrepro), this module's run-id prefix."""
    return mlrepro(["harness.cli", *args], cwd=cwd, run_prefix="k8s", **env)


def settings(text: str = KUBERNETES, **changes):
    import tomllib

    raw = tomllib.loads(text)["tool"]["mlrepro"]["kubernetes"]
    raw.update(changes)
    return parse_kubernetes(raw, project="tiny")


RELEASE = Release(reference=REFERENCE, registry=REGISTRY, image_id=IMAGE_ID, lock_sha256="0" * 64,
                  report_sha256="9" * 64, git_revision=None)


def containers_of(obj: dict) -> list[dict]:
    spec = obj["spec"]
    template = spec.get("template") or spec["jobTemplate"]["spec"]["template"]
    return template["spec"]["containers"]


# ---------------------------------------------------------------- the command line


def test_manifests_are_written_by_digest_hardened_and_valid(project: Path) -> None:
    proc = cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (project / "k8s").iterdir()) == ["tiny-job.yaml"]
    obj = yaml.safe_load((project / "k8s" / "tiny-job.yaml").read_text())
    assert kubernetes_validate.validate(obj, "1.29", strict=True) == "1.29"
    assert (obj["kind"], obj["metadata"]["namespace"]) == ("Job", "ml")
    pod = obj["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == REFERENCE
    assert container["command"] == ["python", "-m", "tiny.predict"] and container["args"] == ["--input", "/data/in.csv"]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "ml-runner"
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "4", "MKL_NUM_THREADS": "2",
                   "BLIS_NUM_THREADS": "2", "NUMEXPR_NUM_THREADS": "2"}
    assert obj["metadata"]["annotations"]["mlrepro.io/image-id"] == IMAGE_ID
    # Pull access for a registry that is not an ACR: a secret reference, and the command that makes it.
    assert pod["imagePullSecrets"] == [{"name": "tiny-registry"}]
    lines = proc.stdout.splitlines()
    assert lines[0] == ("kubectl create secret docker-registry tiny-registry --namespace ml --docker-server=127.0.0.1:5000 "
                        '--docker-username="$REGISTRY_USERNAME" --docker-password="$REGISTRY_PASSWORD"')
    assert lines[1] == "kubectl apply --namespace ml -f k8s/tiny-job.yaml"
    assert "validated against Kubernetes 1.29 (strict)" in proc.stderr


def test_the_verification_job_is_written_by_digest_with_its_configmap(project: Path) -> None:
    (project / "data.csv").write_text("x\n1\n")
    text = (project / "pyproject.toml").read_text().replace('project = "tiny"\n', 'project = "tiny"\ninputs = ["data.csv"]\n', 1)
    (project / "pyproject.toml").write_text(text)
    proc = cli(["kubernetes", "verification-job", "--out", "k8s"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (project / "k8s").iterdir()) == ["tiny-verify-configmap.yaml", "tiny-verify-job.yaml"]
    job = yaml.safe_load((project / "k8s" / "tiny-verify-job.yaml").read_text())
    configmap = yaml.safe_load((project / "k8s" / "tiny-verify-configmap.yaml").read_text())
    for obj in (job, configmap):
        assert kubernetes_validate.validate(obj, "1.29", strict=True) == "1.29"
    assert [c["image"] for c in containers_of(job)] == [REFERENCE]
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "tiny-verify")
    assert "data.csv" in " ".join([*configmap.get("data", {}), *configmap.get("binaryData", {})])
    lines = proc.stdout.splitlines()
    assert "kubectl apply --namespace ml -f k8s/tiny-verify-configmap.yaml -f k8s/tiny-verify-job.yaml" in lines
    assert lines[-2] == "mlrepro kubernetes collect --release out/release.json --report out/report.json --logs tiny-verify.log"


def test_no_credential_is_ever_written(project: Path) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    env_before = dict(os.environ)
    os.environ.update(MLREPRO_REGISTRY_USERNAME="someone", MLREPRO_REGISTRY_PASSWORD=secret, REGISTRY_PASSWORD=secret)
    try:
        proc = cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert proc.returncode == 0, proc.stderr
    written = "".join(p.read_text() for p in (project / "k8s").iterdir())
    assert secret not in written and secret not in proc.stdout + proc.stderr
    assert "kind: Secret" not in written


def test_every_kind_is_valid_and_names_only_the_digest() -> None:
    for kind, extra in (("Job", {}), ("CronJob", {"schedule": "0 3 * * *"}), ("Deployment", {"replicas": 3})):
        config = settings(kind=kind, **extra)
        obj = workload(config, RELEASE, {"OMP_NUM_THREADS": "1"}, pull_secret=None)
        assert validate([obj], version="1.29", image=REFERENCE) == "1.29"
        assert [c["image"] for c in containers_of(obj)] == [REFERENCE]
        assert obj["kind"] == kind
    deployment = workload(settings(kind="Deployment", replicas=3), RELEASE, {}, pull_secret=None)
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]


def test_aks_gets_the_attach_acr_command_and_no_pull_secret() -> None:
    config = settings(aks_cluster="prod-aks", aks_resource_group="ml-rg")
    secret, commands = pull_commands(config, "myreg.azurecr.io")
    assert secret is None
    assert commands == ["az aks update --resource-group ml-rg --name prod-aks --attach-acr myreg"]
    obj = workload(config, replace(RELEASE, registry="myreg.azurecr.io"), {}, pull_secret=secret)
    assert "imagePullSecrets" not in obj["spec"]["template"]["spec"]
    _, unnamed = pull_commands(settings(), "myreg.azurecr.io")
    assert unnamed == ["az aks update --resource-group '<RESOURCE_GROUP>' --name '<AKS_CLUSTER>' --attach-acr myreg"]
    with pytest.raises(ManifestError) as exc:
        pull_commands(settings(pull="aks"), "registry.example.com")
    assert "only an Azure Container Registry can be attached" in str(exc.value)
    assert pull_commands(settings(pull="secret"), "myreg.azurecr.io")[0] == "tiny-registry"


def test_a_manifest_with_a_tag_is_refused_naming_it() -> None:
    obj = workload(settings(), RELEASE, {}, pull_secret=None)
    containers_of(obj)[0]["image"] = f"{REGISTRY}/{REPOSITORY}:1.0.0"
    with pytest.raises(ManifestError) as exc:
        require_digests([obj], REFERENCE)
    assert f"found '{REGISTRY}/{REPOSITORY}:1.0.0' (a tag)" in str(exc.value)
    with pytest.raises(ManifestError):
        validate([obj], version="1.29", image=REFERENCE)


def test_a_manifest_with_an_unknown_field_is_refused_naming_it() -> None:
    obj = workload(settings(), RELEASE, {}, pull_secret=None)
    containers_of(obj)[0]["securityContxt"] = {}
    with pytest.raises(ManifestError) as exc:
        validate([obj], version="1.29", image=REFERENCE)
    message = str(exc.value)
    assert "\n" not in message and message.startswith("Job/tiny is not valid for Kubernetes 1.29 (strict)")
    assert "'securityContxt' was unexpected" in message and "spec.template.spec.containers.0" in message


def test_thread_variables_come_from_the_verification() -> None:
    assert thread_env({"env": {"OMP_NUM_THREADS": "3"}, "threadpools": None}, source="r") == {
        name: "3" for name in THREAD_VARIABLES}
    assert thread_env({"env": {}, "threadpools": [{"internal_api": "openblas", "num_threads": 2}]}, source="r") == {
        name: "2" for name in THREAD_VARIABLES}
    with pytest.raises(ManifestError) as exc:
        thread_env({"env": {}, "threadpools": None}, source="out/report.json")
    assert "expected the image side's thread counts" in str(exc.value)


# ---------------------------------------------------------------- bad inputs: one line, exit 2, nothing written


def test_a_release_record_for_another_image_is_refused(project: Path) -> None:
    data = (project / "out" / "report.json").read_bytes()
    (project / "out" / "release.json").write_text(record(data, "7" * 64).to_json())
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project),
                   "release record out/release.json is for another image", "lock sha256 777777777777")
    assert snapshot(project) == before


def test_a_release_record_whose_report_is_of_another_image_is_refused(project: Path) -> None:
    lock = read_lock(project / "requirements.txt").sha256
    data = report(image_id="sha256:" + "5" * 64, lock_sha256=lock).to_json().encode()
    (project / "out" / "report.json").write_bytes(data)
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project),
                   "is not the one release record out/release.json was made from")
    assert snapshot(project) == before


def test_a_release_record_naming_a_tag_is_refused(project: Path) -> None:
    data = (project / "out" / "report.json").read_bytes()
    lock = read_lock(project / "requirements.txt").sha256
    (project / "out" / "release.json").write_text(record(data, lock, reference=f"{REGISTRY}/{REPOSITORY}:1.0.0").to_json())
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project), "never names an image by tag")
    assert snapshot(project) == before


@pytest.mark.parametrize("content, needle", [
    (None, "found none"),
    ("not json", "expected a release record written by 'mlrepro release'"),
    ('{"schema": 1, "registry": "x"}', "expected a release record written by 'mlrepro release'"),
])
def test_a_missing_or_malformed_release_record_is_refused(project: Path, content: str | None, needle: str) -> None:
    path = project / "out" / "release.json"
    path.unlink() if content is None else path.write_text(content)
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project), needle)
    assert snapshot(project) == before


@pytest.mark.parametrize("table, needle", [
    ("", "kubernetes: expected a [tool.mlrepro.kubernetes] table"),
    ("[tool.mlrepro.kubernetes]\ncommand = ['python']\n", "kubernetes.kind: expected one of Job, CronJob, Deployment"),
    ("[tool.mlrepro.kubernetes]\nkind = 'Pod'\ncommand = ['python']\n", "kubernetes.kind: expected one of Job, CronJob, Deployment"),
    ("[tool.mlrepro.kubernetes]\nkind = 'Job'\n", "kubernetes.command: expected a non-empty list of strings"),
    ("[tool.mlrepro.kubernetes]\nkind = 'Job'\ncommand = ['python']\nimage = 'x:latest'\n", "kubernetes.image: expected a known key"),
    ("[tool.mlrepro.kubernetes]\nkind = 'CronJob'\ncommand = ['python']\n", "kubernetes.schedule: expected a cron schedule"),
    ("[tool.mlrepro.kubernetes]\nkind = 'Job'\ncommand = ['python']\n[tool.mlrepro.kubernetes.resources]\nlimits = { cpu = 'lots' }\n",
     "kubernetes.resources.limits.cpu: expected a Kubernetes quantity"),
    ("[tool.mlrepro.kubernetes]\nkind = 'Job'\ncommand = ['python']\nkubernetes_version = '1.99'\n",
     "kubernetes.kubernetes_version: expected a version up to"),
    ("[tool.mlrepro]\nkubernetes = 'Job'\n", None),
])
def test_a_missing_or_malformed_kubernetes_table_is_refused(project: Path, table: str, needle: str | None) -> None:
    if needle is None:  # `kubernetes = "Job"` at the top level: not a table
        text, needle = PYPROJECT.replace('project = "tiny"', 'project = "tiny"\nkubernetes = "Job"'), "kubernetes: expected a table"
    else:
        text = PYPROJECT + table
    (project / "pyproject.toml").write_text(text)
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project), needle)
    assert snapshot(project) == before


def test_an_out_dir_that_is_a_file_is_refused(project: Path) -> None:
    (project / "k8s").write_text("a file")
    before = snapshot(project)
    assert_refused(cli(["kubernetes", "manifests", "--out", "k8s"], cwd=project), "--out k8s: expected a directory, found a file")
    assert snapshot(project) == before


def test_settings_refuse_what_kubernetes_would_refuse() -> None:
    for key, value, needle in (("name", "Not_A_Name", "kubernetes.name"), ("namespace", "ML", "kubernetes.namespace"),
                               ("run_as_user", 0, "kubernetes.run_as_user"), ("replicas", 2, "kubernetes.replicas"),
                               ("writable_paths", ["relative"], "kubernetes.writable_paths[0]"),
                               ("pull", "magic", "kubernetes.pull")):
        with pytest.raises(ConfigError) as exc:
            settings(**{key: value})
        assert needle in str(exc.value), (key, str(exc.value))


def test_the_configuration_keeps_the_table_as_written() -> None:
    config = parse_config({"kubernetes": {"kind": "Job", "command": ["x"]}}, ROOT)
    assert config.kubernetes == {"kind": "Job", "command": ["x"]}
    assert parse_config({}, ROOT).kubernetes is None
