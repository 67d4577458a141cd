"""Offline validation and rendering of every object the kubernetes commands write.

`kubernetes-validate` (the `kubernetes` extra) checks each object against the
schemas of the stated Kubernetes version, strictly: an unknown field is an
error, as the API server would make it. It is imported only here, when a
command validates, and its absence is one line saying what to install.
Rendering is YAML (PyYAML comes with kubernetes-validate), one document per file.
"""

from __future__ import annotations

from typing import Any, Mapping

from harness.errors import MlreproError
from harness.kubernetes.manifests import ManifestError, require_digests

INSTALL = "pip install 'mlrepro[kubernetes]' (kubernetes-validate)"


def _validator():
    try:
        import kubernetes_validate
    except ImportError:
        raise MlreproError("the kubernetes commands validate every manifest offline: expected the package "
                           f"kubernetes-validate, found it not installed; {INSTALL}") from None
    return kubernetes_validate


def validate(objects: list[Mapping[str, Any]], *, version: str, image: str) -> str:
    """Every object valid for Kubernetes `version` (strict) and naming only `image`; the schema version used."""
    kubernetes_validate = _validator()
    require_digests(list(objects), image)
    used = version
    for obj in objects:
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        try:
            used = kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
            message = " ".join(str(exc.message).split())[:240]
            raise ManifestError(f"{where} is not valid for Kubernetes {exc.version} (strict): at {path}: {message}; "
                                "fix [tool.mlrepro.kubernetes]") from None
        except kubernetes_validate.SchemaNotFoundError:
            raise ManifestError(f"{where}: expected a kind and apiVersion Kubernetes {version} knows, found "
                                f"{obj.get('apiVersion')} {obj.get('kind')}") from None
        except Exception as exc:  # VersionNotSupportedError and kin: not exported by every release
            if type(exc).__name__ == "VersionNotSupportedError":
                raise ManifestError(f"[tool.mlrepro] kubernetes.kubernetes_version: expected a version up to "
                                    f"{kubernetes_validate.latest_version()} (what kubernetes-validate has schemas for), "
                                    f"found {version}; lower it or upgrade kubernetes-validate") from None
            raise
    return used


def render(obj: Mapping[str, Any]) -> str:
    """One YAML document, keys in the order they were built (kind first, as people read them)."""
    _validator()
    import yaml

    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False, width=1000)


__all__ = ["INSTALL", "render", "validate"]
