"""Saving and loading the model with skops (never pickle).

Before anything is loaded, every type named in the file's schema must be in
config.TRUSTED_TYPES (stricter than skops' own default trust list); a file with
other types is refused and the types are named. Any other load failure is
reported as a corrupt or incompatible model file.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io as sio
from sklearn.exceptions import InconsistentVersionWarning

from ml_project.config import MODEL_FILE, TRUSTED_TYPES
from ml_project.errors import ProjectError

RETRAIN_HINT = "retrain with `python -m ml_project.train --out DIR`"


@dataclass(frozen=True)
class Loaded:
    """A loaded model, plus a note when it was saved by another scikit-learn version."""

    model: Any
    version_mismatch: str | None = None


def dumps(model: Any) -> bytes:
    """The model as skops bytes."""
    return bytes(sio.dumps(model))


def _schema_types(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            found.add(f"{node['__module__']}.{node['__class__']}")
        for value in node.values():
            _schema_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, found)
    return found


def types_in(data: bytes) -> set[str]:
    """Every type a skops payload would instantiate: its schema's nodes plus skops' own untrusted list."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    return _schema_types(schema, set()) | set(sio.get_untrusted_types(data=data))


def loads(data: bytes, source: str) -> Loaded:
    """Load skops bytes after the trust check; `source` names the file in error messages."""
    try:
        found = types_in(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure means an unusable file
        raise ProjectError(
            f"model file '{source}' is corrupt or truncated ({type(exc).__name__}: {exc}); "
            f"expected a skops file written by ml_project.train: {RETRAIN_HINT}"
        ) from None
    untrusted = sorted(found - TRUSTED_TYPES)
    if untrusted:
        raise ProjectError(
            f"model file '{source}' contains untrusted type(s) {', '.join(untrusted)}; refusing to load it: "
            f"expected only the types in ml_project.config.TRUSTED_TYPES: {RETRAIN_HINT}"
        )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            model = sio.loads(data, trusted=sorted(found))
    except Exception as exc:  # noqa: BLE001 - skops/sklearn raise many types for bad files
        raise ProjectError(
            f"model file '{source}' could not be loaded ({type(exc).__name__}: {exc}); expected a skops file "
            f"written by ml_project.train with compatible library versions: {RETRAIN_HINT}"
        ) from None
    mismatch = None
    for record in caught:
        if isinstance(record.message, InconsistentVersionWarning):
            msg = record.message
            mismatch = (
                f"'{source}' was saved with scikit-learn {msg.original_sklearn_version} "
                f"but this is {msg.current_sklearn_version}"
            )
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return Loaded(model, mismatch)


def load_model(model_dir: Path) -> Loaded:
    """Load DIR/model.skops, with errors for a missing dir, missing/unreadable file or bad content."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise ProjectError(
            f"model directory '{model_dir}' does not exist; expected a directory holding {MODEL_FILE}: {RETRAIN_HINT}"
        )
    if not model_dir.is_dir():
        raise ProjectError(
            f"model path '{model_dir}' is not a directory; expected a directory holding {MODEL_FILE}: {RETRAIN_HINT}"
        )
    path = model_dir / MODEL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError(
            f"model directory '{model_dir}' has no {MODEL_FILE}; expected the output of training: {RETRAIN_HINT}"
        ) from None
    except OSError as exc:
        raise ProjectError(
            f"cannot read model file '{path}': {exc.strerror or exc}; check its permissions or {RETRAIN_HINT}"
        ) from None
    return loads(data, str(path))
