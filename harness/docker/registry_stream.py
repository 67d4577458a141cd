"""Registry streams of the engine (push, pull): every line scanned, the digest taken from the last one.

The engine answers HTTP 200 and reports a failed push or pull as an `error`
line inside the stream; this module turns such a stream into a digest or a
`RegistryStreamError`. It speaks neutrally: the error says which kind of
failure the engine reported ("auth", "unreachable", "failed"), and the caller
(the release) says what that means for it. Secrets are scrubbed by the
`redact` function the caller passes (it knows them). Pure apart from its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Mapping

from harness.errors import EngineError, tail

#: What went wrong in a registry stream: credentials refused, nothing answering, silent too long, anything else.
StreamFailure = Literal["auth", "unreachable", "stalled", "failed"]


class RegistryStreamError(EngineError):
    """The engine reported a failed push or pull inside its (HTTP 200) stream.

    `kind` says why ("auth": the registry refused the credentials, log in
    again; "unreachable": nothing answers at its address, check it or start
    it; "stalled": the engine said nothing for longer than the idle timeout;
    "failed": anything else, retry after fixing the cause), `evidence`
    holds the (redacted) tail of the stream.
    """

    def __init__(self, message: str, *, kind: StreamFailure, evidence: str = "") -> None:
        self.kind = kind
        super().__init__(message, evidence=evidence)


def _no_redaction(text: str) -> str:
    return text


@dataclass(frozen=True)
class LayerProgress:
    """One progress line of a push or pull: a layer's status and, while moving, bytes done of total."""

    layer: str
    status: str
    current: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class StreamOutcome:
    digest: str | None
    lines: tuple[str, ...]


_STREAM_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# How the engine words a registry's refusal / absence in a stream's error line (distribution, ACR, ECR, Docker Hub).
_AUTH_FAILURES = ("unauthorized", "authentication required", "denied: requested access", "no basic auth credentials",
                  "incorrect username or password")
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "connection reset", "dial tcp", "server misbehaving")


def scan_registry_stream(chunks: Iterable[Mapping], *, action: str, on_layer: Callable[[LayerProgress], None] = lambda e: None,
                         redact: Callable[[str], str] = _no_redaction, require_digest: bool = False) -> StreamOutcome:
    """Pure: read a push/pull stream to its end; raise on the first error line, else the digest it reported.

    The engine answers HTTP 200 and reports failure as a line with `error` /
    `errorDetail`, so every line is looked at. The digest is taken from the
    final `aux` line (the `TAG: digest: ... size: N` status line as fallback);
    `require_digest` makes a stream without one a failure (a push must name
    what it stored). Errors are RegistryStreamError, classified by `kind`:
    credentials refused -> "auth", nothing answering -> "unreachable",
    anything else -> "failed"; the stream tail, passed through `redact`,
    travels as evidence.
    """
    lines: list[str] = []
    digest = None
    status_digest = None
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = redact(str(chunk.get("error") or detail.get("message") or "unknown error").strip())
            lines.append(f"error: {message}")
            evidence = tail("\n".join(lines), 40)
            lowered = message.lower()
            if any(word in lowered for word in _AUTH_FAILURES):
                raise RegistryStreamError(f"{action} failed: the registry refused the credentials ({message[:300]}); "
                                          "check the user name and password or token, and its push permission", kind="auth", evidence=evidence)
            if any(word in lowered for word in _UNREACHABLE):
                raise RegistryStreamError(f"{action} failed: the registry does not answer ({message[:300]}); check the registry address, or start it",
                                          kind="unreachable", evidence=evidence)
            raise RegistryStreamError(f"{action} failed ({message[:300]}); nothing was released, fix the cause and retry",
                                      kind="failed", evidence=evidence)
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            digest = str(aux["Digest"])
            continue
        status = str(chunk.get("status", ""))
        layer = chunk.get("id")
        if layer and status:
            progress = chunk.get("progressDetail") or {}
            on_layer(LayerProgress(str(layer), status, progress.get("current"), progress.get("total")))
            if status not in ("Pushing", "Downloading", "Extracting"):  # the per-chunk lines would drown the evidence
                lines.append(f"{layer}: {status}")
        elif status:
            lines.append(redact(status))
            found = _STREAM_DIGEST.search(status) or (re.match(r"Digest: (sha256:[0-9a-f]{64})", status))
            if found:
                status_digest = found.group(1)
    digest = digest or status_digest
    if require_digest and not digest:
        raise RegistryStreamError(f"the {action} ended without a digest (no final aux line); nothing can be claimed as released, retry the push",
                                  kind="failed", evidence=tail("\n".join(lines), 40))
    return StreamOutcome(digest, tuple(lines))


def _split_tag(ref: str) -> tuple[str, str]:
    """REGISTRY[:PORT]/REPOSITORY:TAG -> (REGISTRY[:PORT]/REPOSITORY, TAG); the registry's port is not a tag."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"ref={ref!r}: expected REPOSITORY:TAG")
    return repository, tag


def _redacted_first(exc: BaseException, redact: Callable[[str], str] = _no_redaction) -> str:
    """The first line of an exception's message, for a one-line error, with secrets scrubbed."""
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return redact(text)
