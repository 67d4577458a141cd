"""Unit tests for ml_project: determinism, the CLI contract, bad-input handling, committed examples.

CLIs run in-process through main([...]) (fast), plus a few end-to-end runs through
`python -m`. Skipped as a whole only when scikit-learn, skops or numpy cannot be
imported, since the harness's own unit tests run in the same session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("numpy")
pytest.importorskip("sklearn")
pytest.importorskip("skops")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
if importlib.util.find_spec("ml_project") is None:  # plain `pytest` without the repo on sys.path
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import skops.io as sio  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from ml_project import config, dataset, persistence, predict, train  # noqa: E402
from ml_project.model import build_model, canonical_hash  # noqa: E402

N_HOLDOUT = 114
N_FEATURES = 30


# ---------------------------------------------------------------- helpers and fixtures


def _run_train(out: Path, *extra: str) -> None:
    assert train.main(["--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "run"  # does not exist yet: train creates it
    _run_train(out)
    return out


@pytest.fixture(scope="module")
def holdout_csv_text() -> str:
    return (EXAMPLES / "holdout.csv").read_text(encoding="utf-8")


def _read_predictions(path: Path) -> tuple[list[int], np.ndarray]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        lines = text.splitlines()
        assert lines[0] == "label,proba_0,proba_1"
        cells = [line.split(",") for line in lines[1:]]
        return [int(c[0]) for c in cells], np.array([[float(v) for v in c[1:]] for c in cells])
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(sorted(r) == ["label", "proba"] for r in rows)
    return [r["label"] for r in rows], np.array([r["proba"] for r in rows], dtype=np.float64)


def _assert_one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in err.lower(), (needle, err)


# ---------------------------------------------------------------- determinism


def test_two_trainings_are_identical(model_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    _run_train(again)
    for name in (config.MANIFEST_FILE, config.METRICS_FILE):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name
    outs = []
    for d in (model_dir, again):
        out = tmp_path / f"pred-{d.name}.csv"
        assert predict.main(["--model", str(d), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_different_seed_gives_different_hash(model_dir: Path, tmp_path: Path) -> None:
    _run_train(tmp_path / "s7", "--seed", "7")
    a = json.loads((model_dir / config.MANIFEST_FILE).read_text())
    b = json.loads((tmp_path / "s7" / config.MANIFEST_FILE).read_text())
    assert a["random_state"] == config.RANDOM_STATE and b["random_state"] == 7
    assert a["canonical_hash"] != b["canonical_hash"]


def test_saved_model_reproduces_manifest_hash(model_dir: Path) -> None:
    manifest = json.loads((model_dir / config.MANIFEST_FILE).read_text())
    loaded = persistence.load_model(model_dir)
    assert loaded.version_mismatch is None
    assert canonical_hash(loaded.model, dataset.load().X) == manifest["canonical_hash"]
    assert persistence.types_in((model_dir / config.MODEL_FILE).read_bytes()) <= config.TRUSTED_TYPES


# ---------------------------------------------------------------- artefacts


def test_manifest_and_metrics_contents(model_dir: Path) -> None:
    manifest_text = (model_dir / config.MANIFEST_FILE).read_text()
    manifest = json.loads(manifest_text)
    assert manifest_text == json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    assert {"canonical_hash", "hash_method", "model_file", "classes", "random_state", "estimator", "features"} <= set(
        manifest
    )
    assert manifest["canonical_hash"].startswith("sha256:") and len(manifest["canonical_hash"]) == 7 + 64
    assert manifest["model_file"] == config.MODEL_FILE
    assert manifest["classes"] == [0, 1]
    names = [f["name"] for f in manifest["features"]]
    assert names == dataset.feature_names() and len(names) == N_FEATURES
    assert all(f["min"] <= f["max"] for f in manifest["features"])
    assert str(model_dir) not in manifest_text and str(REPO) not in manifest_text

    metrics_text = (model_dir / config.METRICS_FILE).read_text()
    metrics = json.loads(metrics_text)
    assert metrics_text == json.dumps(metrics, sort_keys=True, indent=2) + "\n"
    assert {"accuracy", "log_loss", "roc_auc"} <= set(metrics)
    assert metrics["n_test"] == N_HOLDOUT
    assert 0.9 < metrics["accuracy"] <= 1.0 and 0.9 < metrics["roc_auc"] <= 1.0 and metrics["log_loss"] > 0
    assert sorted(os.listdir(model_dir)) == sorted([config.MODEL_FILE, config.METRICS_FILE, config.MANIFEST_FILE])


# ---------------------------------------------------------------- prediction


@pytest.mark.parametrize("in_ext", [".csv", ".jsonl"])
@pytest.mark.parametrize("out_ext", [".csv", ".jsonl"])
def test_predict_holdout(model_dir: Path, tmp_path: Path, in_ext: str, out_ext: str) -> None:
    out = tmp_path / f"pred{out_ext}"
    rc = predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / f"holdout{in_ext}"), "--out", str(out)])
    assert rc == 0
    labels, proba = _read_predictions(out)
    assert len(labels) == N_HOLDOUT and proba.shape == (N_HOLDOUT, 2)
    assert set(labels) <= {0, 1}
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(np.array(labels), proba.argmax(axis=1))
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no temp file left


def test_csv_and_jsonl_inputs_give_bit_identical_predictions(model_dir: Path, tmp_path: Path) -> None:
    texts = []
    for ext in (".csv", ".jsonl"):
        out = tmp_path / f"from{ext}.jsonl"
        assert (
            predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / f"holdout{ext}"), "--out", str(out)])
            == 0
        )
        texts.append(out.read_text())
    assert texts[0] == texts[1]


def test_column_order_does_not_matter(model_dir: Path, tmp_path: Path, holdout_csv_text: str) -> None:
    rows = [line.split(",") for line in holdout_csv_text.splitlines()]
    shuffled = tmp_path / "rev.csv"
    shuffled.write_text("\n".join(",".join(r[::-1]) for r in rows) + "\n")
    outs = []
    for src in (EXAMPLES / "holdout.csv", shuffled):
        out = tmp_path / f"o-{src.stem}.csv"
        assert predict.main(["--model", str(model_dir), "--input", str(src), "--out", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


# ---------------------------------------------------------------- committed examples


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_committed_holdout_matches_dataset_output(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"holdout{ext}"
    assert dataset.main(["--out", str(out)]) == 0
    assert out.read_bytes() == (EXAMPLES / f"holdout{ext}").read_bytes()


def test_holdout_has_features_only(holdout_csv_text: str) -> None:
    lines = holdout_csv_text.splitlines()
    assert lines[0].split(",") == dataset.feature_names()
    assert all(name.isidentifier() and name == name.lower() for name in dataset.feature_names())
    assert len(lines) == 1 + N_HOLDOUT
    jsonl = (EXAMPLES / "holdout.jsonl").read_text().splitlines()
    assert len(jsonl) == N_HOLDOUT and list(json.loads(jsonl[0])) == dataset.feature_names()


# ---------------------------------------------------------------- bad inputs


def _header_edit(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        header, rest = text.split("\n", 1)
        return header.replace(old, new, 1) + "\n" + rest

    return edit


def _cell_edit(row: int, col: int, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.split("\n")
        cells = lines[row].split(",")
        cells[col] = value
        lines[row] = ",".join(cells)
        return "\n".join(lines)

    return edit


def _drop_cell(row: int) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.split("\n")
        lines[row] = lines[row].split(",", 1)[1]
        return "\n".join(lines)

    return edit


def _drop_first_column(text: str) -> str:
    return "\n".join(line.split(",", 1)[1] if line else line for line in text.split("\n"))


def _add_column(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    return "\n".join([lines[0] + ",patient_id"] + [line + ",1" for line in lines[1:]]) + "\n"


def _jsonl_edit(key: str, raw: str) -> Callable[[str], str]:
    def edit(_: str) -> str:
        lines = (EXAMPLES / "holdout.jsonl").read_text().splitlines()[:3]
        obj = json.loads(lines[1])
        obj[key] = "__X__"
        lines[1] = json.dumps(obj).replace('"__X__"', raw)
        return "\n".join(lines) + "\n"

    return edit


BAD_INPUTS: list[tuple[str, str, Callable[[str], str], tuple[str, ...]]] = [
    ("missing_column", ".csv", _drop_first_column, ("missing", "'mean_radius'")),
    ("extra_column", ".csv", _add_column, ("unexpected", "'patient_id'")),
    (
        "renamed_column",
        ".csv",
        _header_edit("mean_radius", "radius_mean"),
        ("'mean_radius'", "'radius_mean'", "renamed"),
    ),
    ("duplicate_column", ".csv", _header_edit("mean_texture", "mean_radius"), ("duplicate", "'mean_radius'")),
    ("non_numeric", ".csv", _cell_edit(3, 2, "abc"), ("non-numeric", "'abc'", "row 3", "'mean_perimeter'")),
    ("empty_cell", ".csv", _cell_edit(1, 0, ""), ("non-numeric", "empty cell", "row 1", "'mean_radius'")),
    ("nan", ".csv", _cell_edit(2, 4, "nan"), ("nan", "row 2", "'mean_smoothness'")),
    ("inf", ".csv", _cell_edit(5, 29, "-inf"), ("infinite", "row 5", "'worst_fractal_dimension'")),
    ("short_row", ".csv", _drop_cell(4), ("row 4", "29 cells", "expected 30")),
    ("empty_file", ".csv", lambda t: "", ("is empty",)),
    ("whitespace_file", ".jsonl", lambda t: "\n  \n", ("is empty",)),
    ("header_only", ".csv", lambda t: t.split("\n", 1)[0] + "\n", ("header but no data rows",)),
    ("not_utf8", ".csv", lambda t: "\udcff", ("not UTF-8",)),
    ("jsonl_not_json", ".jsonl", lambda t: "{oops}\n", ("not valid JSON", "line 1")),
    ("jsonl_array", ".jsonl", lambda t: "[1, 2]\n", ("JSON array", "expected a JSON object")),
    ("jsonl_string_value", ".jsonl", _jsonl_edit("mean_area", '"12"'), ("non-numeric", "row 2", "'mean_area'")),
    ("jsonl_null_value", ".jsonl", _jsonl_edit("mean_area", "null"), ("non-numeric", "null", "'mean_area'")),
    ("jsonl_nan", ".jsonl", _jsonl_edit("area_error", "NaN"), ("nan", "row 2", "'area_error'")),
    ("jsonl_inf", ".jsonl", _jsonl_edit("area_error", "1e999"), ("infinite", "row 2", "'area_error'")),
    ("jsonl_huge_integer", ".jsonl", _jsonl_edit("area_error", "1" * 5000), ("cannot be read as JSON", "line 2")),
    ("jsonl_missing_key", ".jsonl", lambda t: '{"mean_radius": 1.0}\n', ("missing", "'mean_texture'")),
]


@pytest.mark.parametrize(("case", "ext", "make", "needles"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_file(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    holdout_csv_text: str,
    case: str,
    ext: str,
    make: Callable[[str], str],
    needles: tuple[str, ...],
) -> None:
    src = tmp_path / "in" / f"{case}{ext}"
    src.parent.mkdir()
    text = make(holdout_csv_text)
    src.write_bytes(text.encode("utf-8", "surrogateescape"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "pred.csv"
    rc = predict.main(["--model", str(model_dir), "--input", str(src), "--out", str(out)])
    assert rc == 2
    _assert_one_error_line(capsys.readouterr().err, *needles)
    assert os.listdir(out_dir) == []


def _dump(model_dir: Path, obj: object) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / config.MODEL_FILE).write_bytes(sio.dumps(obj))
    return model_dir


def test_bad_model_files(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (model_dir / config.MODEL_FILE).read_bytes()
    (tmp_path / "empty").mkdir()
    for name, data in [("truncated", good[: len(good) // 2]), ("garbage", b"not a zip\n"), ("zero", b"")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / config.MODEL_FILE).write_bytes(data)
    (tmp_path / "a_file").write_text("x")
    _dump(tmp_path / "untrusted", FunctionTransformer(np.log1p))
    _dump(tmp_path / "unfitted", build_model(config.RANDOM_STATE))
    cases = {
        "missing_dir": ("does not exist", "ml_project.train"),
        "a_file": ("not a directory",),
        "empty": ("has no model.skops",),
        "truncated": ("corrupt or truncated",),
        "garbage": ("corrupt or truncated",),
        "zero": ("corrupt or truncated",),
        "untrusted": ("untrusted", "log1p", "FunctionTransformer", "refusing"),
        "unfitted": ("not fitted",),
    }
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    for name, needles in cases.items():
        rc = predict.main(
            ["--model", str(tmp_path / name), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(out)]
        )
        assert rc == 2, name
        _assert_one_error_line(capsys.readouterr().err, *needles)
        assert os.listdir(out.parent) == [], name


def test_bad_paths_and_usage(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holdout = str(EXAMPLES / "holdout.csv")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "features.txt").write_text("x")
    cases = [
        (["--input", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")], ("not found", "nope.csv")),
        (["--input", str(tmp_path / "dir.csv"), "--out", str(tmp_path / "o.csv")], ("is a directory",)),
        (["--input", str(tmp_path / "features.txt"), "--out", str(tmp_path / "o.csv")], ("'.txt'", ".csv, .jsonl")),
        (["--input", holdout, "--out", str(tmp_path / "o.parquet")], ("--out", "'.parquet'")),
        (["--input", holdout, "--out", str(tmp_path / "o")], ("no extension",)),
        (["--input", holdout, "--out", str(tmp_path / "a_file" / "o.csv")], ("not a directory",)),
        (["--input", holdout, "--out", str(tmp_path / "missing" / "o.csv")], ("does not exist",)),
        (["--input", holdout, "--out", str(tmp_path / "dir.csv")], ("cannot write", "dir.csv")),
        (["--input", holdout, "--out", holdout], ("is the --input file",)),
        (["--input", holdout], ("required", "--out")),
    ]
    before = sorted(os.listdir(tmp_path))
    for args, needles in cases:
        assert predict.main(["--model", str(model_dir), *args]) == 2, args
        _assert_one_error_line(capsys.readouterr().err, *needles)
        assert sorted(os.listdir(tmp_path)) == before, args
        assert os.listdir(tmp_path / "dir.csv") == []
    assert train.main(["--out", str(tmp_path / "a_file" / "m")]) == 2
    _assert_one_error_line(capsys.readouterr().err, "cannot create output directory")
    assert train.main(["--out", str(tmp_path / "m"), "--seed", "-3"]) == 2
    _assert_one_error_line(capsys.readouterr().err, "--seed", "'-3'")
    assert dataset.main(["--out", str(tmp_path / "h.xlsx")]) == 2
    _assert_one_error_line(capsys.readouterr().err, "'.xlsx'")
    assert sorted(os.listdir(tmp_path)) == before


def test_read_only_output_dir(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root ignores modes: simulate what a user would see
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    try:
        rc = predict.main(
            ["--model", str(model_dir), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(ro / "o.csv")]
        )
        assert rc == 2
        _assert_one_error_line(capsys.readouterr().err, "not writable")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_no_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    out = tmp_path / "o.jsonl"
    rc = predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(out)])
    assert rc == 2
    _assert_one_error_line(capsys.readouterr().err, "cannot write", "No space left")
    assert os.listdir(tmp_path) == []


def test_thread_env(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o.csv"
    monkeypatch.setenv(config.THREADS_ENV_VAR, "zero")
    assert predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(out)]) == 2
    _assert_one_error_line(capsys.readouterr().err, config.THREADS_ENV_VAR, "'zero'")
    assert not out.exists()
    monkeypatch.setenv(config.THREADS_ENV_VAR, "2")
    assert predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / "holdout.csv"), "--out", str(out)]) == 0


# ---------------------------------------------------------------- through `python -m`


def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop(config.THREADS_ENV_VAR, None)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_end_to_end_subprocess(model_dir: Path, tmp_path: Path) -> None:
    proc = _python_m("ml_project.train", "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / "m" / config.MANIFEST_FILE).read_bytes() == (model_dir / config.MANIFEST_FILE).read_bytes()
    out = tmp_path / "p.jsonl"
    proc = _python_m(
        "ml_project.predict",
        "--model",
        str(tmp_path / "m"),
        "--input",
        str(EXAMPLES / "holdout.jsonl"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    in_process = tmp_path / "q.jsonl"
    assert (
        predict.main(["--model", str(model_dir), "--input", str(EXAMPLES / "holdout.jsonl"), "--out", str(in_process)])
        == 0
    )
    assert out.read_bytes() == in_process.read_bytes()


def test_cli_bad_input_subprocess(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("mean_radius\n1.0\n")
    out = tmp_path / "p.csv"
    proc = _python_m("ml_project.predict", "--model", str(model_dir), "--input", str(bad), "--out", str(out))
    assert proc.returncode == 2
    _assert_one_error_line(proc.stderr, "missing column", "'mean_texture'")
    assert proc.stdout == "" and not out.exists()
    proc = _python_m("ml_project.predict", "--model", str(model_dir))
    assert proc.returncode == 2
    _assert_one_error_line(proc.stderr, "required")

