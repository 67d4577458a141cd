"""A container registry, spoken to over its HTTP API (OCI distribution spec), and how to log in to it.

Docker pushes and pulls (through `harness.docker.engine`); this module checks what
the registry really holds: which digest a tag points to, which image config a
manifest names, and it uploads the small verification-report artifact. It
needs no Docker, only `requests` (a docker-py dependency).

Authentication, one provider per kind of registry (`auth_for` picks one):

==========================  ============================================================
``EnvironmentAuth``         MLREPRO_REGISTRY_USERNAME / MLREPRO_REGISTRY_PASSWORD (any
                            registry; ACR admin user or repository-scoped token)
``AcrEntraAuth``            Microsoft Entra (azure-identity ``DefaultAzureCredential``:
                            service principal from AZURE_CLIENT_ID/SECRET/TENANT_ID,
                            managed identity, ``az login``), exchanged at
                            ``/oauth2/exchange`` for an ACR refresh token
``AcrCliAuth``              ``az acr login --name NAME --expose-token``
``EcrAuth``                 boto3 ``ecr.get_authorization_token``
``DockerConfigAuth``        the user's docker config (``docker login``, credential helpers)
==========================  ============================================================

Every provider is asked once per release, so each push gets a fresh token.
Secrets live only in `Credentials.password` (never in its repr) and are
scrubbed from every message this module builds (`redact`).

Errors::

    MlreproError
    └── RegistryError            the registry refused or failed a request
        ├── RegistryUnreachable  nothing answers at the registry's address
        ├── RegistryAuthError    the credentials were rejected or could not be obtained
        └── PushError            the engine reported a failed push/pull inside its 200 stream
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import requests

from harness.errors import MlreproError

#: The user name ACR expects with a refresh token (from Entra or `az acr login --expose-token`).
ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
#: The user name a docker config gives an identity (refresh) token under.
DOCKER_TOKEN_USER = "<token>"
#: The Entra scope whose access token ACR's /oauth2/exchange accepts (Azure Resource Manager).
ARM_SCOPE = "https://management.azure.com/.default"

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MEDIA_VERIFICATION_REPORT = "application/vnd.mlrepro.verification-report.v1+json"
_ACCEPT = ", ".join((MEDIA_DOCKER_MANIFEST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX))

_ACR_HOST = re.compile(r"^(?P<name>[a-z0-9]+)\.azurecr\.(io|cn|us)$", re.IGNORECASE)
_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REDACTED = "***"


class RegistryError(MlreproError):
    """The registry refused or failed a request: the message quotes its answer; check the name, repository and permissions."""


class RegistryUnreachable(RegistryError):
    """Nothing answers at the registry's address: check the host name, the network, or start the registry."""


class RegistryAuthError(RegistryError):
    """The credentials were rejected or could not be obtained: log in again (see `mlrepro release --help`, --auth)."""


class PushError(RegistryError):
    """The engine reported a failed push or pull inside its (HTTP 200) stream: `evidence` holds the stream's tail."""


# Secrets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A user name and a password or token for one registry. `password` never appears in repr or str."""

    username: str
    password: str = field(repr=False)
    #: Where they came from ("environment", "entra", "az cli", "ecr", "docker config"): safe to record.
    source: str = "given"

    def auth_config(self) -> dict[str, str]:
        """The form docker-py takes (`auth_config=`): sent per request, never stored in a docker config."""
        if self.username == DOCKER_TOKEN_USER:
            return {"identitytoken": self.password}
        return {"username": self.username, "password": self.password}

    def secrets(self) -> tuple[str, ...]:
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return (self.password, basic)


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """`text` with every secret (and tokens that look like JWTs) replaced by ***."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    # Bearer tokens of the registry's own token service are never in `secrets`: scrub anything JWT-shaped.
    return re.sub(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", _REDACTED, text)


# Registry names -------------------------------------------------------------------------------


def is_acr(registry: str) -> bool:
    return bool(_ACR_HOST.match(registry))


def is_ecr(registry: str) -> bool:
    return bool(_ECR_HOST.match(registry))


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


# Authentication providers ---------------------------------------------------------------------


class AuthProvider(Protocol):
    """Gives fresh credentials for a registry, or None to push anonymously."""

    name: str

    def credentials(self, registry: str) -> Credentials | None: ...


@dataclass
class StaticAuth:
    """Credentials the caller already holds (a library call, a test)."""

    given: Credentials | None
    name: str = "given"

    def credentials(self, registry: str) -> Credentials | None:
        return self.given


@dataclass
class EnvironmentAuth:
    """MLREPRO_REGISTRY_USERNAME and MLREPRO_REGISTRY_PASSWORD: any registry, ACR admin or repository-scoped tokens."""

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    name: str = "environment"

    USER_VAR = "MLREPRO_REGISTRY_USERNAME"
    PASSWORD_VAR = "MLREPRO_REGISTRY_PASSWORD"

    def available(self) -> bool:
        return bool(self.env.get(self.USER_VAR)) and bool(self.env.get(self.PASSWORD_VAR))

    def credentials(self, registry: str) -> Credentials:
        if not self.available():
            raise RegistryAuthError(f"--auth environment: expected {self.USER_VAR} and {self.PASSWORD_VAR} to be set, found them missing or empty; export both")
        return Credentials(self.env[self.USER_VAR], self.env[self.PASSWORD_VAR], source="environment")


@dataclass
class DockerConfigAuth:
    """The user's docker config (`docker login`, credHelpers/credsStore), read through the engine adapter."""

    lookup: Callable[[str], tuple[str, str] | None]
    name: str = "docker config"

    def credentials(self, registry: str) -> Credentials | None:
        found = self.lookup(registry)
        return Credentials(found[0], found[1], source="docker config") if found else None


@dataclass
class AcrEntraAuth:
    """Microsoft Entra -> ACR refresh token (user 00000000-...), fresh for every call.

    `credential` is any azure-identity credential (default: `DefaultAzureCredential()`,
    which reads AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID, a managed
    identity, or the `az login` session).
    """

    credential: Any = None
    tenant: str | None = None
    scope: str = ARM_SCOPE
    session: requests.Session | None = None
    name: str = "entra"

    def credentials(self, registry: str) -> Credentials:
        credential = self.credential or _default_azure_credential()
        try:
            aad_token = credential.get_token(self.scope).token
        except Exception as exc:  # azure-identity raises its own ClientAuthenticationError family
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise RegistryAuthError(
                f"Microsoft Entra gave no token for {self.scope} ({first}); set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID, or run 'az login'"
            ) from None
        tenant = self.tenant or os.environ.get("AZURE_TENANT_ID")
        refresh = acr_exchange(registry, aad_token, tenant=tenant, session=self.session)
        return Credentials(ACR_TOKEN_USER, refresh, source="entra")


@dataclass
class AcrCliAuth:
    """`az acr login --name NAME --expose-token`: the token of the current `az login` session."""

    run: Callable[..., subprocess.CompletedProcess] = subprocess.run
    name: str = "az cli"

    def credentials(self, registry: str) -> Credentials:
        match = _ACR_HOST.match(registry)
        if not match:
            raise RegistryAuthError(f"--auth az-cli: expected an ACR login server (NAME.azurecr.io), found {registry!r}; use another --auth")
        if self.run is subprocess.run and not shutil.which("az"):
            raise RegistryAuthError("--auth az-cli: the Azure CLI ('az') is not installed; install it and run 'az login', or use --auth entra")
        command = ["az", "acr", "login", "--name", match["name"], "--expose-token", "--output", "json", "--only-show-errors"]
        result = self.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            reason = (result.stderr or "").strip().splitlines()[-1:] or ["no message"]
            raise RegistryAuthError(f"'az acr login --expose-token' failed ({reason[0][:200]}); run 'az login' and check your role on {registry}")
        try:
            token = json.loads(result.stdout)["accessToken"]
        except (ValueError, KeyError, TypeError):
            raise RegistryAuthError("'az acr login --expose-token' printed no accessToken; update the Azure CLI") from None
        return Credentials(ACR_TOKEN_USER, token, source="az cli")


@dataclass
class EcrAuth:
    """boto3 `ecr.get_authorization_token` for the registry's account and region (12-hour token)."""

    client: Any = None
    name: str = "ecr"

    def credentials(self, registry: str) -> Credentials:
        match = _ECR_HOST.match(registry)
        if not match:
            raise RegistryAuthError(f"--auth ecr: expected an ECR registry (ACCOUNT.dkr.ecr.REGION.amazonaws.com), found {registry!r}")
        client = self.client or _boto3_ecr(match["region"])
        try:
            response = client.get_authorization_token(registryIds=[match["account"]])
        except Exception as exc:  # botocore's ClientError / NoCredentialsError
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise RegistryAuthError(f"ECR gave no authorization token ({first}); configure AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)") from None
        return decode_ecr_authorization(response)


def decode_ecr_authorization(response: Mapping[str, Any]) -> Credentials:
    """Pure: the credentials in a `get_authorization_token` response (base64 of 'AWS:password')."""
    try:
        token = response["authorizationData"][0]["authorizationToken"]
        username, _, password = base64.b64decode(token).decode().partition(":")
    except (KeyError, IndexError, TypeError, ValueError):
        raise RegistryAuthError("ECR's get_authorization_token answer holds no authorizationToken; check boto3 and the account") from None
    if not password:
        raise RegistryAuthError("ECR's authorization token is not 'user:password'; check boto3 and the account")
    return Credentials(username, password, source="ecr")


AUTH_METHODS = ("auto", "environment", "docker-config", "entra", "az-cli", "ecr", "anonymous")


def auth_for(registry: str, method: str = "auto", *, env: Mapping[str, str] | None = None,
             docker_config: Callable[[str], tuple[str, str] | None] | None = None) -> AuthProvider:
    """The provider for `registry`.

    auto: MLREPRO_REGISTRY_USERNAME/PASSWORD when both are set; else Entra for
    ACR (az CLI when azure-identity is not installed), boto3 for ECR, and the
    docker config for any other registry.
    """
    env = os.environ if env is None else env
    lookup = docker_config or (lambda registry: None)
    if method == "auto":
        if EnvironmentAuth(env).available():
            return EnvironmentAuth(env)
        if is_acr(registry):
            method = "entra" if _has_module("azure.identity") or not shutil.which("az") else "az-cli"
        elif is_ecr(registry):
            method = "ecr"
        else:
            method = "docker-config"
    providers: dict[str, Callable[[], AuthProvider]] = {
        "environment": lambda: EnvironmentAuth(env),
        "docker-config": lambda: DockerConfigAuth(lookup),
        "entra": AcrEntraAuth,
        "az-cli": AcrCliAuth,
        "ecr": EcrAuth,
        "anonymous": lambda: StaticAuth(None, name="anonymous"),
    }
    if method not in providers:
        raise RegistryAuthError(f"auth method: expected one of {', '.join(AUTH_METHODS)}, found {method!r}")
    return providers[method]()


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _default_azure_credential():
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise RegistryAuthError("ACR authentication through Microsoft Entra needs azure-identity: pip install 'mlrepro[azure]' (or use --auth az-cli)") from None
    return DefaultAzureCredential()


def _boto3_ecr(region: str):
    try:
        import boto3
    except ImportError:
        raise RegistryAuthError("ECR authentication needs boto3: pip install 'mlrepro[aws]'") from None
    return boto3.client("ecr", region_name=region)


def acr_exchange(registry: str, aad_access_token: str, *, tenant: str | None = None,
                 session: requests.Session | None = None, timeout: float = 30) -> str:
    """An Entra access token -> an ACR refresh token (POST /oauth2/exchange, grant_type=access_token)."""
    form = {"grant_type": "access_token", "service": registry, "access_token": aad_access_token}
    if tenant:
        form["tenant"] = tenant
    url = f"{base_url(registry)}/oauth2/exchange"
    answer = _post_form(session or requests.Session(), url, form, timeout, secrets=(aad_access_token,))
    token = answer.get("refresh_token")
    if not token:
        raise RegistryAuthError(f"{registry} /oauth2/exchange answered without a refresh_token; check the registry name and your role on it")
    return token


def _post_form(session: requests.Session, url: str, form: Mapping[str, str], timeout: float, *, secrets: tuple[str, ...]) -> dict:
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


# The registry API -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry serves it; `config_digest` is the image ID for an image manifest."""

    digest: str
    media_type: str
    body: bytes = field(repr=False)
    config_digest: str | None

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def parse_manifest(body: bytes, media_type: str) -> Manifest:
    """Pure: digest (sha256 of the bytes served) and config digest (None for an index or list)."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    media_type = (media_type or data.get("mediaType") or "").split(";")[0].strip()
    config = data.get("config") if isinstance(data, dict) else None
    config_digest = config.get("digest") if isinstance(config, dict) else None
    return Manifest(digest=digest, media_type=media_type, body=body, config_digest=config_digest)


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
            answer = _post_form(self._session, realm, form, self._timeout, secrets=tuple(self._secrets))
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
                                headers={"Accept": _ACCEPT})
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
                                headers={"Accept": _ACCEPT})
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"look up {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        found = self.manifest(repository, reference)  # some registries omit the header on HEAD
        return found.digest if found else None

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
