"""How to log in to a registry: one provider per kind of registry, `auth_for` picks one.

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
``StaticAuth``              credentials the caller already holds (a library call, a test)
==========================  ============================================================

Every provider is asked once per release, so each push gets a fresh token.
Failures are RegistryAuthError, naming what to set or run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import requests

from harness.release.client import base_url, post_form
from harness.release.errors import RegistryAuthError
from harness.release.secrets import ACR_TOKEN_USER, Credentials

#: The Entra scope whose access token ACR's /oauth2/exchange accepts (Azure Resource Manager).
ARM_SCOPE = "https://management.azure.com/.default"

_ACR_HOST = re.compile(r"^(?P<name>[a-z0-9]+)\.azurecr\.(io|cn|us)$", re.IGNORECASE)
_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


# Registry names -------------------------------------------------------------------------------


def is_acr(registry: str) -> bool:
    return bool(_ACR_HOST.match(registry))


def is_ecr(registry: str) -> bool:
    return bool(_ECR_HOST.match(registry))


# Providers ------------------------------------------------------------------------------------


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
    answer = post_form(session or requests.Session(), url, form, timeout, secrets=(aad_access_token,))
    token = answer.get("refresh_token")
    if not token:
        raise RegistryAuthError(f"{registry} /oauth2/exchange answered without a refresh_token; check the registry name and your role on it")
    return token


__all__ = ["ARM_SCOPE", "AUTH_METHODS", "AcrCliAuth", "AcrEntraAuth", "AuthProvider", "DockerConfigAuth", "EcrAuth",
           "EnvironmentAuth", "StaticAuth", "acr_exchange", "auth_for", "decode_ecr_authorization", "is_acr", "is_ecr"]
