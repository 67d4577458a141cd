"""Registry credentials, and keeping them out of every message, evidence and record.

Secrets live only in `Credentials.password` (never in its repr or str) and in
the Bearer tokens a client obtains; `redact` scrubs them (and anything shaped
like a JWT) from text before it is shown. Pure.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

#: The user name ACR expects with a refresh token (from Entra or `az acr login --expose-token`).
ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
#: The user name a docker config gives an identity (refresh) token under.
DOCKER_TOKEN_USER = "<token>"

REDACTED = "***"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


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
        """The password and the Basic header built from it: what `redact` must scrub."""
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return (self.password, basic)


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """`text` with every secret (and tokens that look like JWTs) replaced by ***."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    # Bearer tokens of the registry's own token service are never in `secrets`: scrub anything JWT-shaped.
    return _JWT.sub(REDACTED, text)


@dataclass(frozen=True)
class Redactor:
    """`redact` with these secrets, as the one-argument function the engine adapter takes (`redact=`).

    A class, not a lambda, so its repr hides the secrets (it may show up in a traceback).
    """

    secrets: tuple[str, ...] = field(repr=False)

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)


__all__ = ["ACR_TOKEN_USER", "DOCKER_TOKEN_USER", "Credentials", "Redactor", "redact"]
