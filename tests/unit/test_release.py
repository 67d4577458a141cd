"""Release (issue 7), without Docker: policy, push-stream scanning, records, secrets, auth providers,
and `release()` end to end through the fake engine and its in-memory registry (`tests/fakes.py`).

The ACR token exchange runs against a local HTTP server implementing ACR's
documented /oauth2/exchange and /oauth2/token endpoints (and a registry's /v2/
manifest endpoint behind a Bearer challenge); no Azure, no boto3 needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.compare import Difference
from harness.docker.registry_stream import LayerProgress, RegistryStreamError, scan_registry_stream
from harness.errors import EngineError, MlreproError
from harness.git import state as git_state
from harness.release import (
    AcrCliAuth,
    AcrEntraAuth,
    Credentials,
    DockerConfigAuth,
    EcrAuth,
    EnvironmentAuth,
    GitState,
    Manifest,
    PushError,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
    ReleaseRecord,
    ReleaseRefused,
    ReleaseTarget,
    StaticAuth,
    TagCollision,
    auth_for,
    decide_tag,
    read_report,
    redact,
    release,
    release_project,
    release_refusals,
    verification_manifest,
    verification_tag,
    write_record,
)
from harness.release.auth import decode_ecr_authorization
from harness.release.client import base_url, parse_challenge
from harness.release.errors import from_stream_error
from harness.release.manifest import MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, parse_manifest
from harness.release.secrets import ACR_TOKEN_USER, Redactor
from harness.report import ImageInfo, Report

from fakes import FakeEngine, FakeRegistry

IMAGE_ID = "sha256:" + "a" * 64
OTHER_ID = "sha256:" + "b" * 64
REVISION = "c" * 40
LOCK = "d" * 64
TARGET = ReleaseTarget("myreg.azurecr.io", "ml/model", "1.4.0")
SECRET = "s3cret-Passw0rd!"


def report_for(image_id: str = IMAGE_ID, *, drift: bool = False) -> Report:
    differences = (Difference("package", "numpy", "numpy: lock 2.0.0, image 2.1.0", "drift"),) if drift else ()
    return Report(project="p", image=ImageInfo("mlrepro/p:0123", image_id, "e" * 64, "python:3.11", OTHER_ID),
                  lock_sha256=LOCK, environments={}, differences=differences, artifacts=())


def refusals(*, report=None, image_id=IMAGE_ID, labels=None, git=GitState(REVISION), allow_dirty=False, problem=None):
    return release_refusals(image_id=image_id, labels=labels or {}, report=report, report_problem=problem,
                            report_path="out/report.json", git=git, allow_dirty=allow_dirty)


# Policy ---------------------------------------------------------------------------------------


def test_a_passing_report_for_this_image_on_a_clean_tree_is_released():
    labels = {"org.opencontainers.image.revision": REVISION, "io.mlrepro.lock-sha256": LOCK}
    assert refusals(report=report_for(), labels=labels) == ()


def test_no_report_is_refused_with_the_command_that_makes_one():
    (reason,) = refusals(report=None)
    assert "no verification report at out/report.json" in reason and "mlrepro verify --json out/report.json" in reason


def test_a_report_for_another_image_is_refused():
    (reason,) = refusals(report=report_for(OTHER_ID))
    assert OTHER_ID in reason and IMAGE_ID in reason and "changed or was never verified" in reason


def test_a_report_with_drift_is_refused():
    (reason,) = refusals(report=report_for(drift=True))
    assert "found drift" in reason and "numpy" in reason


def test_a_lock_label_that_disagrees_with_the_report_is_refused():
    (reason,) = refusals(report=report_for(), labels={"io.mlrepro.lock-sha256": "f" * 64})
    assert "io.mlrepro.lock-sha256" in reason


@pytest.mark.parametrize("git, labels, needle", [
    (GitState(REVISION, ("harness/x.py", "new.txt")), {}, "uncommitted changes (harness/x.py, new.txt)"),
    (GitState(None), {}, "not a git repository"),
    (GitState(REVISION), {"org.opencontainers.image.revision": "9" * 40}, "built from revision 999999999999"),
])
def test_dirty_or_unknown_source_is_refused_unless_allowed(git, labels, needle):
    (reason,) = refusals(report=report_for(), git=git, labels=labels)
    assert needle in reason and "--allow-dirty" in reason
    assert refusals(report=report_for(), git=git, labels=labels, allow_dirty=True) == ()


def test_allow_dirty_never_overrides_the_verification():
    assert len(refusals(report=report_for(OTHER_ID), git=GitState(None), allow_dirty=True)) == 1


def manifest(config: str | None, media_type: str = MEDIA_DOCKER_MANIFEST) -> Manifest:
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, **({"config": {"digest": config}} if config else {"manifests": []})}).encode()
    return parse_manifest(body, media_type)


def test_a_free_tag_is_pushed_and_the_same_image_again_is_a_no_op():
    assert decide_tag(TARGET, IMAGE_ID, None) == "push"
    assert decide_tag(TARGET, IMAGE_ID, manifest(IMAGE_ID)) == "already-released"


def test_a_tag_naming_another_image_is_never_moved():
    remote = manifest(OTHER_ID)
    with pytest.raises(TagCollision) as caught:
        decide_tag(TARGET, IMAGE_ID, remote)
    message = str(caught.value)
    assert TARGET.ref in message and remote.digest in message and OTHER_ID in message and "new tag" in message


def test_a_tag_naming_a_multi_platform_list_is_a_collision():
    with pytest.raises(TagCollision, match="index/list"):
        decide_tag(TARGET, IMAGE_ID, manifest(None, MEDIA_DOCKER_LIST))


@pytest.mark.parametrize("kwargs, name", [
    ({"registry": "https://myreg.azurecr.io"}, "registry="),
    ({"repository": "ML/Model"}, "repository="),
    ({"tag": "-bad"}, "tag="),
    ({"tag": "x" * 129}, "tag="),
])
def test_target_names_are_checked_before_anything_runs(kwargs, name):
    with pytest.raises(MlreproError, match=name):
        ReleaseTarget(**{"registry": "myreg.azurecr.io", "repository": "ml/model", "tag": "1.0", **kwargs})


def test_target_references():
    assert TARGET.ref == "myreg.azurecr.io/ml/model:1.4.0"
    assert TARGET.by_digest("sha256:" + "0" * 64) == "myreg.azurecr.io/ml/model@sha256:" + "0" * 64
    assert ReleaseTarget("127.0.0.1:5000", "a/b", "v1").ref == "127.0.0.1:5000/a/b:v1"


# The verification report artifact ---------------------------------------------------------------


def test_the_report_artifact_is_deterministic_and_points_at_the_image():
    subject = {"mediaType": MEDIA_DOCKER_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 528}
    report = b'{"reproducible": true}\n'
    body, config = verification_manifest(report, subject)
    assert verification_manifest(report, subject) == (body, config)
    data = json.loads(body)
    assert data["subject"] == subject
    assert data["artifactType"] == "application/vnd.mlrepro.verification-report.v1+json"
    assert data["layers"][0]["digest"] == "sha256:" + hashlib.sha256(report).hexdigest()
    assert data["annotations"]["io.mlrepro.report-sha256"] == hashlib.sha256(report).hexdigest()
    assert data["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                              "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}
    tag = verification_tag(subject["digest"])
    assert tag == "sha256-" + "1" * 64 + ".verification"
    ReleaseTarget("r.io", "a", tag)  # a valid tag


# Push streams: failures arrive as errorDetail lines inside an HTTP 200 ----------------------------

OK_STREAM = [
    {"status": "The push refers to repository [127.0.0.1:5999/try/base]"},
    {"status": "Preparing", "progressDetail": {}, "id": "ebde4d6cc604"},
    {"status": "Waiting", "progressDetail": {}, "id": "5f70bf18a086"},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 2048}, "progress": "[=>  ]", "id": "ebde4d6cc604"},
    {"status": "Pushing", "progressDetail": {"current": 2048, "total": 2048}, "progress": "[====]", "id": "ebde4d6cc604"},
    {"status": "Pushed", "progressDetail": {}, "id": "ebde4d6cc604"},
    {"status": "Layer already exists", "progressDetail": {}, "id": "5f70bf18a086"},
    {"status": "1: digest: sha256:8667ca40f746f08d64f84526e4388b5986f840e7bce509964d63ad57f0dbf572 size: 528"},
    {"progressDetail": {}, "aux": {"Tag": "1", "Digest": "sha256:8667ca40f746f08d64f84526e4388b5986f840e7bce509964d63ad57f0dbf572", "Size": 528}},
]


def test_the_digest_comes_from_the_final_aux_line_and_every_layer_reports_progress():
    events: list[LayerProgress] = []
    outcome = scan_registry_stream(OK_STREAM, action="push of x", on_layer=events.append)
    assert outcome.digest == "sha256:8667ca40f746f08d64f84526e4388b5986f840e7bce509964d63ad57f0dbf572"
    assert LayerProgress("ebde4d6cc604", "Pushing", 512, 2048) in events
    assert [e.status for e in events if e.layer == "5f70bf18a086"] == ["Waiting", "Layer already exists"]


def test_without_aux_the_status_line_digest_is_used_and_without_either_there_is_none():
    without_aux = OK_STREAM[:-1]
    assert scan_registry_stream(without_aux, action="push").digest.startswith("sha256:8667")
    assert scan_registry_stream(OK_STREAM[:6], action="push").digest is None


STREAM_FAILURES = [
    ("unauthorized: authentication required", "auth", RegistryAuthError),
    ("denied: requested access to the resource is denied", "auth", RegistryAuthError),
    ('Get "http://127.0.0.1:5998/v2/": dial tcp 127.0.0.1:5998: connect: connection refused', "unreachable", RegistryUnreachable),
    ("denied: injected failure while writing the manifest", "failed", PushError),
    ("blob upload unknown", "failed", PushError),
]


@pytest.mark.parametrize("message, kind, error", STREAM_FAILURES)
def test_an_error_line_inside_a_200_stream_raises_with_the_stream_as_evidence(message, kind, error):
    stream = [*OK_STREAM[:6], {"errorDetail": {"message": message}, "error": message}, OK_STREAM[-1]]
    with pytest.raises(RegistryStreamError) as caught:
        scan_registry_stream(stream, action="push of r/x:1")
    assert caught.value.kind == kind and isinstance(caught.value, EngineError)  # the adapter's own, neutral error
    assert "push of r/x:1 failed" in str(caught.value) and message[:40] in str(caught.value)
    assert "ebde4d6cc604: Pushed" in caught.value.evidence and "Pushing" not in caught.value.evidence

    released = from_stream_error(caught.value)  # what the release says instead: its own error, the same line and evidence
    assert type(released) is error and isinstance(released, RegistryError)
    assert (str(released), released.evidence) == (str(caught.value), caught.value.evidence)


def test_the_stream_error_messages_are_pinned():
    def failure(message: str) -> str:
        with pytest.raises(RegistryStreamError) as caught:
            scan_registry_stream([{"error": message}], action="push of r/x:1")
        return str(from_stream_error(caught.value))

    assert failure("unauthorized: authentication required") == (
        "push of r/x:1 failed: the registry refused the credentials (unauthorized: authentication required); "
        "check the user name and password or token, and its push permission")
    assert failure("dial tcp 127.0.0.1:9: connect: connection refused") == (
        "push of r/x:1 failed: the registry does not answer (dial tcp 127.0.0.1:9: connect: connection refused); "
        "check the registry address, or start it")
    assert failure("blob upload unknown") == "push of r/x:1 failed (blob upload unknown); nothing was released, fix the cause and retry"


def test_an_error_line_with_only_error_or_only_errorDetail_is_caught():
    with pytest.raises(RegistryStreamError, match="boom"):
        scan_registry_stream([{"error": "boom"}], action="push")
    with pytest.raises(RegistryStreamError, match="boom"):
        scan_registry_stream([{"errorDetail": {"message": "boom"}}], action="push")


def test_a_push_stream_without_a_digest_is_a_failure_when_one_is_required():
    with pytest.raises(RegistryStreamError) as caught:
        scan_registry_stream(OK_STREAM[:6], action="push of r/x:1", require_digest=True)
    assert caught.value.kind == "failed" and str(caught.value).startswith("the push of r/x:1 ended without a digest")
    assert "ebde4d6cc604: Pushed" in caught.value.evidence


def test_secrets_in_stream_errors_are_redacted_by_the_callers_redactor():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    stream = [{"status": f"login as {SECRET}"}, {"errorDetail": {"message": f"bad credential {SECRET} {jwt}"}, "error": f"bad credential {SECRET} {jwt}"}]
    redactor = Redactor((SECRET,))
    with pytest.raises(RegistryStreamError) as caught:
        scan_registry_stream(stream, action="push", redact=redactor)
    for text in (str(caught.value), caught.value.evidence):
        assert SECRET not in text and jwt not in text and "***" in text
    assert SECRET not in repr(redactor)


# Secrets ------------------------------------------------------------------------------------------


def test_credentials_never_show_their_password():
    creds = Credentials("alice", SECRET, source="environment")
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert creds.auth_config() == {"username": "alice", "password": SECRET}
    assert Credentials("<token>", SECRET).auth_config() == {"identitytoken": SECRET}


def test_redact_removes_passwords_basic_headers_and_jwts():
    basic = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    text = redact(f"pw={SECRET} auth=Basic {basic} bearer {jwt}", Credentials("alice", SECRET).secrets())
    assert SECRET not in text and basic not in text and jwt not in text and text.count("***") == 3


def test_the_release_record_round_trips_and_holds_no_secret(tmp_path):
    record = ReleaseRecord(
        registry="127.0.0.1:5000", repository="a/b", tag="1", digest="sha256:" + "1" * 64,
        reference="127.0.0.1:5000/a/b@sha256:" + "1" * 64, image_id=IMAGE_ID, report_sha256="2" * 64, lock_sha256=LOCK,
        git_revision=REVISION, git_dirty=False, allow_dirty=False, image_revision=REVISION,
        provenance={"org.opencontainers.image.revision": REVISION}, verification_artifact={"tag": "t", "digest": "d"},
        already_released=False, credentials_source="environment", released_at="2026-01-01T00:00:00Z",
    )
    path = tmp_path / "out" / "release.json"
    write_record(path, record)
    text = path.read_text()
    assert ReleaseRecord.from_json(text) == record
    assert set(json.loads(text)) >= {"registry", "repository", "tag", "digest", "image_id", "report_sha256", "lock_sha256",
                                     "git_revision", "released_at", "reference"}
    assert "password" not in text.lower() and [p.name for p in path.parent.iterdir()] == ["release.json"]


def test_read_report_says_what_is_wrong(tmp_path):
    assert read_report(tmp_path / "none.json")[2] == f"no verification report at {tmp_path / 'none.json'}"
    (tmp_path / "bad.json").write_text("{}")
    assert "is not a verification report" in read_report(tmp_path / "bad.json")[2]
    good = report_for()
    (tmp_path / "r.json").write_text(good.to_json())
    data, report, problem = read_report(tmp_path / "r.json")
    assert report == good and problem is None and data == good.to_json().encode()


def test_git_state_sees_revision_and_changes(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert git_state(tmp_path).revision is None
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = git_state(tmp_path)
    assert len(clean.revision) == 40 and clean.dirty == ()
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "a.txt").write_text("changed")
    assert sorted(git_state(tmp_path).dirty) == ["a.txt", "b.txt"]


# Auth providers -----------------------------------------------------------------------------------


def test_ecr_token_decoding():
    token = base64.b64encode(f"AWS:{SECRET}".encode()).decode()
    creds = decode_ecr_authorization({"authorizationData": [{"authorizationToken": token, "proxyEndpoint": "https://x"}]})
    assert (creds.username, creds.password, creds.source) == ("AWS", SECRET, "ecr")
    with pytest.raises(RegistryAuthError):
        decode_ecr_authorization({"authorizationData": []})


def test_missing_extras_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(RegistryAuthError, match=r"mlrepro\[aws\]"):
        EcrAuth().credentials("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    with pytest.raises(RegistryAuthError, match=r"mlrepro\[azure\]"):
        AcrEntraAuth().credentials("myreg.azurecr.io")


def test_auth_is_chosen_by_registry_and_environment():
    env = {"MLREPRO_REGISTRY_USERNAME": "u", "MLREPRO_REGISTRY_PASSWORD": SECRET}
    assert isinstance(auth_for("myreg.azurecr.io", env=env), EnvironmentAuth)
    assert isinstance(auth_for("myreg.azurecr.io", env={}), (AcrEntraAuth, AcrCliAuth))
    assert isinstance(auth_for("123456789012.dkr.ecr.us-east-1.amazonaws.com", env={}), EcrAuth)
    assert isinstance(auth_for("ghcr.io", env={}), DockerConfigAuth)
    assert auth_for("ghcr.io", "docker-config", docker_config=lambda r: ("u", SECRET)).credentials("ghcr.io").password == SECRET
    assert auth_for("ghcr.io", "anonymous").credentials("ghcr.io") is None
    with pytest.raises(RegistryAuthError, match="MLREPRO_REGISTRY_PASSWORD"):
        auth_for("ghcr.io", "environment", env={}).credentials("ghcr.io")
    with pytest.raises(RegistryAuthError, match="'nope'"):
        auth_for("ghcr.io", "nope")


def test_az_cli_token_is_used_with_the_acr_token_user():
    def fake_run(command, **kwargs):
        assert command[:6] == ["az", "acr", "login", "--name", "myreg", "--expose-token"]
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps({"accessToken": SECRET, "loginServer": "myreg.azurecr.io"}), stderr="")

    creds = AcrCliAuth(run=fake_run).credentials("myreg.azurecr.io")
    assert (creds.username, creds.password, creds.source) == (ACR_TOKEN_USER, SECRET, "az cli")


def test_registry_addresses():
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("localhost:5000") == "http://localhost:5000"
    assert base_url("myreg.azurecr.io") == "https://myreg.azurecr.io"
    assert parse_challenge('Bearer realm="https://r.io/oauth2/token",service="r.io",scope="repository:a:pull"') == (
        "bearer", {"realm": "https://r.io/oauth2/token", "service": "r.io", "scope": "repository:a:pull"})


# ACR's token exchange, against a local server speaking its documented endpoints --------------------

AAD_TOKEN = "aad-access-token-" + "x" * 20
REFRESH = "acr-refresh-token-" + "y" * 20
ACCESS = "acr-access-token-" + "z" * 20
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_DOCKER_MANIFEST, "config": {"digest": IMAGE_ID}}).encode()


class FakeAcr(BaseHTTPRequestHandler):
    """/oauth2/exchange (access_token -> refresh_token), /oauth2/token (refresh_token -> access_token), /v2/ (Bearer)."""

    calls: list = []

    def log_message(self, *args):  # quiet
        pass

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length", 0))
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        form = self._form()
        self.calls.append((self.path, form))
        host = self.headers["Host"]
        if self.path == "/oauth2/exchange":
            if form.get("grant_type") != "access_token" or form.get("access_token") != AAD_TOKEN or form.get("service") != host:
                return self._send(401, json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": f"bad token {form.get('access_token')}"}]}).encode())
            return self._send(200, json.dumps({"refresh_token": REFRESH}).encode())
        if self.path == "/oauth2/token":
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != REFRESH or form.get("service") != host:
                return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad refresh token"}]}')
            return self._send(200, json.dumps({"access_token": ACCESS}).encode())
        self._send(404)

    def do_GET(self):
        self.calls.append((self.path, dict(self.headers)))
        if self.headers.get("Authorization") != f"Bearer {ACCESS}":
            host = self.headers["Host"]
            challenge = f'Bearer realm="http://{host}/oauth2/token",service="{host}",scope="repository:ml/model:pull"'
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        if self.path == "/v2/ml/model/manifests/1.4.0":
            digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
            return self._send(200, MANIFEST, {"Content-Type": MEDIA_DOCKER_MANIFEST, "Docker-Content-Digest": digest})
        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    do_HEAD = do_GET


@pytest.fixture
def fake_acr():
    FakeAcr.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAcr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class FakeEntraCredential:
    """What azure-identity's credentials offer: get_token(scope) -> object with .token."""

    def __init__(self, token: str) -> None:
        self.token, self.scopes = token, []

    def get_token(self, *scopes):
        self.scopes.extend(scopes)
        return type("AccessToken", (), {"token": self.token, "expires_on": 0})()


def test_entra_token_is_exchanged_for_an_acr_refresh_token_then_an_access_token(fake_acr):
    credential = FakeEntraCredential(AAD_TOKEN)
    creds = AcrEntraAuth(credential=credential, tenant="tenant-1").credentials(fake_acr)
    assert (creds.username, creds.password, creds.source) == (ACR_TOKEN_USER, REFRESH, "entra")
    assert credential.scopes == ["https://management.azure.com/.default"]
    path, form = FakeAcr.calls[0]
    assert path == "/oauth2/exchange"
    assert form == {"grant_type": "access_token", "service": fake_acr, "tenant": "tenant-1", "access_token": AAD_TOKEN}

    found = RegistryClient(fake_acr, creds).manifest("ml/model", "1.4.0")
    assert found.config_digest == IMAGE_ID
    token_calls = [form for path, form in FakeAcr.calls if path == "/oauth2/token"]
    assert token_calls == [{"grant_type": "refresh_token", "service": fake_acr, "scope": "repository:ml/model:pull", "refresh_token": REFRESH}]
    assert RegistryClient(fake_acr, creds).manifest("ml/model", "2.0") is None


def test_every_call_exchanges_a_fresh_token(fake_acr):
    auth = AcrEntraAuth(credential=FakeEntraCredential(AAD_TOKEN))
    auth.credentials(fake_acr)
    auth.credentials(fake_acr)
    assert [path for path, _ in FakeAcr.calls].count("/oauth2/exchange") == 2


def test_a_rejected_entra_token_is_an_auth_error_that_does_not_echo_it(fake_acr):
    wrong = "wrong-aad-token-" + "q" * 20
    with pytest.raises(RegistryAuthError) as caught:
        AcrEntraAuth(credential=FakeEntraCredential(wrong)).credentials(fake_acr)
    assert "/oauth2/exchange refused the token (HTTP 401" in str(caught.value)
    assert wrong not in str(caught.value) and "***" in str(caught.value)


def test_a_rejected_refresh_token_is_an_auth_error(fake_acr):
    with pytest.raises(RegistryAuthError) as caught:
        RegistryClient(fake_acr, Credentials(ACR_TOKEN_USER, "stale-refresh-token")).manifest("ml/model", "1.4.0")
    assert "stale-refresh-token" not in str(caught.value)


def test_an_unreachable_registry_is_named():
    with pytest.raises(RegistryUnreachable, match="nothing answers at http://127.0.0.1:9"):
        RegistryClient("127.0.0.1:9", None, timeout=2).manifest("a", "b")


# release() end to end, through the fake engine and its in-memory registry (no Docker) ---------------

HOST = "registry.test:5000"
LABELS = {"org.opencontainers.image.title": "fake", "io.mlrepro.lock-sha256": LOCK}
CREDENTIALS = Credentials("releaser", SECRET, source="test")


@pytest.fixture
def tree(tmp_path) -> Path:
    """A committed git tree to release from."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "README").write_text("source\n")
    for args in (["init", "-q"], ["add", "README"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "src"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


@pytest.fixture
def fake() -> FakeEngine:
    engine = FakeEngine()
    engine.local_id = engine.add_image("mlrepro/p:0123", LABELS)
    return engine


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    """The releaser's key: reports are trusted only when signed by it (or verified in the same process)."""
    from harness.attest.keys import generate_key

    return generate_key(tmp_path_factory.mktemp("keys") / "release.pem")


SIGNER = None  # set by the autouse fixture below, for the helpers


@pytest.fixture(autouse=True)
def _signer(signing_key, monkeypatch):
    monkeypatch.setitem(globals(), "SIGNER", signing_key)


def write_report(path: Path, image_id: str, *, sign: bool = True, **kwargs) -> Path:
    """A report for `image_id`, signed by the test key (`sign=False`: a loose file)."""
    from harness.attest.reports import write_signature

    text = report_for(image_id, **kwargs).to_json()
    path.write_text(text)
    if sign:
        write_signature(path, text.encode(), SIGNER)
    return path


def fake_release(engine: FakeEngine, tree: Path, tmp_path: Path, *, image_id: str | None = None, tag: str = "1.4.0",
                 record: str = "release.json", **options) -> ReleaseRecord:
    report = tmp_path / "report.json"
    if not report.exists():
        write_report(report, image_id or engine.local_id)
    options.setdefault("auth", StaticAuth(CREDENTIALS))
    options.setdefault("report_key", SIGNER.verifier())
    return release(ReleaseTarget(HOST, "ml/model", tag), image="mlrepro/p:0123", report_path=report, root=tree, engine=engine,
                   record_path=tmp_path / record, registry_client=engine.registry.client, clock=lambda: "2026-01-01T00:00:00Z",
                   **options)


def test_fake_a_passing_report_is_released_confirmed_and_recorded(fake, tree, tmp_path):
    events, messages = [], []
    record = fake_release(fake, tree, tmp_path, on_layer=events.append, progress=messages.append)
    registry = fake.registry
    requests_made = [call[0] for call in registry.calls]

    assert record.digest == registry.tags[("ml/model", "1.4.0")] and record.image_id == fake.local_id
    assert registry.manifest("ml/model", record.digest).config_digest == fake.local_id
    assert record.reference == f"{HOST}/ml/model@{record.digest}" and not record.already_released
    assert (record.git_revision, record.git_dirty) == (git_state(tree).revision, False)
    assert record.provenance == LABELS and record.credentials_source == "test"
    assert ReleaseRecord.from_json((tmp_path / "release.json").read_text()) == record
    assert SECRET not in (tmp_path / "release.json").read_text()
    assert registry.credentials == [CREDENTIALS]

    # Sequence: tag free -> tag, push, untag the push's own name -> confirmed -> report artifact beside the image.
    ref = f"{HOST}/ml/model:1.4.0"
    assert fake.image_calls == [("tag", ref), ("push", ref), ("untag", ref)]
    assert fake.image_id(ref) is None and fake.image_id("mlrepro/p:0123") == fake.local_id
    assert requests_made == ["manifest", "push", "manifest", "manifest_digest", "manifest", "upload_blob", "upload_blob",
                             "put_manifest"]
    assert record.report_trust == f"signed:{SIGNER.keyid}" and (record.attestation, record.sbom) == (None, None)  # no signer given
    artifact = registry.manifest("ml/model", verification_tag(record.digest))
    assert artifact.digest == record.verification_artifact["digest"]
    assert json.loads(artifact.body)["subject"]["digest"] == record.digest
    assert registry.blobs[("ml/model", json.loads(artifact.body)["layers"][0]["digest"])] == (tmp_path / "report.json").read_bytes()
    assert LayerProgress(record.digest[7:19], "Pushing", 2048, 4096) in events
    assert any("release record written" in m for m in messages)


def test_fake_credentials_come_from_the_docker_config_by_default(fake, tree, tmp_path, monkeypatch):
    monkeypatch.delenv("MLREPRO_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("MLREPRO_REGISTRY_PASSWORD", raising=False)
    fake.docker_config[HOST] = ("bob", SECRET)
    record = fake_release(fake, tree, tmp_path, auth=None)
    assert record.credentials_source == "docker config" and fake.registry.credentials[0].username == "bob"


@pytest.mark.parametrize("case, needle", [
    ("another image", "changed or was never verified"),
    ("drift", "found drift"),
    ("no report", "no verification report at"),
    ("dirty tree", "uncommitted changes (new.txt)"),
])
def test_fake_an_unverified_image_is_refused_before_anything_is_pushed(fake, tree, tmp_path, case, needle):
    report = tmp_path / "report.json"
    if case == "another image":
        write_report(report, OTHER_ID)
    elif case == "drift":
        write_report(report, fake.local_id, drift=True)
    elif case == "no report":
        report.mkdir()  # exists, so fake_release writes none; it is no file either
    else:
        write_report(report, fake.local_id)
        (tree / "new.txt").write_text("x")
    with pytest.raises(ReleaseRefused, match=re.escape(needle) if case != "no report" else "verification report"):
        fake_release(fake, tree, tmp_path)
    assert fake.image_calls == [] and fake.registry.calls == [] and fake.registry.credentials == []  # nothing contacted
    assert not (tmp_path / "release.json").exists()


def test_fake_a_tag_naming_another_image_is_refused_and_never_moved(fake, tree, tmp_path):
    theirs = fake.registry.store_image("ml/model", "1.4.0", OTHER_ID)
    with pytest.raises(TagCollision) as caught:
        fake_release(fake, tree, tmp_path)
    assert theirs in str(caught.value) and OTHER_ID in str(caught.value) and "release under a new tag" in str(caught.value)
    assert fake.registry.tags[("ml/model", "1.4.0")] == theirs
    assert fake.image_calls == [] and [c[0] for c in fake.registry.calls] == ["manifest"]  # looked, did not push
    assert not (tmp_path / "release.json").exists()


def test_fake_re_releasing_the_same_digest_is_a_no_op(fake, tree, tmp_path):
    first = fake_release(fake, tree, tmp_path, record="first.json")
    calls_before = len(fake.registry.calls)
    events, messages = [], []
    again = fake_release(fake, tree, tmp_path, record="again.json", on_layer=events.append, progress=messages.append)
    assert again.already_released and not first.already_released
    assert (again.digest, again.verification_artifact) == (first.digest, first.verification_artifact)
    assert fake.pushed == [f"{HOST}/ml/model:1.4.0"] and events == []  # pushed once, the first time only
    assert "push" not in [c[0] for c in fake.registry.calls[calls_before:]]
    assert "upload_blob" not in [c[0] for c in fake.registry.calls[calls_before:]]  # the report artifact was already there
    assert any("re-release is a no-op" in m for m in messages)
    assert ReleaseRecord.from_json((tmp_path / "again.json").read_text()) == again


@pytest.mark.parametrize("message, kind, error", STREAM_FAILURES)
def test_fake_a_push_stream_error_becomes_the_release_error_and_nothing_is_recorded(fake, tree, tmp_path, message, kind, error):
    fake.push_stream = [*OK_STREAM[:6], {"errorDetail": {"message": f"{message} ({SECRET})"}, "error": f"{message} ({SECRET})"}]
    with pytest.raises(error) as caught:
        fake_release(fake, tree, tmp_path)
    ref = f"{HOST}/ml/model:1.4.0"
    assert type(caught.value) is error and f"push of {ref} failed" in str(caught.value) and message[:40] in str(caught.value)
    assert "ebde4d6cc604: Pushed" in caught.value.evidence  # it failed midway, and the stream says so
    assert SECRET not in str(caught.value) + caught.value.evidence  # the release's redactor reached the adapter
    assert not (tmp_path / "release.json").exists() and fake.pushed == []
    assert ("ml/model", "1.4.0") not in fake.registry.tags
    assert fake.image_calls[-1] == ("untag", ref) and fake.image_id(ref) is None  # the push's own name is gone again


def test_fake_a_push_to_a_registry_that_is_down_is_unreachable(fake, tree, tmp_path):
    with pytest.raises(RegistryUnreachable, match="nothing answers at http://127.0.0.1:9"):
        release(ReleaseTarget("127.0.0.1:9", "ml/model", "1"), image=fake.local_id, report_path=write_report(tmp_path / "r.json", fake.local_id),
                root=tree, engine=fake, auth=StaticAuth(None), registry_client=fake.registry.client, record_path=tmp_path / "release.json",
                report_key=SIGNER.verifier())
    assert not (tmp_path / "release.json").exists()


def test_fake_a_push_the_registry_does_not_hold_is_not_claimed(fake, tree, tmp_path):
    """The stream's digest is checked against the registry's own API before anything is recorded."""
    digest = "sha256:" + "9" * 64
    fake.push_stream = [*OK_STREAM[:6], {"aux": {"Tag": "1.4.0", "Digest": digest, "Size": 1}}]
    with pytest.raises(RegistryError, match=f"the push reported {digest} but {HOST} has no such manifest"):
        fake_release(fake, tree, tmp_path)
    assert not (tmp_path / "release.json").exists()


def _tiny_release_project(tmp_path: Path, fake: FakeEngine):
    """A committed tiny project (tests.cli_projects) and its configuration; the fake image labeled with its lock."""
    from harness.config import load_config
    from harness.lock import read_lock
    from tests.cli_projects import tiny_project

    root = tiny_project(tmp_path / "proj", "tinyproj")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "src"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    config = load_config(root / "pyproject.toml")
    fake.images[fake.local_id]["Config"]["Labels"]["io.mlrepro.lock-sha256"] = read_lock(config.lock).sha256
    return config


def _verified_report(config, image_id: str, *, packages=None) -> Report:
    """What verify() would report for the tiny project: its settings, its lock, the image's packages."""
    from harness.lock import read_lock
    from harness.settings import verified_settings

    return Report(project=config.project, image=ImageInfo("mlrepro/p:0123", image_id, "e" * 64, "python:3.11", OTHER_ID),
                  lock_sha256=read_lock(config.lock).sha256, environments={"image": {"packages": packages or {"tiny": "1.0"}}},
                  differences=(), artifacts=(), settings=verified_settings(config))


def test_fake_release_project_verifies_first_and_both_files_are_written_whole(fake, tmp_path, monkeypatch):
    """One atomic writer: a leftover `.report.json.tmp` (the old fixed temp name; here a directory, so it
    cannot be overwritten) does not stop the report or the record from being written, and stays untouched.
    The report made in this process is trusted without a signature (and signed when a key is given)."""
    import harness.verify
    from harness.attest.dsse import Envelope, verify_envelope

    config = _tiny_release_project(tmp_path, fake)
    verified = _verified_report(config, fake.local_id)
    monkeypatch.setattr(harness.verify, "verify", lambda config, *, engine, progress: verified)
    out = tmp_path / "out"
    (out / ".report.json.tmp").mkdir(parents=True)
    (out / ".release.json.tmp").write_text("another release's half-written record")
    record = release_project(config, ReleaseTarget(HOST, "ml/model", "1.4.0"), verify_first=True,
                             report_path=out / "report.json", engine=fake, auth=StaticAuth(CREDENTIALS),
                             registry_client=fake.registry.client, record_path=out / "release.json", signer=SIGNER)
    assert Report.from_json((out / "report.json").read_text()) == verified
    assert ReleaseRecord.from_json((out / "release.json").read_text()) == record
    assert record.report_sha256 == hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert record.report_trust == "verified-here" and record.attestation["keyid"] == SIGNER.keyid
    signed = verify_envelope(Envelope.from_json((out / "report.json.dsse").read_bytes()), SIGNER.verifier())
    assert signed == (out / "report.json").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [".release.json.tmp", ".report.json.tmp", "release-history.jsonl", "release.json",
                                                     "report.json", "report.json.dsse"]
    assert (out / ".release.json.tmp").read_text() == "another release's half-written record"


@pytest.mark.parametrize("case, needle", [
    ("loose", "is a loose file"),
    ("unsigned", "is not signed (no report.json.dsse beside it)"),
    ("edited", "is valid but for other bytes than"),
    ("other key", "does not verify"),
])
def test_fake_a_report_file_is_trusted_only_with_a_valid_signature(fake, tmp_path, case, needle):
    """A hand-edited report that says "passing" for this very image is refused; nothing is contacted."""
    from harness.attest.keys import generate_key
    from harness.attest.reports import write_signature

    config = _tiny_release_project(tmp_path, fake)
    report = tmp_path / "report.json"
    text = _verified_report(config, fake.local_id).to_json()
    report.write_text(text)
    key = SIGNER
    if case == "edited":
        write_signature(report, text.encode(), SIGNER)
        report.write_text(text.replace('"python:3.11"', '"python:3.11-edited"'))
    elif case == "other key":
        write_signature(report, text.encode(), generate_key(tmp_path / "other.pem"))
    with pytest.raises(ReleaseRefused, match=re.escape(needle)):
        release_project(config, ReleaseTarget(HOST, "ml/model", "1.4.0"), image="mlrepro/p:0123", report_path=report, engine=fake,
                        auth=StaticAuth(CREDENTIALS), registry_client=fake.registry.client, record_path=tmp_path / "release.json",
                        signer=None if case == "loose" else key)
    assert fake.image_calls == [] and fake.registry.calls == []
    assert not (tmp_path / "release.json").exists()


@pytest.mark.parametrize("change, needle", [
    ("step", "the configuration changed since"),
    ("lock", "requirements.txt changed since verification"),
    ("extra package", "extra 1.0 is in the image but not in the lock"),
    ("other version", "tiny 1.1 is in the image but the lock pins 1.0"),
])
def test_fake_release_refuses_what_the_report_did_not_verify(fake, tmp_path, change, needle):
    """Verified, then the step changed (and back is fine); the lock edited; a package outside the lock in the image:
    each refused before anything is pushed, with a line naming it (the SBOM's rule ignores compare.ignore_packages)."""
    import dataclasses

    from harness.attest.reports import write_signature
    from harness.config import load_config

    config = _tiny_release_project(tmp_path, fake)
    packages = {"tiny": "1.0"}
    if change == "extra package":
        packages["extra"] = "1.0"
        config = dataclasses.replace(config, compare=dataclasses.replace(config.compare, ignore_packages=frozenset({"extra", "pip"})))
    if change == "other version":
        packages["tiny"] = "1.1"
    report = tmp_path / "report.json"
    text = _verified_report(config, fake.local_id, packages=packages).to_json()
    report.write_text(text)
    write_signature(report, text.encode(), SIGNER)
    if change == "step":
        pyproject = config.root / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('"job.py"', '"job2.py"'))
        config = load_config(pyproject)
    if change == "lock":
        config.lock.write_text(config.lock.read_text() + "# edited\n")
    with pytest.raises(ReleaseRefused, match=re.escape(needle)):
        release_project(config, ReleaseTarget(HOST, "ml/model", "1.4.0"), image="mlrepro/p:0123", report_path=report, engine=fake,
                        auth=StaticAuth(CREDENTIALS), registry_client=fake.registry.client, record_path=tmp_path / "release.json",
                        signer=SIGNER, allow_dirty=True)
    assert fake.image_calls == [] and fake.registry.calls == []


def test_concurrent_record_writes_each_leave_a_complete_file(tmp_path):
    """Two writers at once (two releases sharing out/): the file is always one whole record, never a mix or a crash."""
    base = dict(registry=HOST, repository="a/b", tag="1", digest="sha256:" + "1" * 64, reference=f"{HOST}/a/b@sha256:" + "1" * 64,
                image_id=IMAGE_ID, report_sha256="2" * 64, lock_sha256=LOCK, git_revision=REVISION, git_dirty=False,
                allow_dirty=False, image_revision=None, verification_artifact=None, already_released=False,
                credentials_source="test", released_at="2026-01-01T00:00:00Z")
    records = [ReleaseRecord(**base, provenance={"n": str(i) * 5000}) for i in range(2)]
    path = tmp_path / "release.json"
    errors: list[BaseException] = []

    def writer(record: ReleaseRecord) -> None:
        try:
            for _ in range(100):
                write_record(path, record)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ReleaseRecord.from_json(path.read_text()) in records
    assert [p.name for p in tmp_path.iterdir()] == ["release.json"]


def test_the_package_exports_what_it_promises():
    import harness.release as package

    assert sorted(set(package.__all__)) == sorted(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
    assert issubclass(FakeRegistry, object) and callable(FakeRegistry().client)


# The journal and the history (issue 13: all or nothing, history appended) ------------------------------


def _interrupt_push(fake: FakeEngine, *, after_registry_took_it: bool) -> None:
    """The release killed during its push: before the registry stored anything, or after it took the tag."""
    original = fake.push

    def push(ref, **kwargs):
        if after_registry_took_it:
            original(ref, **kwargs)
        raise KeyboardInterrupt

    fake.push = push


@pytest.mark.parametrize("after, event", [(True, "completed"), (False, "rolled-back")])
def test_an_interrupted_release_is_completed_or_rolled_back_by_the_next(fake, tree, tmp_path, after, event):
    from harness.release.journal import history_path, journal_path, read_history

    record = tmp_path / "release.json"
    _interrupt_push(fake, after_registry_took_it=after)
    with pytest.raises(KeyboardInterrupt):
        fake_release(fake, tree, tmp_path)
    assert journal_path(record, HOST).is_file() and not record.exists() and read_history(record) == []
    del fake.push  # the next run's push works
    fake.tag(fake.local_id, f"{HOST}/ml/model:1.4.0")  # the push's own name, which a killed release cannot remove
    messages: list[str] = []
    second = fake_release(fake, tree, tmp_path, tag="1.5.0", progress=messages.append)
    assert fake.image_id(f"{HOST}/ml/model:1.4.0") is None  # removed when the journal was resolved
    history = read_history(record)
    assert [e["event"] for e in history] == [event, "released"] and not journal_path(record, HOST).exists()
    first = history[0]
    assert (first["tag"], first["image_id"], first["report_sha256"]) == ("1.4.0", fake.local_id, second.report_sha256)
    if after:  # what the registry took is what the history says was pushed
        assert first["digest"] == fake.registry.tags[("ml/model", "1.4.0")] == second.digest
        assert any("interrupted after its push" in m for m in messages)
    else:
        assert first["digest"] is None and ("ml/model", "1.4.0") not in fake.registry.tags
        assert any("interrupted before its push: nothing was pushed" in m for m in messages)
    assert history[1] == {"event": "released", **json.loads(second.to_json())}
    assert history_path(record).name == "release-history.jsonl"


def test_the_history_is_appended_never_rewritten(fake, tree, tmp_path):
    from harness.release.journal import history_path, read_history

    first = fake_release(fake, tree, tmp_path)
    before = history_path(tmp_path / "release.json").read_bytes()
    second = fake_release(fake, tree, tmp_path, tag="1.5.0")
    after = history_path(tmp_path / "release.json").read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 2
    assert [(e["tag"], e["digest"]) for e in read_history(tmp_path / "release.json")] == [("1.4.0", first.digest), ("1.5.0", second.digest)]
    assert ReleaseRecord.from_json((tmp_path / "release.json").read_text()) == second  # the record is the latest one


def test_a_torn_or_foreign_journal_never_blocks_a_release(fake, tree, tmp_path):
    from harness.release.journal import Journal, begin, journal_path, read_history

    record = tmp_path / "release.json"
    journal_path(record, HOST).write_text('{"schema": 1, "registry": ')  # cut short before any push
    messages: list[str] = []
    fake_release(fake, tree, tmp_path, progress=messages.append)
    assert not journal_path(record, HOST).exists() and any("unreadable" in m for m in messages)
    assert [e["event"] for e in read_history(record)] == ["released"]

    begin(record, Journal("other.example:5000", "ml/model", "9", fake.local_id, {"tag": "9"}, "2026-01-01T00:00:00Z"))
    messages.clear()
    fake_release(fake, tree, tmp_path, tag="1.6.0", progress=messages.append)
    assert journal_path(record, "other.example:5000").is_file()  # left for a release to that registry
    assert journal_path(record, "other.example:5000").name == "release.json.other.example_5000.journal"
    assert any("release.json.other.example_5000.journal; release to its registry again" in m for m in messages)
