"""From a real release to the verification Job's pod (issue 16, "Done when"), with real components only.

This repository's image (the session's `prepared` one) is verified and released
in one process with a signing key (`mlrepro release --verify --sign-key`) to a real local registry
(Debian's docker-registry on 127.0.0.1 with htpasswd auth, the helper of
test_release_registry), and a reference is recorded on the host (`mlrepro
record --side host`). `mlrepro kubernetes manifests` and `verification-job`
then write from that release record; every image they name is the pushed
digest, and the files are valid (strict) for Kubernetes 1.29.

There is no cluster here, so the verification Job's pod is run on the local
engine exactly as the written YAML says: the image by digest (pulled back from
the registry), the Job's command and args unchanged, its env, the ConfigMap's
files mounted read-only where the Job mounts them (with its defaultMode), each
emptyDir a tmpfs, runAsUser/runAsGroup/fsGroup, the read-only root filesystem,
every capability dropped, no privilege escalation, the CPU and memory limits.
Anything in the Job this emulation does not know fails the test instead of
being ignored. (The pod would have a network; the container has none, which
shows nothing in the run needs one.) Its log, as `kubectl logs` would give it,
goes to `mlrepro kubernetes collect --logs`: REPRODUCIBLE against the host's
reference; the same log truncated, or with one byte of its bundle altered, is
refused with one line naming the checksum, exit 2, no report.

The repository's pyproject.toml has no [tool.mlrepro.kubernetes] table, so the
kubernetes commands get `--config` of a copy of its [tool.mlrepro] (paths made
absolute, so it is the same project) with a Job table added.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from harness.config import load_config
from harness.kubernetes import THREAD_VARIABLES
from harness.kubernetes.runner import BEGIN, END, LINE
from harness.ownership import owner_labels
from harness.reference import load_reference
from harness.release import ReleaseRecord
from tests.integration.test_release_registry import PASSWORD, USER, _start_registry, _stop

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = f"mlrepro-k8s-test/ml-project-{uuid.uuid4().hex[:8]}"
TAG = "k8s-" + uuid.uuid4().hex[:8]
TEST_LABEL = {"io.mlrepro.test": "kubernetes-release"}
KUBERNETES_TABLE = {
    "kind": "Job",
    "command": ["python", "-m", "ml_project.predict"],
    "args": ["--model", "/models", "--input", "/data/in.csv", "--out", "/tmp/out.csv"],
    "namespace": "ml",
    "kubernetes_version": "1.29",
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
}
#: [tool.mlrepro] keys that are paths relative to the pyproject.toml's directory: (table or "", key).
PATH_KEYS = (("", "lock"), ("", "requirements_in"), ("", "inputs"), ("build", "dockerfile"), ("build", "context"),
             ("wheelhouse", "dir"), ("host", "venv"), ("host", "workdir"))


def mlrepro(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "400", **(env or {})}
    full.pop("MLREPRO_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=1800)


def toml(value) -> str:
    """A TOML value (inline form) of plain data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def kubernetes_config(path: Path) -> Path:
    """This repository's [tool.mlrepro], paths made absolute, plus a [tool.mlrepro.kubernetes] Job table."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mlrepro"]
    for table, key in PATH_KEYS:
        holder = data.get(table) if table else data
        if holder and key in holder:
            value = holder[key]
            holder[key] = [str(ROOT / v) for v in value] if isinstance(value, list) else str(ROOT / value)
    data["kubernetes"] = KUBERNETES_TABLE
    path.write_text("[tool.mlrepro]\n" + "".join(f"{json.dumps(k)} = {toml(v)}\n" for k, v in data.items()))
    return path


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one `error: ` line of a refused command (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def strings_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def images_in(value):
    """Every value of an `image` key, anywhere in an object."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "image":
                yield item
            yield from images_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from images_in(item)


def documents(directory: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(directory.iterdir())}


# The release, once for the module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory, engine):
    workdir = tmp_path_factory.mktemp("k8s-registry")
    reg = _start_registry(workdir)
    try:
        yield reg
    finally:
        _stop(reg.process)
        shutil.rmtree(workdir, ignore_errors=True)  # everything pushed lives here


@pytest.fixture(scope="module")
def released(tmp_path_factory, prepared, registry, engine, repo_config):
    """Verified and released in one process with a signing key (`release --verify --sign-key`), a host
    reference recorded, the kubernetes config written: paths and the record."""
    from harness.attest.keys import generate_key

    lock, image = prepared
    work = tmp_path_factory.mktemp("k8s-release")
    report = work / "report.json"
    key = work / "release.pem"
    generate_key(key)
    record_path = work / "release.json"
    credentials = {"MLREPRO_REGISTRY_USERNAME": USER, "MLREPRO_REGISTRY_PASSWORD": PASSWORD}
    done = mlrepro("release", "--verify", "--sign-key", str(key), "--registry", registry.host, "--repository", REPOSITORY,
                   "--tag", TAG, "--report", str(report), "--record", str(record_path), "--auth", "environment",
                   "--allow-dirty",  # the repository is being edited while the tests run
                   env=credentials)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(report.read_text())["image"]["image_id"] == image.image_id
    record = ReleaseRecord.from_json(record_path.read_text())
    try:
        reference = work / "host-reference.json"
        recorded = mlrepro("record", "--side", "host", "--out", str(reference))
        assert recorded.returncode == 0, recorded.stderr[-3000:]
        assert repo_config.kubernetes is None  # hence a config of our own for the kubernetes commands
        config = kubernetes_config(work / "pyproject.toml")
        yield {"work": work, "report": report, "record_path": record_path, "record": record, "reference": reference,
               "config": config, "stdout": done.stdout, "stderr": done.stderr, "lock": lock, "image": image, "key": key,
               "credentials": credentials}
    finally:
        engine.untag(record.reference)  # the name the push (and the pull below) gave the local image


def test_release_verify_sign_key_signs_the_report_and_attests_the_image(released, registry):
    """`release --verify --sign-key`: the report it made is trusted (and signed beside it), the SBOM and the
    signed attestation are attached, and `mlrepro check` with the public key passes before deploy."""
    from harness.attest.dsse import Envelope, verify_envelope
    from harness.attest.keys import load_verifier
    from harness.attest.sbom import sbom_packages, validate_sbom

    record = released["record"]
    assert record.report_trust == "verified-here" and record.attestation and record.sbom
    verifier = load_verifier(Path(f"{released['key']}.pub"))
    signed = verify_envelope(Envelope.from_json((released["work"] / "report.json.dsse").read_bytes()), verifier)
    assert signed == released["report"].read_bytes()

    api = registry.api()
    layer = json.loads(api.manifest(REPOSITORY, record.sbom["tag"]).body)["layers"][0]
    sbom = api.blob(REPOSITORY, layer["digest"])
    validate_sbom(sbom)
    image_packages = json.loads(released["report"].read_text())["environments"]["image"]["packages"]
    assert sbom_packages(sbom) == image_packages and len(image_packages) >= 10  # every distribution the image holds

    check = mlrepro("check", record.reference, "--key", f"{released['key']}.pub", "--lock", str(ROOT / "requirements.txt"),
                    env=released["credentials"])
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.startswith(f"PASSED: {record.reference}") and f"SBOM of {len(image_packages)} components" in check.stdout


def test_a_hand_edited_report_is_refused_and_nothing_is_pushed(released, registry, tmp_path):
    """A copy of the passing report for this very image, unsigned or edited after signing: exit 2, one line, no push."""
    record = released["record"]
    common = ("--registry", registry.host, "--repository", REPOSITORY, "--image", released["image"].image_id,
              "--auth", "environment", "--allow-dirty", "--record", str(tmp_path / "release.json"))
    loose = tmp_path / "loose.json"
    loose.write_bytes(released["report"].read_bytes())
    unsigned = error_line(mlrepro("release", *common, "--tag", "loose", "--report", str(loose), env=released["credentials"]))
    assert "is a loose file" in unsigned and "--verify" in unsigned

    edited = tmp_path / "edited.json"
    edited.write_text(released["report"].read_text().replace('"reproducible": true', '"reproducible": true ', 1))
    (tmp_path / "edited.json.dsse").write_bytes((released["work"] / "report.json.dsse").read_bytes())
    refused = error_line(mlrepro("release", *common, "--tag", "edited", "--report", str(edited), "--sign-key", str(released["key"]),
                                 env=released["credentials"]))
    assert "the report was changed after it was signed" in refused
    api = registry.api()
    assert api.manifest_digest(REPOSITORY, "loose") is None and api.manifest_digest(REPOSITORY, "edited") is None
    assert api.manifest_digest(REPOSITORY, TAG) == record.digest and not (tmp_path / "release.json").exists()


@pytest.fixture(scope="module")
def written(released):
    """`kubernetes manifests` and `kubernetes verification-job` from the release record."""
    common = ("--config", str(released["config"]), "--release", str(released["record_path"]), "--report", str(released["report"]))
    out = {}
    for command, directory in (("manifests", "k8s"), ("verification-job", "k8s-verify")):
        target = released["work"] / directory
        out[command] = (mlrepro("kubernetes", command, *common, "--out", str(target)), target)
    return out


def test_the_kubernetes_config_is_this_repositorys_project(released, repo_config):
    config = load_config(released["config"])
    assert (config.project, config.lock, config.inputs) == (repo_config.project, repo_config.lock, repo_config.inputs)
    assert (config.steps, config.artifacts, config.run) == (repo_config.steps, repo_config.artifacts, repo_config.run)
    assert config.kubernetes == KUBERNETES_TABLE


def test_the_release_record_names_the_digest_the_registry_serves(released, registry):
    record = released["record"]
    assert released["stdout"].strip() == record.reference
    assert record.reference == f"{registry.host}/{REPOSITORY}@{record.digest}"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", record.digest)
    assert registry.api().manifest_digest(REPOSITORY, TAG) == record.digest
    assert record.image_id == released["image"].image_id and record.lock_sha256 == released["lock"].sha256
    assert record.report_sha256 == hashlib.sha256(released["report"].read_bytes()).hexdigest()


def test_every_image_in_every_written_manifest_is_the_pushed_digest(written, released, registry):
    record = released["record"]
    expected_files = {"manifests": ["ml-project-job.yaml"],
                      "verification-job": ["ml-project-verify-configmap.yaml", "ml-project-verify-job.yaml"]}
    # file -> (every `image` field in it, its pods' imagePullSecrets); a ConfigMap has neither.
    expected_images = {"ml-project-job.yaml": [record.reference], "ml-project-verify-job.yaml": [record.reference],
                       "ml-project-verify-configmap.yaml": []}
    expected_secrets = {"ml-project-job.yaml": [{"name": "ml-project-registry"}],
                        "ml-project-verify-job.yaml": [{"name": "ml-project-registry"}],
                        "ml-project-verify-configmap.yaml": None}
    for command, (proc, directory) in written.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"validated against Kubernetes 1.29 (strict); image {record.reference}" in " ".join(proc.stderr.split())
        docs = documents(directory)
        assert sorted(docs) == expected_files[command]
        for name, obj in docs.items():
            # The commands validated; so does this test, independently.
            assert kubernetes_validate.validate(obj, "1.29", strict=True) == "1.29", name
            mentions = [s for s in strings_in(obj) if registry.host in s]
            assert mentions and set(mentions) == {record.reference}, (name, mentions)
            assert list(images_in(obj)) == expected_images[name]
            assert (obj.get("spec") or {}).get("template", {}).get("spec", {}).get("imagePullSecrets") == expected_secrets[name]
        assert proc.stdout.splitlines()[0] == (
            f"kubectl create secret docker-registry ml-project-registry --namespace ml --docker-server={registry.host} "
            '--docker-username="$REGISTRY_USERNAME" --docker-password="$REGISTRY_PASSWORD"')
        for text in [proc.stdout, proc.stderr, *(p.read_text() for p in directory.iterdir())]:
            assert PASSWORD not in text


def test_a_release_record_naming_a_tag_fails_the_command_and_writes_nothing(released, registry):
    record = released["record"]
    tagged = released["work"] / "release-by-tag.json"
    tagged.write_text(record.to_json().replace(record.reference, f"{registry.host}/{REPOSITORY}:{TAG}"))
    assert ReleaseRecord.from_json(tagged.read_text()).reference == f"{registry.host}/{REPOSITORY}:{TAG}"
    target = released["work"] / "k8s-by-tag"
    line = error_line(mlrepro("kubernetes", "manifests", "--config", str(released["config"]), "--release", str(tagged),
                              "--report", str(released["report"]), "--out", str(target)))
    assert "never names an image by tag" in line and f"{REPOSITORY}:{TAG}" in line
    assert not target.exists()


# The verification Job's pod, on the local engine -----------------------------------------------------


def cpu_nanos(quantity: str) -> int:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m?)", quantity)
    assert match, f"CPU quantity {quantity!r} not handled by this emulation"
    return int(float(match.group(1)) * (1_000_000 if match.group(2) else 1_000_000_000))


def memory_bytes(quantity: str) -> int:
    units = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9]+)(k|M|G|Ki|Mi|Gi|)", quantity)
    assert match, f"memory quantity {quantity!r} not handled by this emulation"
    return int(match.group(1)) * units[match.group(2)]


def pod_run_options(job: dict, configmap: dict, files_dir: Path) -> tuple[str, dict]:
    """(image, docker-py `containers.run` options) for the Job's one container, exactly as its YAML says."""
    template = job["spec"]["template"]
    pod = template["spec"]
    assert set(pod) <= {"restartPolicy", "automountServiceAccountToken", "securityContext", "containers", "volumes",
                        "imagePullSecrets"}, sorted(pod)
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert set(container) <= {"name", "image", "imagePullPolicy", "command", "args", "env", "resources",
                              "securityContext", "volumeMounts"}, sorted(container)
    volumes = {v["name"]: v for v in pod["volumes"]}
    binds: dict[str, dict] = {}
    tmpfs: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        assert set(mount) <= {"name", "mountPath", "readOnly"}, mount
        volume = volumes.pop(mount["name"])
        if "configMap" in volume:
            assert set(volume["configMap"]) == {"name", "defaultMode"}  # no items: every key is a file
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]
            files_dir.mkdir(mode=0o755)
            for key, text in configmap.get("data", {}).items():
                (files_dir / key).write_text(text)
            for key, data in configmap.get("binaryData", {}).items():
                (files_dir / key).write_bytes(base64.b64decode(data))
            for path in files_dir.iterdir():
                path.chmod(volume["configMap"]["defaultMode"])
            binds[str(files_dir)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
        else:
            assert volume == {"name": mount["name"], "emptyDir": {}}, volume
            tmpfs[mount["mountPath"]] = "rw,exec,mode=0777"  # an emptyDir: empty, writable, not noexec
    assert volumes == {}, volumes  # every volume is mounted
    security, pod_security = container["securityContext"], pod["securityContext"]
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}  # the engine's default profile too
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0 and security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert all("value" in e and set(e) == {"name", "value"} for e in container["env"])
    limits = container["resources"]["limits"]
    assert set(limits) == {"cpu", "memory"}
    options = {
        "entrypoint": container["command"],  # replaces ENTRYPOINT; the image's CMD is dropped, as Kubernetes does
        "command": container.get("args") or None,
        "environment": {e["name"]: e["value"] for e in container["env"]},
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "group_add": [str(pod_security["fsGroup"])],
        "read_only": security["readOnlyRootFilesystem"],
        "cap_drop": security["capabilities"]["drop"],
        "security_opt": ["no-new-privileges"],
        "volumes": binds,
        "tmpfs": tmpfs,
        "nano_cpus": cpu_nanos(limits["cpu"]),
        "mem_limit": memory_bytes(limits["memory"]),
        "memswap_limit": memory_bytes(limits["memory"]),
        "network_mode": "none",
    }
    return container["image"], options


@pytest.fixture(scope="module")
def pod(written, released, registry, engine):
    """The verification Job's pod run on the engine: (exit code, log, container config, the Job, the ConfigMap)."""
    proc, directory = written["verification-job"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = documents(directory)
    job, configmap = docs["ml-project-verify-job.yaml"], docs["ml-project-verify-configmap.yaml"]
    record = released["record"]
    image, options = pod_run_options(job, configmap, released["work"] / "configmap-files")
    # The node pulls the image by digest (imagePullPolicy IfNotPresent: the engine may already have it).
    assert engine.pull(image, auth_config=registry.credentials().auth_config()) == record.image_id
    container = engine.client.containers.run(image, detach=True, labels={**owner_labels("kubernetes-pod"), **TEST_LABEL},
                                             **options)
    try:
        status = container.wait(timeout=int(job["spec"]["activeDeadlineSeconds"]))
        log = container.logs(stdout=True, stderr=True).decode("utf-8")  # what `kubectl logs` shows: both streams
        config = container.attrs["Config"]
        container.reload()
        host_config = container.attrs["HostConfig"]
    finally:
        container.remove(force=True)
    log_path = released["work"] / "ml-project-verify.log"
    log_path.write_text(log)
    return {"status": status["StatusCode"], "log": log, "log_path": log_path, "config": config, "host_config": host_config,
            "job": job, "configmap": configmap, "image": image}


def test_the_pod_runs_the_jobs_command_unchanged_in_the_released_image(pod, released):
    (container,) = pod["job"]["spec"]["template"]["spec"]["containers"]
    assert pod["image"] == released["record"].reference
    assert pod["config"]["Image"] == released["record"].reference
    assert pod["config"]["Entrypoint"] == container["command"] and not pod["config"]["Cmd"]
    assert container["command"] == ["python", "/etc/mlrepro/mlrepro-runner.py", "/etc/mlrepro/mlrepro-run.json"]
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {"/tmp": False, "/etc/mlrepro": True}
    assert pod["host_config"]["ReadonlyRootfs"] is True and pod["config"]["User"] == "10001:10001"
    assert pod["host_config"]["CapDrop"] == ["ALL"]
    env = dict(item.split("=", 1) for item in pod["config"]["Env"])
    assert {e["name"]: e["value"] for e in container["env"]}.items() <= env.items()
    assert {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS"} <= env.keys()
    run = json.loads(pod["configmap"]["data"]["mlrepro-run.json"])
    assert run["image_id"] == released["record"].image_id and run["lock_sha256"] == released["lock"].sha256
    assert pod["status"] == 0, pod["log"][-3000:]
    assert [line for line in pod["log"].splitlines() if line.startswith("mlrepro: step ")] == [
        "mlrepro: step train", "mlrepro: step predict"]
    assert pod["log"].splitlines()[-1] == END


def test_the_pods_log_collected_against_the_host_reference_is_reproducible(pod, released):
    reference = load_reference(released["reference"])
    assert reference.where == "host" and reference.lock_sha256 == released["lock"].sha256
    report_path = released["work"] / "collected.json"
    proc = mlrepro("kubernetes", "collect", "--config", str(released["config"]), "--release", str(released["record_path"]),
                   "--report", str(released["report"]), "--logs", str(pod["log_path"]), "--against", str(released["reference"]),
                   "--json", str(report_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    report = json.loads(report_path.read_text())
    assert report["reproducible"] is True
    assert report["reference_sha256"] == reference.sha256 == hashlib.sha256(released["reference"].read_bytes()).hexdigest()
    assert (report["image"]["tag"], report["image"]["image_id"]) == (released["record"].reference, released["record"].image_id)
    assert {a["path"]: a["status"] for a in report["artifacts"]} == {
        "predictions.csv": "identical", "metrics.json": "identical", "manifest.json": "identical"}
    # The Job pins each thread variable the verification ran unset to its pool's size; the reference has it unset:
    # a note, not drift; the pools themselves agree.
    (container,) = pod["job"]["spec"]["template"]["spec"]["containers"]
    verified_env = json.loads(released["report"].read_text())["environments"]["image"]["env"]
    pinned = {e["name"] for e in container["env"] if e["name"] in THREAD_VARIABLES and e["name"] not in verified_env}
    assert {d["subject"]: d["severity"] for d in report["differences"] if d["category"] == "env"} == dict.fromkeys(pinned, "note")
    assert [d for d in report["differences"] if d["category"] == "threads"] == []
    assert report["verdict"].startswith(f"REPRODUCIBLE: image {released['record'].reference} == reference sha256:")
    assert report["verdict"] in " ".join(proc.stdout.split())


def frame_of(log: str) -> tuple[str, int, list[str], int]:
    """(stated sha256, stated length, base64 lines, index of the header line) of the log's one result frame."""
    lines = log.split("\n")
    (start,) = [i for i, line in enumerate(lines) if line.startswith(BEGIN + " ")]
    _, digest, length = lines[start].split(" ")
    end = lines.index(END, start)
    return digest, int(length), lines[start + 1:end], start


def test_a_truncated_or_altered_log_is_refused_naming_the_checksum(pod, released):
    log = pod["log"]
    digest, length, body, start = frame_of(log)
    bundle = base64.b64decode("".join(body))
    assert (hashlib.sha256(bundle).hexdigest(), len(bundle)) == (digest, length)  # the log as the pod wrote it is intact

    lines = log.split("\n")
    truncated = "\n".join(lines[:start + 1 + len(body) // 2]) + "\n"  # cut mid-bundle, as a rotated log would be
    position = len(bundle) // 2
    altered_bundle = bundle[:position] + bytes([bundle[position] ^ 0x01]) + bundle[position + 1:]
    text = base64.b64encode(altered_bundle).decode("ascii")
    altered_body = [text[i:i + LINE] for i in range(0, len(text), LINE)]
    assert len(altered_body) == len(body) and sum(a != b for a, b in zip(altered_body, body)) == 1
    altered = "\n".join([*lines[:start + 1], *altered_body, *lines[start + 1 + len(body):]])
    cases = {
        "truncated": (truncated, f"is truncated (no {END} line)"),
        "altered": (altered, f"found sha256:{hashlib.sha256(altered_bundle).hexdigest()} ({length} bytes)"),
    }
    for name, (content, needle) in cases.items():
        log_path = released["work"] / f"{name}.log"
        log_path.write_text(content)
        report_path = released["work"] / f"{name}-report.json"
        proc = mlrepro("kubernetes", "collect", "--config", str(released["config"]), "--release", str(released["record_path"]),
                       "--report", str(released["report"]), "--logs", str(log_path), "--against", str(released["reference"]),
                       "--json", str(report_path))
        line = error_line(proc)
        assert f"checksum sha256:{digest} ({length} bytes)" in line and needle in line, (name, line)
        assert not report_path.exists(), name
