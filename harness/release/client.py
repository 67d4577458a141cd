"""A container registry, spoken to over its HTTP API (OCI distribution spec).

Docker pushes and pulls (through `harness.docker.engine`); this module checks
what the registry really holds: which digest a tag points to, which image
config a manifest names, and it uploads the small verification-report
artifact. It needs no Docker, only `requests` (a docker-py dependency).

`RegistryAPI` is the seam the release talks through: `RegistryClient` is the
real one; the unit tests pass an in-memory registry (`tests/fakes.py`).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Any, Mapping, Protocol

import requests

from harness.release.errors import BlobAltered, RegistryAuthError, RegistryError, RegistryUnreachable
from harness.release.manifest import ACCEPT, Manifest, parse_manifest
from harness.release.secrets import ACR_TOKEN_USER, DOCKER_TOKEN_USER, Credentials, redact

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistryAPI(Protocol):
    """What a release asks of a registry (one repository's manifests and blobs); `RegistryClient` answers it over HTTP."""

    registry: str

    def manifest(self, repository: str, reference: str) -> Manifest | None: ...

    def manifest_digest(self, repository: str, reference: str) -> str | None: ...

    def upload_blob(self, repository: str, data: bytes, media_type: str) -> dict[str, Any]: ...

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str: ...

    def blob(self, repository: str, digest: str) -> bytes | None: ...

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> list[dict[str, Any]] | None: ...


def base_url(registry: str) -> str:
    """https://REGISTRY, except plain http for loopback addresses (as the Docker engine itself allows)."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return f"http://{registry}"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return f"{'http' if loopback else 'https'}://{registry}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Pure: ('bearer', {'realm':..., 'service':..., 'scope':...}) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """The registry's HTTP API for one release: token auth (Basic or Bearer), manifests, blobs.

    Bearer tokens are asked per scope and kept only for this client's life.
    With the ACR token user (00000000-...), tokens come from ACR's documented
    POST /oauth2/token refresh_token grant; otherwise from the token
    service's GET with Basic auth (distribution's token spec).
    """

    def __init__(self, registry: str, credentials: Credentials | None, *, session: requests.Session | None = None,
                 url: str | None = None, timeout: float = 30) -> None:
        self.registry = registry
        self.url = url or base_url(registry)
        self._credentials = credentials
        self._session = session or requests.Session()
        self._timeout = timeout
        self._tokens: dict[str, str] = {}
        self._basic = ""
        self._secrets: list[str] = list(credentials.secrets()) if credentials else []

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # Requests with auth -----------------------------------------------------------------------

    def _send(self, method: str, url: str, *, headers: Mapping[str, str], **kwargs) -> requests.Response:
        try:
            return self._session.request(method, url, headers=dict(headers), timeout=self._timeout, allow_redirects=True, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise RegistryUnreachable(
                f"nothing answers at {self.url} ({self.redact(_first(exc))}); check the registry name and the network, or start the registry"
            ) from None

    def request(self, method: str, path: str, *, scope: str, headers: Mapping[str, str] | None = None, **kwargs) -> requests.Response:
        """`method` on `path` (or an absolute URL), answering one auth challenge; 401/403 raise RegistryAuthError."""
        url = path if path.startswith(("http://", "https://")) else f"{self.url}{path}"
        headers = dict(headers or {})
        auth = self._auth_header(scope)
        response = self._send(method, url, headers={**headers, **auth}, **kwargs)
        if response.status_code == 401 and "www-authenticate" in {k.lower() for k in response.headers}:
            scheme, params = parse_challenge(response.headers["WWW-Authenticate"])
            auth = self._answer_challenge(scheme, params, scope)
            response = self._send(method, url, headers={**headers, **auth}, **kwargs)
        if response.status_code in (401, 403):
            who = f"user {self._credentials.username!r} ({self._credentials.source})" if self._credentials else "anonymous access"
            raise RegistryAuthError(
                f"{self.registry} refused {who} for {scope} (HTTP {response.status_code}: {self.redact(_errors_text(response))}); "
                "check the user name and password or token, and that it may push to this repository"
            )
        return response

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic:  # a Basic registry asked once; answer up front from then on
            return {"Authorization": f"Basic {self._basic}"}
        return {}

    def _answer_challenge(self, scheme: str, params: Mapping[str, str], scope: str) -> dict[str, str]:
        if scheme == "basic":
            if not self._credentials:
                return {}
            self._basic = base64.b64encode(f"{self._credentials.username}:{self._credentials.password}".encode()).decode()
            return {"Authorization": f"Basic {self._basic}"}
        if scheme == "bearer" and params.get("realm"):
            token = self._bearer_token(params["realm"], params.get("service", self.registry), scope)
            self._tokens[scope] = token
            self._secrets.append(token)
            return {"Authorization": f"Bearer {token}"}
        raise RegistryError(f"{self.registry} asked for an authentication scheme mlrepro does not speak ({scheme!r}); use docker login and --auth docker-config")

    def _bearer_token(self, realm: str, service: str, scope: str) -> str:
        creds = self._credentials
        if creds and creds.username in (ACR_TOKEN_USER, DOCKER_TOKEN_USER):
            form = {"grant_type": "refresh_token", "service": service, "scope": scope, "refresh_token": creds.password}
            answer = post_form(self._session, realm, form, self._timeout, secrets=tuple(self._secrets))
        else:
            auth = (creds.username, creds.password) if creds else None
            try:
                response = self._session.get(realm, params={"service": service, "scope": scope}, auth=auth, timeout=self._timeout)
            except requests.exceptions.RequestException as exc:
                raise RegistryUnreachable(f"the token service {realm} does not answer ({self.redact(_first(exc))}); check the network") from None
            if response.status_code != 200:
                raise RegistryAuthError(
                    f"the token service of {self.registry} refused {'user ' + repr(creds.username) if creds else 'anonymous access'} "
                    f"(HTTP {response.status_code}: {self.redact(_errors_text(response))}); check the user name and password or token"
                )
            try:
                answer = response.json()
            except ValueError:
                raise RegistryError(f"the token service {realm} answered with something that is not JSON") from None
        token = answer.get("access_token") or answer.get("token")
        if not token:
            raise RegistryAuthError(f"the token service of {self.registry} answered without a token for {scope}; check your permissions")
        return token

    # The API -----------------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, or None when the registry has none."""
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", scope=f"repository:{repository}:pull",
                                headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"read the manifest {repository}:{reference}")
        manifest = parse_manifest(response.content, response.headers.get("Content-Type", ""))
        served = response.headers.get("Docker-Content-Digest")
        if _DIGEST.match(reference) and manifest.digest != reference:
            raise RegistryError(f"{self.registry} served a manifest for {reference} whose bytes hash to {manifest.digest}; the registry is corrupt or not what it claims")
        if served and _DIGEST.match(served) and served != manifest.digest:
            raise RegistryError(f"{self.registry} says {repository}:{reference} is {served} but its bytes hash to {manifest.digest}")
        return manifest

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """HEAD: the digest a tag points to (the registry's Docker-Content-Digest), or None."""
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", scope=f"repository:{repository}:pull",
                                headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"look up {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        found = self.manifest(repository, reference)  # some registries omit the header on HEAD
        return found.digest if found else None

    def blob(self, repository: str, digest: str) -> bytes | None:
        """The blob's bytes (None when absent); RegistryError when they do not hash to `digest`."""
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull")
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"read the blob {repository}@{digest}")
        found = "sha256:" + hashlib.sha256(response.content).hexdigest()
        if found != digest:
            raise BlobAltered(f"{self.registry} served {repository}@{digest} as bytes that hash to {found}: the blob was altered in the registry; do not trust it")
        return response.content

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers of `digest` (descriptors), or None when the registry has no referrers API."""
        query = f"?artifactType={artifact_type}" if artifact_type else ""
        response = self.request("GET", f"/v2/{repository}/referrers/{digest}{query}", scope=f"repository:{repository}:pull",
                                headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        if response.status_code in (404, 405, 400):  # distribution 2.x and others without the API
            return None
        self._expect(response, 200, f"list the referrers of {repository}@{digest}")
        try:
            manifests = response.json().get("manifests")
        except (ValueError, AttributeError):
            return None
        if not isinstance(manifests, list):
            return None
        found = [m for m in manifests if isinstance(m, dict)]
        return [m for m in found if not artifact_type or m.get("artifactType") == artifact_type]

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull")
        return response.status_code == 200

    def upload_blob(self, repository: str, data: bytes, media_type: str) -> dict[str, Any]:
        """Upload `data` (monolithic POST + PUT) unless present; its descriptor."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"repository:{repository}:pull,push"
        if not self.blob_exists(repository, digest):
            start = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
            self._expect(start, 202, f"start a blob upload to {repository}")
            location = start.headers.get("Location", "")
            if location.startswith("/"):
                location = f"{self.url}{location}"
            joiner = "&" if "?" in location else "?"
            done = self.request("PUT", f"{location}{joiner}digest={digest}", scope=scope, data=data,
                                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
            self._expect(done, 201, f"upload a blob to {repository}")
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag (or its digest); the digest the registry stored."""
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}", scope=f"repository:{repository}:pull,push",
                                data=body, headers={"Content-Type": media_type})
        self._expect(response, 201, f"store a manifest as {repository}:{reference}")
        expected = "sha256:" + hashlib.sha256(body).hexdigest()
        stored = response.headers.get("Docker-Content-Digest", expected)
        if stored != expected:
            raise RegistryError(f"{self.registry} stored the manifest for {repository}:{reference} as {stored}, expected {expected}")
        return stored

    def _expect(self, response: requests.Response, status: int, action: str) -> None:
        if response.status_code != status:
            raise RegistryError(f"{self.registry} would not {action} (HTTP {response.status_code}: {self.redact(_errors_text(response))})")


def post_form(session: requests.Session, url: str, form: Mapping[str, str], timeout: float, *, secrets: tuple[str, ...]) -> dict:
    """POST a form to a token endpoint (ACR's /oauth2/exchange and /oauth2/token); its JSON answer."""
    try:
        response = session.post(url, data=dict(form), timeout=timeout)
    except requests.exceptions.RequestException as exc:
        raise RegistryUnreachable(f"nothing answers at {url} ({redact(_first(exc), secrets)}); check the registry name and the network") from None
    if response.status_code in (401, 403):
        raise RegistryAuthError(f"{url} refused the token (HTTP {response.status_code}: {redact(_errors_text(response), secrets)}); check your identity's role on the registry (AcrPush)")
    if response.status_code != 200:
        raise RegistryError(f"{url} answered HTTP {response.status_code} ({redact(_errors_text(response), secrets)}); check the registry name")
    try:
        return response.json()
    except ValueError:
        raise RegistryError(f"{url} answered with something that is not JSON; check the registry name") from None


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _errors_text(response: requests.Response) -> str:
    """The registry's own error codes and messages (OCI error body), else the start of the body."""
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        text = ""
    if not text:
        text = (response.text or "").strip().replace("\n", " ")[:200] or (response.reason or "no message")
    return text


__all__ = ["RegistryAPI", "RegistryClient", "base_url", "parse_challenge", "post_form"]
