"""Comparison rules: exact messages for the documented examples, properties for the rest."""

from __future__ import annotations

import ast
import copy
import csv
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import harness.compare
from harness.compare import (
    ARTIFACT_MODES,
    DEFAULT_IGNORED_PACKAGES,
    ArtifactResult,
    ArtifactRule,
    Difference,
    artifact_differences,
    compare_artifact,
    compare_environments,
    compare_packages,
    compare_python,
    normalize_name,
    numbers_close,
)

# ------------------------------------------------------------------ packages


def messages(differences):
    return [d.message for d in differences]


def test_package_examples_from_the_spec():
    lock = {"scikit-learn": "1.9.1", "numpy": "2.4.6"}
    image = {"scikit-learn": "1.9.1", "numpy": "2.4.6", "leftpad": "1.0"}
    host = {"scikit-learn": "1.3.2", "numpy": "2.4.6"}
    diffs = compare_packages(lock, image, host)
    assert messages(diffs) == [
        "leftpad: lock -, image 1.0, host -",
        "scikit-learn: lock 1.9.1, image 1.9.1, host 1.3.2",
    ]
    assert [(d.category, d.subject, d.severity) for d in diffs] == [
        ("package", "leftpad", "drift"),
        ("package", "scikit-learn", "drift"),
    ]
    assert diffs[1].details["problems"] == ["host version differs from lock"]


def test_image_must_equal_lock_both_ways():
    diffs = compare_packages({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2.1", "d": "4"}, None)
    assert messages(diffs) == [
        "b: lock 2, image 2.1, host not run",
        "c: lock 3, image -, host not run",
        "d: lock -, image 4, host not run",
    ]
    assert {d.severity for d in diffs} == {"drift"}


def test_names_are_normalised_on_input():
    assert compare_packages({"Scikit_Learn": "1"}, {"scikit.learn": "1"}, {"SCIKIT-learn": "1"}) == []
    assert normalize_name("Zope.Interface__x") == "zope-interface-x"


def test_host_missing_locked_package_is_drift():
    (diff,) = compare_packages({"numpy": "2.4.6"}, {"numpy": "2.4.6"}, {})
    assert diff.message == "numpy: lock 2.4.6, image 2.4.6, host -"
    assert diff.severity == "drift"


@pytest.mark.parametrize("mode, expected", [("drift", ["drift"]), ("note", ["note"]), ("ignore", [])])
def test_host_extras_policy(mode, expected):
    diffs = compare_packages({"a": "1"}, {"a": "1"}, {"a": "1", "pytest": "8.0"}, host_extras=mode)
    assert [d.severity for d in diffs] == expected
    if mode == "drift":
        assert diffs[0].message == "pytest: lock -, image -, host 8.0"
    if mode == "note":  # tooling on the host is summarised in one note
        assert diffs[0].subject == "host extras" and diffs[0].message.endswith(": pytest 8.0")


def test_unlocked_package_in_image_and_on_host_is_the_images_drift():
    (diff,) = compare_packages({}, {"leftpad": "1.0"}, {"leftpad": "1.0"}, host_extras="ignore")
    assert diff.severity == "drift"
    assert diff.message == "leftpad: lock -, image 1.0, host 1.0"
    assert diff.details["problems"] == ["in image but not in lock"]


def test_ignored_packages_are_skipped_everywhere():
    lock = {"numpy": "2"}
    image = {"numpy": "2", "pip": "24.0", "Setuptools": "70"}
    host = {"numpy": "2", "pip": "23.1", "wheel": "0.4"}
    assert compare_packages(lock, image, host, host_extras="drift") == []
    assert messages(compare_packages(lock, image, host, ignore={"Setuptools"}, host_extras="drift")) == [
        "pip: lock -, image 24.0, host 23.1",
        "wheel: lock -, image -, host 0.4",
    ]


def test_invalid_host_extras():
    with pytest.raises(ValueError, match="host_extras='sometimes'"):
        compare_packages({}, {}, {}, host_extras="sometimes")


package_names = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,8}", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", fullmatch=True)
package_maps = st.dictionaries(package_names, versions, max_size=8)


@settings(max_examples=50)
@given(package_maps)
def test_lock_equal_image_equal_host_is_clean(packages):
    assert compare_packages(packages, packages, packages, host_extras="drift") == []
    assert compare_packages(packages, packages, None) == []


@settings(max_examples=50)
@given(package_maps, package_maps, st.one_of(st.none(), package_maps))
def test_one_sorted_difference_per_package(lock, image, host):
    diffs = compare_packages(lock, image, host, host_extras="drift")
    subjects = [d.subject for d in diffs]
    assert subjects == sorted(set(subjects))
    assert not set(subjects) & DEFAULT_IGNORED_PACKAGES
    lock_n = {normalize_name(k): v for k, v in lock.items()}
    image_n = {normalize_name(k): v for k, v in image.items()}
    # Every mismatch between lock and image is reported, whatever the host did.
    for name in set(lock_n) | set(image_n):
        if lock_n.get(name) != image_n.get(name) and name not in DEFAULT_IGNORED_PACKAGES:
            assert name in subjects


# -------------------------------------------------------------------- python


def test_python_patch_difference_under_minor_is_a_note():
    (diff,) = compare_python("3.11.2", "3.11.7")
    assert diff.message == "python: image 3.11.2, host 3.11.7 (patch level differs; policy 'minor' allows it)"
    assert (diff.category, diff.severity) == ("python", "note")


@pytest.mark.parametrize(
    "image, host, policy, severity",
    [
        ("3.11.7", "3.11.7", "exact", None),
        ("3.11.2", "3.11.7", "exact", "drift"),
        ("3.11.2", "3.12.0", "minor", "drift"),
        ("3.11.2", "3.11.7", "ignore", "note"),
        ("3.11.2", "3.12.0", "ignore", "note"),
        ("3.11.2", "4.0.0", "ignore", "drift"),
        ("3.12.0rc1", "3.12.0", "minor", "note"),
        ("garbage", "3.12.0", "ignore", "drift"),
    ],
)
def test_python_policies(image, host, policy, severity):
    diffs = compare_python(image, host, policy=policy)
    assert [d.severity for d in diffs] == ([severity] if severity else [])


def test_python_messages_name_the_policy():
    assert messages(compare_python("3.11.2", "3.12.0", policy="minor")) == [
        "python: image 3.11.2, host 3.12.0 (minor version differs; policy 'minor' requires the same major.minor version)"
    ]
    assert messages(compare_python("3.11.2", "3.12.0", policy="ignore")) == [
        "python: image 3.11.2, host 3.12.0 (minor version differs; policy 'ignore' allows it)"
    ]
    assert messages(compare_python("3.11.2", "3.11.7", policy="exact")) == [
        "python: image 3.11.2, host 3.11.7 (policy 'exact' requires identical versions)"
    ]


def test_invalid_python_policy():
    with pytest.raises(ValueError, match="policy='loose'"):
        compare_python("3.11.2", "3.11.2", policy="loose")


# -------------------------------------------------------------- environments

PROBE = {
    "schema": 1,
    "python": {"version": "3.11.7", "implementation": "CPython", "compiler": "GCC 12.2.0", "executable": "/usr/local/bin/python"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36", "release": "6.1.0-18-amd64"},
    "packages": {"numpy": "2.4.6"},
    "threadpools": [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 1, "version": "0.3.27",
         "architecture": "Haswell", "filename": "libscipy_openblas64_-ff651d7f.so"},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 1, "version": None,
         "architecture": None, "filename": "libgomp.so.1.0.0"},
    ],
    "env": {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"},
}


def host_probe(**changes):
    host = copy.deepcopy(PROBE)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if value is None:
            del host[section][key]
        else:
            host[section][key] = value
    return host


def test_identical_probes_are_clean_and_paths_are_not_compared():
    host = host_probe(python__executable="/home/ci/.venv/bin/python", platform__release="5.15.0-generic")
    assert compare_environments(PROBE, host) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"env__OMP_NUM_THREADS": None}, [("env", "OMP_NUM_THREADS", "drift", "OMP_NUM_THREADS: image 1, host unset")]),
        ({"env__MKL_CBWR": "AVX2"}, [("env", "MKL_CBWR", "drift", "MKL_CBWR: image unset, host AVX2")]),
        ({"platform__machine": "aarch64"}, [("platform", "machine", "drift", "platform machine: image x86_64, host aarch64")]),
        ({"platform__system": "Darwin"}, [("platform", "system", "drift", "platform system: image Linux, host Darwin")]),
        ({"platform__libc": "glibc 2.31"}, [("platform", "libc", "note", "platform libc: image glibc 2.36, host glibc 2.31")]),
        ({"python__implementation": "PyPy"}, [("python", "implementation", "drift", "python implementation: image CPython, host PyPy")]),
        ({"python__version": "3.11.9"}, [("python", "python", "note", "python: image 3.11.7, host 3.11.9 (patch level differs; policy 'minor' allows it)")]),
    ],
)
def test_environment_differences(changes, expected):
    diffs = compare_environments(PROBE, host_probe(**changes))
    assert [(d.category, d.subject, d.severity, d.message) for d in diffs] == expected


def with_pool(probe, api, **changes):
    probe = copy.deepcopy(probe)
    for pool in probe["threadpools"]:
        if pool["user_api"] == api:
            pool.update(changes)
    return probe


def test_thread_differences():
    assert messages(compare_environments(PROBE, with_pool(PROBE, "blas", num_threads=2))) == [
        "threads: blas num_threads image 1, host 2"
    ]
    diffs = compare_environments(PROBE, with_pool(PROBE, "blas", internal_api="mkl", version="2024.0", architecture="SkylakeX"))
    assert [(d.subject, d.severity, d.message) for d in diffs] == [
        ("blas.internal_api", "drift", "threads: blas internal_api image openblas, host mkl"),
        ("blas.version", "drift", "threads: blas version image 0.3.27, host 2024.0"),
        ("blas.architecture", "note", "threads: blas architecture image Haswell, host SkylakeX"),
    ]
    # The filename carries a wheel-specific hash and is not a behaviour.
    assert compare_environments(PROBE, with_pool(PROBE, "blas", filename="libopenblas.so")) == []


def test_thread_pool_absent_on_one_side():
    host = copy.deepcopy(PROBE)
    host["threadpools"] = [p for p in host["threadpools"] if p["user_api"] != "openmp"]
    (diff,) = compare_environments(PROBE, host)
    assert (diff.category, diff.subject, diff.severity) == ("threads", "openmp", "drift")
    assert diff.message == "threads: openmp loaded in image (openmp), none in host"


def test_python_policy_is_passed_through():
    host = host_probe(python__version="3.11.9")
    assert [d.severity for d in compare_environments(PROBE, host, python_policy="exact")] == ["drift"]


env_values = st.dictionaries(st.sampled_from(["OMP_NUM_THREADS", "MKL_CBWR", "PYTHONHASHSEED"]), st.sampled_from(["0", "1", "2", ""]))


@settings(max_examples=50)
@given(env_values, env_values, st.integers(1, 3), st.integers(1, 3))
def test_environment_comparison_is_symmetric_and_reflexive(env_a, env_b, threads_a, threads_b):
    a = with_pool({**PROBE, "env": env_a}, "blas", num_threads=threads_a)
    b = with_pool({**PROBE, "env": env_b}, "blas", num_threads=threads_b)
    assert compare_environments(a, a) == []
    forward = {(d.category, d.subject, d.severity) for d in compare_environments(a, b)}
    backward = {(d.category, d.subject, d.severity) for d in compare_environments(b, a)}
    assert forward == backward
    assert len(forward) == len({k for k in set(env_a) | set(env_b) if env_a.get(k) != env_b.get(k)}) + (threads_a != threads_b)


# ----------------------------------------------------------------- artifacts


def csv_bytes(header, rows):
    lines = [",".join(header)] + [",".join(repr(v) if isinstance(v, float) else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def test_missing_sides():
    rule = ArtifactRule("predictions.csv", "numeric")
    assert compare_artifact(rule, None, b"x").summary == "predictions.csv: missing from image"
    assert compare_artifact(rule, b"x", None).summary == "predictions.csv: missing from host"
    result = compare_artifact(rule, None, None)
    assert (result.status, result.summary) == ("missing", "predictions.csv: missing from both")


def test_bitwise():
    rule = ArtifactRule("model.skops")
    assert compare_artifact(rule, b"abc", b"abc").status == "identical"
    result = compare_artifact(rule, b"abc", b"abd")
    assert result.status == "differs"
    assert result.summary.startswith("model.skops: bytes differ from offset 2 (image 3 bytes, sha256 ")
    assert result.details["sha256"]["image"] != result.details["sha256"]["host"]


def test_numeric_example_from_the_spec():
    rows_image = [[i, 0.3] for i in range(114)]
    rows_host = [[i, 0.3] for i in range(114)]
    rows_image[0], rows_host[0] = [0, 1.0], [0, 1.021]    # the largest absolute difference
    rows_image[1], rows_host[1] = [1, 0.1], [1, 0.0957]   # the largest relative one
    for i in range(2, 37):
        rows_host[i] = [i, 0.3001]
    result = compare_artifact(
        ArtifactRule("predictions.csv", "numeric"), csv_bytes(["id", "proba"], rows_image), csv_bytes(["id", "proba"], rows_host)
    )
    assert result.status == "differs"
    assert result.summary == "predictions.csv: 37 of 114 rows differ, max abs diff 0.021, max rel diff 0.043"
    assert result.details["rows"] == 114
    assert result.details["rows_differing"] == 37
    assert len(result.details["first_differences"]) == 5
    assert result.details["first_differences"][0] == {"row": 0, "cells": {"proba": {"image": "1.0", "host": "1.021"}}}
    assert json.loads(json.dumps(result.details, allow_nan=False)) == result.details


def test_numeric_row_count_and_columns():
    rule = ArtifactRule("predictions.csv", "numeric")
    rows = [[i, 0.5] for i in range(114)]
    result = compare_artifact(rule, csv_bytes(["id", "p"], rows), csv_bytes(["id", "p"], rows[:113]))
    assert (result.status, result.summary) == ("differs", "predictions.csv: image has 114 rows, host 113")
    result = compare_artifact(rule, csv_bytes(["id", "p"], rows), csv_bytes(["id", "q"], rows))
    assert result.summary == "predictions.csv: columns differ (only in image: p; only in host: q)"
    result = compare_artifact(rule, csv_bytes(["id", "p"], rows), csv_bytes(["p", "id"], rows))
    assert result.summary == "predictions.csv: column order differs (image: id, p; host: p, id)"


def test_numeric_tolerance_and_non_numeric_cells():
    image = b"id,label,p\n1,cat,0.5\n2,dog,0.25\n"
    host = b"id,label,p\n1,cat,0.5000001\n2,cow,0.25\n"
    result = compare_artifact(ArtifactRule("p.csv", "numeric", atol=1e-6), image, host)
    assert result.summary == "p.csv: 1 of 2 rows differs, max abs diff 1e-07, max rel diff 2e-07; 1 non-numeric cell differs (atol 1e-06, rtol 0)"
    assert result.details["first_differences"] == [{"row": 1, "cells": {"label": {"image": "dog", "host": "cow"}}}]
    equivalent = compare_artifact(ArtifactRule("p.csv", "numeric", atol=1e-6), image, image.replace(b"0.5\n", b"0.5000001\n"))
    assert equivalent.status == "equivalent"
    assert equivalent.summary == "p.csv: bytes differ but the data is equal within atol 1e-06, rtol 0 (2 rows; max abs diff 1e-07, max rel diff 2e-07)"


def test_numeric_jsonl_flattens_nested_lists():
    image = b'{"id": 1, "proba": [0.1, 0.9]}\n{"id": 2, "proba": [0.5, 0.5]}\n'
    host = b'{"proba": [0.1, 0.8], "id": 1}\n\n{"id": 2, "proba": [0.5, 0.5]}\n'
    result = compare_artifact(ArtifactRule("predictions.jsonl", "numeric"), image, host)
    assert result.details["columns"] == ["id", "proba[0]", "proba[1]"]
    assert result.details["rows_differing"] == 1
    assert result.details["first_differences"][0]["cells"] == {"proba[1]": {"image": 0.9, "host": 0.8}}


def test_numeric_json_array_of_objects_and_type_awareness():
    rule = ArtifactRule("predictions.json", "numeric")
    same = compare_artifact(rule, b'[{"a": 1, "b": "x"}]', b'[ {"b": "x", "a": 1.0} ]')
    assert same.status == "equivalent"
    # JSON true is not the number 1, and the string "1" is not either.
    assert compare_artifact(rule, b'[{"a": true}]', b'[{"a": 1}]').status == "differs"
    assert compare_artifact(rule, b'[{"a": "1"}]', b'[{"a": 1}]').status == "differs"


@pytest.mark.parametrize(
    "path, image, host, expected",
    [
        ("p.csv", b"a\n\xff\n", b"a\n1\n", "p.csv: image is not valid UTF-8 (invalid start byte at byte 2)"),
        ("p.json", b"{}", b"[1]", "p.json: image is a JSON object, expected an array of objects; host element 0 is a JSON number, expected an object"),
        ("p.jsonl", b'{"a": 1}\n{"a": \n', b'{"a": 1}\n', "p.jsonl: image line 2 is not valid JSON (Expecting value at line 1 column 7)"),
        ("p.json", b"", b"[]", "p.json: image is not valid JSON (Expecting value at line 1 column 1)"),
    ],
)
def test_unparsable_content_differs_without_raising(path, image, host, expected):
    result = compare_artifact(ArtifactRule(path, "numeric"), image, host)
    assert (result.status, result.summary) == ("differs", expected)
    assert result.details["unparsable"]


def test_json_mode():
    rule = ArtifactRule("metrics.json", "json", atol=0.01)
    image = b'{"accuracy": 0.95, "per_class": [0.9, 1.0], "model": "rf", "n": 3}'
    assert compare_artifact(rule, image, b'{"n": 3, "model": "rf", "per_class": [0.9, 1.0], "accuracy": 0.951}').status == "equivalent"
    result = compare_artifact(rule, image, b'{"accuracy": 0.90, "per_class": [0.9], "model": "gb", "n": 3}')
    assert result.status == "differs"
    assert result.summary == "metrics.json: 3 of 5 values differ: accuracy, per_class[1], model; max abs diff 0.05, max rel diff 0.0526"
    assert result.details["differing_keys"] == ["accuracy", "per_class[1]", "model"]


def test_json_mode_with_key():
    rule = ArtifactRule("metrics.json", "json", key="scores.test")
    image = b'{"scores": {"test": 0.9, "train": 1.0}, "time": 12.5}'
    host = b'{"scores": {"test": 0.9, "train": 0.99}, "time": 13.1}'
    result = compare_artifact(rule, image, host)
    assert (result.status, result.summary) == ("equivalent", "metrics.json scores.test: bytes differ but the JSON data is equal (1 value)")
    missing = compare_artifact(rule, image, b'{"scores": {}}')
    assert (missing.status, missing.summary) == ("differs", "metrics.json: key 'scores.test' missing from host")


def test_hash_mode():
    rule = ArtifactRule("manifest.json", "hash", key="canonical_hash")
    image = b'{"canonical_hash": "sha256:ab12", "built": "monday"}'
    result = compare_artifact(rule, image, b'{"canonical_hash": "sha256:cd34", "built": "monday"}')
    assert (result.status, result.summary) == ("differs", "manifest.json canonical_hash: image sha256:ab12, host sha256:cd34")
    same = compare_artifact(rule, image, b'{"canonical_hash": "sha256:ab12", "built": "tuesday"}')
    assert same.status == "equivalent"
    missing = compare_artifact(rule, b'{"x": 1}', b'{"y": 1}')
    assert (missing.status, missing.summary) == ("differs", "manifest.json: key 'canonical_hash' missing from both")
    nested = ArtifactRule("manifest.json", "hash", key="hashes.0")
    assert compare_artifact(nested, b'{"hashes": ["a"]}', b'{"hashes": ["a", "b"]}').status == "equivalent"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "fuzzy"}, "mode='fuzzy'"),
        ({"mode": "hash"}, "needs key="),
        ({"mode": "numeric", "atol": -1.0}, "atol=-1.0"),
        ({"mode": "numeric", "rtol": math.nan}, "rtol=nan"),
    ],
)
def test_invalid_rules(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArtifactRule("x.csv", **kwargs)


def test_artifact_differences():
    rule = ArtifactRule("p.csv")
    results = [compare_artifact(rule, b"a", b"a"), compare_artifact(rule, b"a", b"b"), compare_artifact(rule, None, b"b")]
    diffs = artifact_differences(results)
    assert [(d.category, d.subject, d.severity, d.message) for d in diffs] == [
        ("artifact", "p.csv", "drift", results[1].summary),
        ("artifact", "p.csv", "drift", "p.csv: missing from image"),
    ]
    assert diffs[1].details["status"] == "missing"


def test_evidence_is_made_json_safe():
    diff = Difference("artifact", "x", "x", "drift", {"v": (1, float("nan"), float("-inf")), 3: "k"})
    assert diff.details == {"v": [1, "nan", "-inf"], "3": "k"}
    result = ArtifactResult("x", "bitwise", "differs", "x", {"d": math.inf})
    assert result.details == {"d": "inf"}


# ------------------------------------------------------------ properties

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
)
tolerances = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e3, allow_nan=False), st.sampled_from([1e-12, 1e-9, 1e-6, 0.5]))
modes = st.sampled_from(["bitwise", "numeric", "json", "hash"])


def rule_for(path, mode, atol=0.0, rtol=0.0):
    return ArtifactRule(path, mode, atol=atol, rtol=rtol, key="h" if mode == "hash" else None)


def cell(value):
    return repr(value) if isinstance(value, float) else str(value)


def single_cell_csv(value):
    return f"x\n{cell(value)}\n".encode()


# A UTF-8 byte order mark: every parsing mode reads past it, so BOM + data has
# other bytes but the same content as data.
BOM = b"\xef\xbb\xbf"
# No BOM inside generated text (a header starting with one would lose it on one side only).
text_cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"), max_size=5)
table_cells = st.one_of(st.floats(), st.integers(min_value=-(10**30), max_value=10**30), text_cells, st.booleans(), st.none())
table_rows = st.lists(st.tuples(table_cells, table_cells), max_size=6)
# Hash values are compared exactly, and NaN != NaN: kept out (see test_hash_mode_nan_is_not_itself).
hash_values = st.recursive(
    st.one_of(st.none(), st.booleans(), text_cells, st.integers(-1000, 1000), st.floats(allow_nan=False)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text_cells, inner, max_size=3),
    max_leaves=8,
)


def csv_text(value):
    return "" if value is None else cell(value)


def contents_for_every_mode(rows, hash_value, raw):
    """(rule, bytes) for every mode and every file format a mode reads, all from the same data."""
    objects = [{"x": x, "y": y} for x, y in rows]
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["x", "y"], *([csv_text(x), csv_text(y)] for x, y in rows)])
    return [
        (rule_for("a.bin", "bitwise"), raw),
        (rule_for("a.csv", "numeric"), out.getvalue().encode()),
        (rule_for("a.jsonl", "numeric"), "".join(json.dumps(o) + "\n" for o in objects).encode()),
        (rule_for("a.json", "numeric"), json.dumps(objects).encode()),
        (rule_for("a.json", "json"), json.dumps({"rows": objects, "h": hash_value}).encode()),
        (rule_for("a.json", "hash"), json.dumps({"rows": objects, "h": hash_value}).encode()),
    ]


@settings(max_examples=100)
@given(table_rows, hash_values, st.binary(max_size=200), tolerances)
@example([], None, b"", 0.0)
@example([(-0.0, 0.0), (math.nan, math.inf), (10**30, "nan"), (" 1", True)], {"a": [-0.0]}, b"x,y\n", 0.0)
def test_anything_compared_with_itself_is_identical(rows, hash_value, raw, atol):
    cases = contents_for_every_mode(rows, hash_value, raw)
    assert {rule.mode for rule, _ in cases} == set(ARTIFACT_MODES)
    for rule, data in cases:
        rule = ArtifactRule(rule.path, rule.mode, atol=atol, key=rule.key)
        # Identical bytes settle it before any mode runs, whatever the bytes are...
        assert compare_artifact(rule, raw, raw).status == "identical"
        assert compare_artifact(rule, data, data).status == "identical"
        # ...so the mode itself is checked on other bytes with the same content.
        result = compare_artifact(rule, data, BOM + data)
        expected = "differs" if rule.mode == "bitwise" else "equivalent"
        assert result.status == expected, (rule, data, result.summary)
        assert result.details.get("rows_differing", 0) == result.details.get("values_differing", 0) == 0


def test_hash_mode_nan_is_not_itself():
    # Documents today's behaviour: a hash value is compared exactly, so a NaN
    # there never equals itself once the bytes differ. Hash values are strings
    # in practice; pinned so a change is a decision, not an accident.
    data = b'{"h": NaN}'
    assert compare_artifact(rule_for("a.json", "hash"), data, BOM + data).status == "differs"


@settings(max_examples=200)
@given(numbers, numbers, tolerances, tolerances)
@example(-0.0, 0.0, 0.0, 0.0)
@example(math.nan, math.nan, 0.0, 0.0)
@example(math.inf, math.inf, 0.0, 0.0)
@example(math.inf, -math.inf, 0.0, 0.5)
@example(math.inf, 1.0, 1e3, 1e3)
@example(1e-308, 0.0, 0.0, 0.0)
@example(1e308, -1e308, 0.0, 0.5)
@example(1.7976931348623157e308, -1.7976931348623157e308, 0.0, 1e3)
@example(10**30, 10**30 + 1, 0.0, 0.0)
def test_number_pairs_are_symmetric_and_reflexive(a, b, atol, rtol):
    assert numbers_close(a, a, atol, rtol)
    assert numbers_close(a, b, atol, rtol) == numbers_close(b, a, atol, rtol)


@settings(max_examples=200)
@given(numbers, numbers, tolerances, tolerances)
@example(-0.0, 0.0, 0.0, 0.0)
@example(math.nan, math.nan, 0.0, 0.0)
@example(math.inf, math.inf, 0.0, 0.0)
@example(math.inf, -math.inf, 0.0, 0.5)
@example(1e-308, 0.0, 0.0, 0.0)
@example(1e308, -1e308, 0.0, 1e3)
@example(10**30, 10**30 + 1, 0.0, 0.0)
def test_single_cell_swap_symmetry(a, b, atol, rtol):
    rule = ArtifactRule("p.csv", "numeric", atol=atol, rtol=rtol)
    forward = compare_artifact(rule, single_cell_csv(a), single_cell_csv(b))
    backward = compare_artifact(rule, single_cell_csv(b), single_cell_csv(a))
    for key in ("rows_differing", "max_abs_diff", "max_rel_diff"):
        assert forward.details.get(key) == backward.details.get(key)
    assert forward.status == backward.status
    expected_close = numbers_close(a, b, atol, rtol)
    assert forward.status in (("identical", "equivalent") if expected_close else ("differs",))


def test_edge_cases_pinned():
    numeric = ArtifactRule("p.csv", "numeric")
    assert compare_artifact(numeric, single_cell_csv(-0.0), single_cell_csv(0.0)).status == "equivalent"
    assert compare_artifact(numeric, b"x\nnan\n", b"x\nNaN\n").status == "equivalent"
    assert compare_artifact(numeric, b"x\ninf\n", b"x\nInfinity\n").status == "equivalent"
    result = compare_artifact(numeric, b"x\ninf\n", b"x\n-inf\n")
    assert result.status == "differs"
    assert result.summary == "p.csv: 1 of 1 row differs; 1 non-finite cell differs"
    # An infinity matches nothing finite, however wide the tolerance.
    assert compare_artifact(ArtifactRule("p.csv", "numeric", atol=1e300, rtol=1e3), b"x\ninf\n", b"x\n1\n").status == "differs"
    assert compare_artifact(numeric, single_cell_csv(1e-308), single_cell_csv(0.0)).status == "differs"
    assert compare_artifact(ArtifactRule("p.csv", "numeric", atol=1e-300), single_cell_csv(1e-308), single_cell_csv(0.0)).status == "equivalent"
    # Huge magnitudes: exact arithmetic, no overflow, no rounding into equality.
    huge = compare_artifact(numeric, single_cell_csv(1e308), single_cell_csv(-1e308))
    assert huge.status == "differs"
    assert huge.details["max_abs_diff"] == "inf"  # 2e308 overflows a float; recorded JSON-safely
    assert compare_artifact(numeric, b"x\n123456789012345678901234567890\n", b"x\n123456789012345678901234567891\n").status == "differs"
    # Boundary: exactly at the tolerance is within it.
    assert compare_artifact(ArtifactRule("p.csv", "numeric", atol=0.5), b"x\n1.0\n", b"x\n1.5\n").status == "equivalent"
    # Empty and header-only files.
    assert compare_artifact(numeric, b"", b"\n").status == "equivalent"
    assert compare_artifact(numeric, b"a,b\n", b"a,b\r\n").status == "equivalent"
    assert compare_artifact(numeric, b"", b"a,b\n").summary == "p.csv: columns differ (only in host: a, b)"


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@st.composite
def perturbed_tables(draw):
    """Two tables whose cells differ by far more than atol exactly where `bumped` says."""
    columns = draw(st.integers(1, 3))
    rows = draw(st.integers(0, 15))
    base = [[draw(finite) for _ in range(columns)] for _ in range(rows)]
    bumped = [[draw(st.booleans()) for _ in range(columns)] for _ in range(rows)]
    other = []
    for row, flags in zip(base, bumped):
        new_row = []
        for value, flag in zip(row, flags):
            if flag:
                delta = draw(st.floats(min_value=1e-3, max_value=1.0)) * draw(st.sampled_from([-1, 1]))
            else:
                delta = draw(st.sampled_from([0.0, 1e-9, -1e-9]))
            new_row.append(value + delta)
        other.append(new_row)
    header = [f"c{i}" for i in range(columns)]
    return csv_bytes(header, base), csv_bytes(header, other), sum(any(flags) for flags in bumped)


@settings(max_examples=100)
@given(perturbed_tables())
def test_differences_beyond_tolerance_are_found_and_counted_exactly(tables):
    image, host, expected = tables
    rule = ArtifactRule("p.csv", "numeric", atol=1e-6)
    forward, backward = compare_artifact(rule, image, host), compare_artifact(rule, host, image)
    # Identical bytes are settled without parsing, so they carry no row counts.
    assert forward.details.get("rows_differing", 0) == expected
    assert forward.status == ("differs" if expected else "identical" if image == host else "equivalent")
    for key in ("rows_differing", "max_abs_diff", "max_rel_diff"):
        assert forward.details.get(key) == backward.details.get(key)
    assert forward.status == backward.status


@settings(max_examples=100)
@given(perturbed_tables(), tolerances, tolerances, tolerances, tolerances)
def test_widening_tolerance_never_creates_a_difference(tables, atol, rtol, extra_atol, extra_rtol):
    image, host, _ = tables
    narrow = compare_artifact(ArtifactRule("p.csv", "numeric", atol=atol, rtol=rtol), image, host)
    wide = compare_artifact(ArtifactRule("p.csv", "numeric", atol=atol + extra_atol, rtol=rtol + extra_rtol), image, host)
    if narrow.status in ("identical", "equivalent"):
        assert wide.status == narrow.status
    assert wide.details.get("rows_differing", 0) <= narrow.details.get("rows_differing", 0)


json_leaves = st.one_of(st.none(), st.booleans(), st.text(max_size=5), finite, st.integers(-1000, 1000))
json_docs = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=10)


@settings(max_examples=100)
@given(json_docs, json_docs, tolerances, tolerances)
def test_json_mode_swap_symmetry_and_monotonicity(a, b, atol, rtol):
    image, host = json.dumps(a).encode(), json.dumps(b).encode()
    forward = compare_artifact(ArtifactRule("m.json", "json", atol=atol, rtol=rtol), image, host)
    backward = compare_artifact(ArtifactRule("m.json", "json", atol=atol, rtol=rtol), host, image)
    assert forward.status == backward.status
    for key in ("values_differing", "max_abs_diff", "max_rel_diff"):
        assert forward.details.get(key) == backward.details.get(key)
    wider = compare_artifact(ArtifactRule("m.json", "json", atol=atol * 2 + 1, rtol=rtol), image, host)
    if forward.status != "differs":
        assert wider.status != "differs"
    # Re-serialising the same data (other whitespace, key order) is never a difference.
    reformatted = json.dumps(a, indent=1, sort_keys=True).encode()
    assert compare_artifact(ArtifactRule("m.json", "json"), image, reformatted).status in ("identical", "equivalent")


@settings(max_examples=100)
@given(st.binary(max_size=64), st.binary(max_size=64), modes, st.sampled_from(["a.csv", "a.jsonl", "a.json"]))
def test_arbitrary_bytes_never_raise_and_status_is_symmetric(a, b, mode, path):
    rule = rule_for(path, mode)
    forward, backward = compare_artifact(rule, a, b), compare_artifact(rule, b, a)
    assert forward.status == backward.status
    assert "\n" not in forward.summary
    json.dumps(forward.details, allow_nan=False)


def test_json_paths_that_print_alike_stay_distinct():
    # {"0": []} and {"": {"0": null}} both print as '0'; they are still two leaves.
    doc = b'{"0": [], "": {"0": null}}'
    assert compare_artifact(ArtifactRule("m.json", "json"), doc, b'{"": {"0": null}, "0": []}').status == "equivalent"
    assert compare_artifact(ArtifactRule("m.json", "json"), b'{"a.b": 1}', b'{"a": {"b": 1}}').status == "differs"


def test_threads_not_inspected_on_one_side_is_a_note_not_drift():
    base = {"python": {"version": "3.11.7", "implementation": "CPython"}, "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36"}, "env": {}}
    pools = [{"user_api": "blas", "internal_api": "openblas", "num_threads": 1, "version": "0.3.30"}]
    diffs = compare_environments({**base, "threadpools": None}, {**base, "threadpools": pools})
    assert [(d.category, d.severity) for d in diffs] == [("threads", "note")]
    assert diffs[0].message == "threads: not inspected in image (threadpoolctl is not installed there)"


# ------------------------------------------------------------ the package


def imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_compare_is_pure():
    # No Docker, no terminal, nothing of the harness outside compare itself:
    # the verdict logic must run on recorded data anywhere.
    modules = sorted(Path(harness.compare.__file__).parent.glob("*.py"))
    assert len(modules) > 1
    for path in modules:
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in ("docker", "rich", "subprocess"), f"{path.name} imports {name}"
            assert top != "harness" or name.startswith("harness.compare"), f"{path.name} imports {name}"
        assert len(path.read_text(encoding="utf-8").splitlines()) < 400, f"{path.name}: split it by concept"


def test_public_names_are_re_exported():
    # The names other modules import (grep 'from harness.compare import'); the
    # constants are the only definitions, harness.config validates against them.
    used = {
        "ArtifactResult", "ArtifactRule", "Difference", "DEFAULT_IGNORED_PACKAGES", "artifact_differences",
        "compare_artifact", "compare_environments", "compare_packages", "compare_python", "normalize_name",
        "numbers_close", "plain", "ARTIFACT_MODES", "PYTHON_POLICIES", "HOST_EXTRAS",
    }
    assert used <= set(harness.compare.__all__)
    assert sorted(harness.compare.__all__) == sorted(set(harness.compare.__all__))
    for name in harness.compare.__all__:
        assert getattr(harness.compare, name) is not None, name
