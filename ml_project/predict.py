"""`python -m ml_project.predict --model DIR --input FILE --out FILE`: score a feature table.

Input and output formats are chosen by extension (.csv or .jsonl). The output is
written atomically, so on any error no output (and no temp file) is left.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ml_project import atomic, cli, dataset, persistence, tables
from ml_project.errors import ProjectError
from ml_project.threads import limited_threads, thread_count


def _check_model(model: Any, n_features: int, source: Path) -> None:
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ProjectError(
            f"model in '{source}' is not fitted; expected a trained model: {persistence.RETRAIN_HINT}"
        ) from None
    expected = getattr(model, "n_features_in_", None)
    if expected != n_features:
        raise ProjectError(
            f"model in '{source}' expects {expected} features, found a schema of {n_features}; "
            f"expected a model trained by this version of ml_project: {persistence.RETRAIN_HINT}"
        )


def predict(model_dir: Path, input_path: Path, out_path: Path) -> int:
    """Predict labels and class probabilities for every row; returns the row count."""
    input_path, out_path = Path(input_path), Path(out_path)
    tables.table_format(input_path, "--input")
    tables.table_format(out_path, "--out")
    if out_path.resolve() == input_path.resolve():
        raise ProjectError(
            f"--out '{out_path}' is the --input file; expected a different output path: choose another --out"
        )
    atomic.check_writable_dir(out_path.parent, "output")
    thread_count()  # a bad ML_PROJECT_THREADS fails before any work
    loaded = persistence.load_model(Path(model_dir))
    model = loaded.model
    names = dataset.feature_names()
    _check_model(model, len(names), Path(model_dir))
    X = tables.read_features(input_path, names)
    try:
        with limited_threads():
            proba = model.predict_proba(X)
            labels = model.predict(X)
    except ProjectError:
        raise
    except Exception as exc:  # noqa: BLE001 - a trusted, fitted model failing here is a version mismatch
        cause = loaded.version_mismatch or "its library versions differ from this environment's"
        raise ProjectError(
            f"model in '{model_dir}' cannot predict here ({type(exc).__name__}: {exc}): {cause}; "
            f"expected a model trained with this environment's versions: {persistence.RETRAIN_HINT}"
        ) from None
    tables.write_predictions(out_path, list(model.classes_), list(labels), proba)
    if loaded.version_mismatch:
        cli.print_warning(f"{loaded.version_mismatch}; predictions may differ from the original environment's")
    return int(X.shape[0])


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog="python -m ml_project.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="model directory written by ml_project.train")
    parser.add_argument("--input", required=True, type=Path, help="features, .csv (with header) or .jsonl")
    parser.add_argument("--out", required=True, type=Path, help="predictions, .csv or .jsonl (written atomically)")
    return parser


def _run(args: argparse.Namespace) -> None:
    predict(args.model, args.input, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    return cli.run(_parser(), argv, _run)


if __name__ == "__main__":
    raise SystemExit(main())
