"""Secrets stay out: the build context is scanned, and host steps never see credentials."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.config import parse_config
from harness.errors import BuildError, ConfigError
from harness.image.build import refuse_secrets
from harness.image.secret_scan import scan
from harness.sides import HostSide
from harness.sides.steps import host_environment

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def context(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.mark.parametrize(("rel", "text", "reason"), [
    ("extra/.env", "AWS_REGION=eu-west-1\n", "a .env file"),
    ("keys/id_rsa", "anything", "an SSH private key"),
    (".netrc", "machine x login y password z", "a .netrc (login passwords)"),
    ("home/.aws/credentials", "[default]\n", "a credentials file (AWS and others)"),
    ("home/.docker/config.json", "{}", "Docker registry credentials"),
    ("src/settings.py", f"KEY = '''{KEY}'''", "a private key"),
    ("src/cloud.py", "ID = 'AKIAABCDEFGHIJKLMNOP'\n", "an AWS access key id"),
    ("notes.txt", "token ghp_" + "a" * 36, "a GitHub token"),
])
def test_each_kind_of_secret_is_named(tmp_path: Path, rel: str, text: str, reason: str) -> None:
    root = context(tmp_path, {rel: text, "train.py": "print('hello')\n", "data/config.json": "{}"})
    assert scan(root, [rel, "train.py", "data/config.json"]) == [type(scan(root, [rel])[0])(rel, reason)]


def test_an_allowed_path_is_not_a_finding_and_large_or_binary_files_are_not_read(tmp_path: Path) -> None:
    root = context(tmp_path, {"tests/fixture.pem": KEY, "model.skops": KEY, "big.txt": "x" * (1 << 20) + KEY})
    assert scan(root, ["tests/fixture.pem", "model.skops", "big.txt"], allowed=["tests/fixture.pem"]) == []


def project(tmp_path: Path, **build) -> object:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (tmp_path / "run.py").write_text("print('ok')\n")
    return parse_config({"steps": [{"name": "run", "command": ["python", "run.py"]}],
                         "artifacts": [{"path": "x"}], "build": build}, tmp_path)


def test_a_build_with_a_secret_in_its_context_is_refused_in_one_line(tmp_path: Path) -> None:
    config = project(tmp_path)
    context(tmp_path, {"extra/.env": "AWS_SECRET_ACCESS_KEY=abc\n"})
    with pytest.raises(BuildError) as refused:
        refuse_secrets(config)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("the build context holds a .env file: extra/.env; it would be copied into the image")
    assert "allow_secrets = ['extra/.env']" in message


def test_allow_secrets_is_normalized_and_honoured(tmp_path: Path) -> None:
    config = project(tmp_path, allow_secrets=["./extra/.env"])
    context(tmp_path, {"extra/.env": "FIXTURE=1\n"})
    assert config.build.allow_secrets == ("extra/.env",)
    refuse_secrets(config)  # allowed: no error
    with pytest.raises(ConfigError, match=r"build.allow_secrets: expected paths relative to the build context, found '../x'"):
        project(tmp_path, allow_secrets=["../x"])


def test_host_steps_never_see_credentials_unless_asked(tmp_path: Path) -> None:
    environ = {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "2", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
               "MLREPRO_REGISTRY_PASSWORD": "pw", "GITHUB_TOKEN": "ghp", "DB_PASSWORD": "x", "AZURE_CLIENT_SECRET": "y"}
    config = project(tmp_path)
    assert host_environment(config, environ) == {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "2"}
    asked = parse_config({"steps": [{"name": "run", "command": ["python", "run.py"]}], "artifacts": [{"path": "x"}],
                          "run": {"pass_env": ["AWS_*"]}}, tmp_path)
    assert host_environment(asked, environ)["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"


def test_a_real_host_step_does_not_receive_the_registry_password(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MLREPRO_REGISTRY_PASSWORD", "do-not-leak")
    with HostSide(project(tmp_path), sys.executable) as side:
        done = side.execute([sys.executable, "-c", "import os; print(os.environ.get('MLREPRO_REGISTRY_PASSWORD', 'absent'))"], timeout=30)
    assert done.output.strip() == "absent"
