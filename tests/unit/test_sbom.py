"""The image's CycloneDX SBOM: schema-valid, deterministic, read back exactly, and cross-checked with the lock."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.attest.errors import AttestError
from harness.attest.sbom import MEDIA_CYCLONEDX, image_sbom, lock_mismatches, sbom_packages, validate_sbom
from harness.compare import normalize_name

# What the probe reports for the example project's image (pip is installer tooling, present anyway).
IMAGE = {
    "numpy": "2.2.6",
    "scipy": "1.15.3",
    "scikit-learn": "1.6.1",
    "joblib": "1.5.1",
    "threadpoolctl": "3.6.0",
    "skops": "0.11.0",
    "pip": "25.1.1",
}
ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "2" * 64


def sbom(packages=IMAGE, **changes) -> bytes:
    inputs = {"image_name": "registry.example/ml:1.0", "image_id": ID, "tool_version": "0.7.0", **changes}
    return image_sbom(packages, **inputs)


def document(**changes) -> dict:
    return json.loads(sbom(**changes))


def corrupted(change) -> bytes:
    data = document(image_digest=DIGEST)
    change(data)
    return json.dumps(data).encode()


# --- the document -----------------------------------------------------------


def test_a_realistic_sbom_validates_and_lists_every_package_with_its_purl():
    data = sbom(image_digest=DIGEST)
    validate_sbom(data)  # raises when the library's strict validator rejects it
    doc = json.loads(data)
    assert MEDIA_CYCLONEDX == "application/vnd.cyclonedx+json"
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")
    listed = {c["name"]: (c["type"], c["version"], c["purl"], c["bom-ref"]) for c in doc["components"]}
    assert listed == {
        name: ("library", version, f"pkg:pypi/{name}@{version}", f"pkg:pypi/{name}@{version}")
        for name, version in IMAGE.items()
    }
    assert [c["name"] for c in doc["components"]] == sorted(IMAGE)


def test_metadata_names_the_image_and_the_tool():
    meta = document(image_digest=DIGEST)["metadata"]
    assert meta["component"]["type"] == "container"
    assert meta["component"]["name"] == "registry.example/ml:1.0"
    assert meta["component"]["version"] == DIGEST
    assert document()["metadata"]["component"]["version"] == ID  # no digest (not pushed): the image id
    assert [(t["name"], t["version"]) for t in meta["tools"]["components"]] == [("mlrepro", "0.7.0")]
    assert meta["timestamp"].startswith("1970-01-01T00:00:00")


def test_the_image_depends_on_every_package():
    doc = document()
    root = doc["metadata"]["component"]["bom-ref"]
    (entry,) = [d for d in doc["dependencies"] if d["ref"] == root]
    assert sorted(entry["dependsOn"]) == sorted(c["bom-ref"] for c in doc["components"])


def test_names_are_normalised_in_the_sbom():
    doc = document(packages={"Scikit_Learn": "1.6.1", "Typing.Extensions": "4.12.2"})
    assert [(c["name"], c["purl"]) for c in doc["components"]] == [
        ("scikit-learn", "pkg:pypi/scikit-learn@1.6.1"),
        ("typing-extensions", "pkg:pypi/typing-extensions@4.12.2"),
    ]


def test_one_package_at_two_versions_is_refused():
    with pytest.raises(ValueError, match="scikit-learn is listed at 1.6.0 and 1.6.1"):
        sbom({"scikit-learn": "1.6.0", "Scikit_Learn": "1.6.1"})


def test_without_the_library_the_error_says_what_to_install(monkeypatch):
    for name in [n for n in sys.modules if n.split(".")[0] in ("cyclonedx", "packageurl")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cyclonedx", None)
    with pytest.raises(AttestError) as raised:
        sbom()
    assert str(raised.value) == "the SBOM needs cyclonedx-python-lib: pip install 'mlrepro[attest]'"


# --- validation ---------------------------------------------------------------


def _drop_version(doc):
    del doc["components"][0]["version"]


def _bad_type(doc):
    doc["components"][1]["type"] = "not-a-type"


def _bad_serial(doc):
    doc["serialNumber"] = "not-a-urn"


def _old_spec(doc):
    doc["specVersion"] = "1.2"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_drop_version, "components[0] (joblib) has version None"),
        (_bad_type, "$.components[1].type: 'not-a-type' is not one of"),
        (_bad_serial, "$.serialNumber: 'not-a-urn' does not match"),
        (_old_spec, "declares specVersion '1.2', expected CycloneDX '1.6'"),
    ],
)
def test_an_altered_sbom_fails_validation_with_one_line(change, fragment):
    with pytest.raises(AttestError) as raised:
        validate_sbom(corrupted(change))
    message = str(raised.value)
    assert fragment in message
    assert "\n" not in message
    assert message.endswith("regenerate it with `mlrepro release`")


def test_a_long_validation_error_is_cut_to_200_characters():
    def huge_type(doc):
        doc["components"][0]["type"] = "x" * 1000

    with pytest.raises(AttestError) as raised:
        validate_sbom(corrupted(huge_type))
    detail = str(raised.value).split(": ", 1)[1].rsplit("; regenerate", 1)[0]
    assert len(detail) == 200
    assert detail.endswith("…")


def test_not_json_fails_validation_with_one_line():
    with pytest.raises(AttestError, match=r"^the SBOM is not JSON \(.*\): expected a CycloneDX JSON document; "):
        validate_sbom(b"{not json")


# --- determinism ----------------------------------------------------------------


def test_the_same_inputs_give_the_same_bytes():
    assert sbom(image_digest=DIGEST) == sbom(image_digest=DIGEST)
    assert sbom(dict(reversed(list(IMAGE.items())))) == sbom()  # input order does not matter


def test_other_inputs_give_other_bytes_and_serial_numbers():
    other = {**IMAGE, "numpy": "2.2.5"}
    assert sbom(other) != sbom()
    assert json.loads(sbom(other))["serialNumber"] != document()["serialNumber"]
    assert sbom({k: v for k, v in IMAGE.items() if k != "pip"}) != sbom()
    assert document(image_id="sha256:" + "3" * 64)["serialNumber"] != document()["serialNumber"]


# --- reading it back ---------------------------------------------------------------

NAMES = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?\Z")
VERSIONS = st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){0,3}\Z")
PACKAGE_SETS = st.lists(st.tuples(NAMES, VERSIONS), max_size=12, unique_by=lambda p: normalize_name(p[0])).map(dict)


@settings(max_examples=40, deadline=None)
@given(PACKAGE_SETS)
def test_sbom_packages_reads_back_the_normalised_packages(packages):
    assert sbom_packages(sbom(packages)) == {normalize_name(n): v for n, v in packages.items()}


def test_sbom_packages_reads_the_realistic_set():
    assert sbom_packages(sbom()) == IMAGE


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"[1, 2", "the SBOM is not JSON"),
        (b"[]", "bomFormat is 'list', expected 'CycloneDX'"),
        (b'{"bomFormat": "SPDX"}', "bomFormat is 'SPDX'"),
        (b'{"bomFormat": "CycloneDX", "components": {}}', "components is dict, expected a list"),
        (
            b'{"bomFormat": "CycloneDX", "components": [{"type": "library", "name": "numpy"}]}',
            "(numpy) has version None",
        ),
        (
            b'{"bomFormat": "CycloneDX", "components": [{"type": "library", "name": "numpy", "version": "1"},'
            b' {"type": "library", "name": "NumPy", "version": "2"}]}',
            "numpy at 1 and 2",
        ),
    ],
)
def test_sbom_packages_refuses_malformed_documents_with_one_line(data, fragment):
    with pytest.raises(ValueError) as raised:
        sbom_packages(data)
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_sbom_packages_includes_nested_libraries_only():
    data = {
        "bomFormat": "CycloneDX",
        "components": [
            {
                "type": "application",
                "name": "app",
                "components": [{"type": "library", "name": "Six", "version": "1.17.0"}],
            },
            {"type": "library", "name": "numpy", "version": "2.2.6"},
        ],
    }
    assert sbom_packages(json.dumps(data).encode()) == {"numpy": "2.2.6", "six": "1.17.0"}


# --- cross-check with the lock -----------------------------------------------------


def test_a_package_outside_the_lock_is_named():
    lock = {k: v for k, v in IMAGE.items() if k != "skops"}
    assert lock_mismatches(IMAGE, lock) == ("skops 0.11.0 is in the image but not in the lock",)


def test_another_version_names_both():
    lock = {**IMAGE, "numpy": "2.2.5"}
    assert lock_mismatches(IMAGE, lock) == ("numpy 2.2.6 is in the image but the lock pins 2.2.5",)


def test_messages_are_sorted_by_name():
    lock = {"numpy": "2.2.5"}
    names = [message.split()[0] for message in lock_mismatches(IMAGE, lock)]
    assert names == ["joblib", "numpy", "scikit-learn", "scipy", "skops", "threadpoolctl"]


def test_installer_tools_are_exempt_by_default_and_on_request():
    image = {**IMAGE, "setuptools": "80.9.0", "wheel": "0.45.1"}
    lock = {k: v for k, v in IMAGE.items() if k != "pip"}
    assert lock_mismatches(image, lock) == ()
    assert lock_mismatches(image, lock, exempt=["Wheel"]) == (
        "pip 25.1.1 is in the image but not in the lock",
        "setuptools 80.9.0 is in the image but not in the lock",
    )


def test_spelling_variants_are_one_package():
    assert lock_mismatches({"Scikit_Learn": "1.6.1"}, {"scikit-learn": "1.6.1"}) == ()
    assert lock_mismatches({"Scikit_Learn": "1.6.1"}, {"scikit.learn": "1.6.0"}) == (
        "scikit-learn 1.6.1 is in the image but the lock pins 1.6.0",
    )


def test_equal_sets_and_lock_only_packages_give_nothing():
    assert lock_mismatches(IMAGE, IMAGE) == ()
    assert lock_mismatches({"numpy": "2.2.6"}, IMAGE) == ()  # missing from the image: verification's concern


@given(st.dictionaries(NAMES, VERSIONS, max_size=20))
def test_a_set_matches_itself(packages):
    assert lock_mismatches(packages, packages) == ()
