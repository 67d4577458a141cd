"""The image's SBOM: CycloneDX JSON from the distributions installed in the image, and its check against the lock.

The SBOM describes what the image *holds* (the probe's `packages()`, found in
a report at ``report.environments["image"]["packages"]``), not what the lock
promised: `lock_mismatches` is the cross-check between the two, so a signed
SBOM cannot silently disagree with the lock it was released under.

cyclonedx-python-lib builds, serialises and validates the document; it is
imported inside the functions, so the rest of mlrepro runs without the
``attest`` extra. `sbom_packages` and `lock_mismatches` need no library.

The document is deterministic (the attestation covers its sha256): the serial
number is a uuid5 of the inputs, components are sorted by the library
(all libraries, so by name then version) and the timestamp, which the library
always writes, is fixed at the Unix epoch.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from harness.attest.errors import AttestError
from harness.compare import DEFAULT_IGNORED_PACKAGES, normalize_name

__all__ = ["MEDIA_CYCLONEDX", "image_sbom", "lock_mismatches", "sbom_packages", "validate_sbom"]

MEDIA_CYCLONEDX = "application/vnd.cyclonedx+json"

_MISSING = "the SBOM needs cyclonedx-python-lib: pip install 'mlrepro[attest]'"

# The namespace of the SBOM serial numbers: uuid5(_SERIAL_NAMESPACE, canonical inputs).
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mlrepro:sbom")

# metadata.timestamp: the library always writes one, so it is fixed to keep the bytes reproducible.
_FIXED_TIMESTAMP = datetime(1970, 1, 1, tzinfo=timezone.utc)

# The longest validation error quoted in an AttestError (jsonschema repeats whole instances).
_MAX_DETAIL = 200

_REGENERATE = "regenerate it with `mlrepro release`"


def _schema_version() -> Any:
    """CycloneDX 1.6 when the installed library knows it, else 1.5 (a SchemaVersion member)."""
    try:
        from cyclonedx.schema import SchemaVersion
    except ImportError as exc:
        raise AttestError(_MISSING) from exc
    return getattr(SchemaVersion, "V1_6", None) or SchemaVersion.V1_5


def _normalized(packages: Mapping[str, str]) -> dict[str, str]:
    """{normalised name: stripped version}; ValueError on an empty version or two spellings at two versions."""
    found: dict[str, str] = {}
    for name, version in packages.items():
        key, text = normalize_name(str(name)), str(version).strip()
        if not key or not text:
            raise ValueError(f"package {name!r} has version {version!r}: expected a name and a non-empty version")
        if found.get(key, text) != text:
            raise ValueError(
                f"package {key} is listed at {found[key]} and {text} (spelling variants of one name):"
                " pass one version per package"
            )
        found[key] = text
    return dict(sorted(found.items()))


def _serial_number(packages: Mapping[str, str], **inputs: str | None) -> uuid.UUID:
    """A uuid5 over every input of the document: the same inputs always give the same serial number."""
    canonical = json.dumps({"inputs": inputs, "packages": sorted(packages.items())}, sort_keys=True)
    return uuid.uuid5(_SERIAL_NAMESPACE, canonical)


def image_sbom(
    packages: Mapping[str, str],
    *,
    image_name: str,
    image_id: str,
    image_digest: str | None = None,
    tool_version: str,
) -> bytes:
    """The CycloneDX JSON SBOM (UTF-8 bytes) of an image's installed distributions.

    `packages` is the probe's {name: version} of the image (names are
    normalised here; spelling variants at two versions are a ValueError).
    Each becomes a `library` component whose purl ``pkg:pypi/<name>@<version>``
    is also its bom-ref; metadata.component is the image (type `container`,
    version = its digest when pushed, else its id) and depends on every
    package; metadata.tools names mlrepro at `tool_version`.

    Deterministic: serialNumber = uuid5 over all inputs, and metadata.timestamp
    is the Unix epoch (1970-01-01T00:00:00+00:00) because cyclonedx-python-lib
    always writes a timestamp. It is not the time of the build.
    """
    normalized = _normalized(packages)
    schema_version = _schema_version()
    try:
        from cyclonedx.model.bom import Bom, BomMetaData
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output import make_outputter
        from cyclonedx.schema import OutputFormat
        from packageurl import PackageURL
    except ImportError as exc:
        raise AttestError(_MISSING) from exc

    version = image_digest or image_id
    image = Component(type=ComponentType.CONTAINER, name=image_name, version=version, bom_ref=f"{image_name}@{version}")
    tool = Component(type=ComponentType.APPLICATION, name="mlrepro", version=tool_version)
    serial = _serial_number(
        normalized, image_name=image_name, image_id=image_id, image_digest=image_digest, tool_version=tool_version
    )
    bom = Bom(serial_number=serial, metadata=BomMetaData(component=image, timestamp=_FIXED_TIMESTAMP))
    bom.metadata.tools.components.add(tool)
    libraries = []
    for name, pinned in normalized.items():
        purl = PackageURL(type="pypi", name=name, version=pinned)
        libraries.append(
            Component(type=ComponentType.LIBRARY, name=name, version=pinned, purl=purl, bom_ref=purl.to_string())
        )
    bom.components.update(libraries)
    bom.register_dependency(image, libraries)
    text = make_outputter(bom, OutputFormat.JSON, schema_version).output_as_string(indent=2)
    return (text + "\n").encode("utf-8")


def _shorten(text: str, limit: int = _MAX_DETAIL) -> str:
    """`text` on one line, cut to `limit` characters (an ellipsis marks the cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _first_error_text(error: Any) -> str:
    """'<json path>: <message>' of a cyclonedx JsonValidationError (its `data` is the jsonschema error)."""
    detail = getattr(error, "data", None)
    message, path = getattr(detail, "message", None), getattr(detail, "json_path", None)
    if message is None:
        return _shorten(str(error))
    return _shorten(f"{path}: {message}" if path else message)


def _load(data: bytes) -> Any:
    """The JSON value of `data`; ValueError (one line) when it is not JSON."""
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"the SBOM is not JSON ({_shorten(str(exc))}): expected a CycloneDX JSON document") from None


def validate_sbom(data: bytes) -> None:
    """Check `data` is the CycloneDX JSON that `image_sbom` writes; AttestError (one line) when it is not.

    The schema is checked by the library's strict JSON validator for the spec
    version `image_sbom` writes (the document must declare that version).
    The schema lets a component omit its version, so one rule is added: every
    `library` component carries a version, since the SBOM is what the lock is
    checked against. The error quotes the first problem, cut to 200 characters.
    """
    schema_version = _schema_version()
    try:
        from cyclonedx.exception import MissingOptionalDependencyException
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as exc:
        raise AttestError(_MISSING) from exc

    spec = schema_version.to_version()
    try:
        document = _load(data)
    except ValueError as exc:
        raise AttestError(f"{exc}; {_REGENERATE}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttestError(f"the SBOM is JSON but not UTF-8, expected UTF-8 CycloneDX JSON: {_REGENERATE}") from None
    declared = document.get("specVersion") if isinstance(document, dict) else None
    if declared != spec:
        raise AttestError(f"the SBOM declares specVersion {declared!r}, expected CycloneDX {spec!r}: {_REGENERATE}")
    try:
        error = JsonStrictValidator(schema_version).validate_str(text)
    except MissingOptionalDependencyException as exc:
        raise AttestError(_MISSING) from exc
    if error is not None:
        raise AttestError(f"the SBOM is not valid CycloneDX {spec}: {_first_error_text(error)}; {_REGENERATE}")
    try:
        list(_libraries(document.get("components", []), "components"))
    except ValueError as exc:
        raise AttestError(f"the SBOM's {exc}: {_REGENERATE}") from None


def _libraries(components: Any, where: str) -> Iterable[tuple[str, str]]:
    """(name, version) of every `library` component, nested ones included; ValueError on a malformed entry."""
    if not isinstance(components, list):
        raise ValueError(f"{where} is {type(components).__name__}, expected a list of components")
    for index, component in enumerate(components):
        place = f"{where}[{index}]"
        if not isinstance(component, dict):
            raise ValueError(f"{place} is {type(component).__name__}, expected a component object")
        if component.get("type") == "library":
            name, version = component.get("name"), component.get("version")
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{place} has name {name!r}, expected a package name")
            if not isinstance(version, str) or not version.strip():
                raise ValueError(f"{place} ({name}) has version {version!r}, expected the installed version")
            yield name, version
        yield from _libraries(component.get("components", []), f"{place}.components")


def sbom_packages(data: bytes) -> dict[str, str]:
    """{normalised name: version} of the library components of a CycloneDX JSON document (as `image_sbom` writes).

    Pure JSON reading, no library needed. ValueError (one line) when `data` is
    not a CycloneDX JSON document, a library component lacks a name or version,
    or one package appears at two versions.
    """
    document = _load(data)
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        found = document.get("bomFormat") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"the SBOM's bomFormat is {found!r}, expected 'CycloneDX'")
    packages: dict[str, str] = {}
    for name, version in _libraries(document.get("components", []), "components"):
        key = normalize_name(name)
        if packages.get(key, version) != version:
            raise ValueError(f"the SBOM lists {key} at {packages[key]} and {version}, expected one version per package")
        packages[key] = version
    return dict(sorted(packages.items()))


def lock_mismatches(
    image_packages: Mapping[str, str],
    lock_versions: Mapping[str, str],
    *,
    exempt: Iterable[str] = DEFAULT_IGNORED_PACKAGES,
) -> tuple[str, ...]:
    """One message per image package the lock does not pin, or pins at another version, sorted by name.

    Names are compared normalised (Scikit_Learn is scikit-learn), versions as
    exact strings (stripped); `exempt` (installer tooling by default) is
    skipped. Lock packages missing from the image are not reported here:
    verification reports those.
    """
    skipped = {normalize_name(name) for name in exempt}
    image = {normalize_name(name): str(version).strip() for name, version in image_packages.items()}
    lock = {normalize_name(name): str(version).strip() for name, version in lock_versions.items()}
    messages = []
    for name in sorted(set(image) - skipped):
        have, pinned = image[name], lock.get(name)
        if pinned is None:
            messages.append(f"{name} {have} is in the image but not in the lock")
        elif pinned != have:
            messages.append(f"{name} {have} is in the image but the lock pins {pinned}")
    return tuple(messages)
