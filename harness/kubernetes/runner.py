"""The verification Job's runner, and the one encoding of a recorded run (the reference bundle).

This file is shipped in the verification Job's ConfigMap and run by the
released image's own Python, where mlrepro is not installed; so (like
`harness.sides.probe`) it is stdlib only and runs under any Python >= 3.8.
For the same reason the reference bundle's encoder lives here:
`harness.reference.encode_reference` calls `encode_bundle`, so a run recorded
by `mlrepro record` and a run in a pod are the same bytes for the same run.

The runner reads `mlrepro-run.json`, written by `mlrepro kubernetes
verification-job` with every command and variable already expanded for the
pod by `harness.sides.steps` (placeholders, `{python}`, step `env`): it has
nothing to interpret, only to execute. It makes the workspace (an empty
`out`, the inputs, the probe), runs the probe and the steps in order, then
prints ONE self-delimited, checksummed frame as the last thing on stdout:

    MLREPRO-RESULT-BEGIN <sha256 of the bundle> <bundle length>
    <the reference bundle (canonical JSON) in base64, 76 characters a line>
    MLREPRO-RESULT-END

The sha256 in the header is the bundle's own sha256, the name of the
reference it is. Whatever the steps print before it is ignored by
`harness.kubernetes.bundle`, which checks length and checksum: a truncated or
altered log is refused, never compared. A step that fails (or the probe)
prints `MLREPRO-RESULT-FAILED {"step": ..., "exit_code": ...}` instead of a
bundle, and the runner exits 1, so the Job is marked failed.

    python mlrepro-runner.py /etc/mlrepro/mlrepro-run.json
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

BEGIN = "MLREPRO-RESULT-BEGIN"
END = "MLREPRO-RESULT-END"
FAILED = "MLREPRO-RESULT-FAILED"
LINE = 76
#: The reference bundle's format and schema (`harness.reference` re-exports them).
FORMAT = "mlrepro-reference"
SCHEMA = 1
#: The run description's schema (`mlrepro-run.json`, written by `harness.kubernetes.verification`).
RUN_SCHEMA = 1


def canonical(value):
    """The one JSON form of a bundle: sorted keys, no whitespace, ASCII, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def bundle_payload(where, lock_sha256, image_id, probe, files):
    """The payload of a reference bundle: the run's probe and artifacts (bytes, sha256, size)."""
    return {
        "where": where,
        "lock_sha256": lock_sha256,
        "image_id": image_id,
        "probe": probe,
        "artifacts": {
            path: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                   "base64": base64.b64encode(data).decode("ascii")}
            for path, data in sorted(files.items())
        },
    }


def encode_bundle(where, lock_sha256, image_id, probe, files):
    """The bundle's bytes (one line of canonical JSON): the same run always gives the same bytes."""
    payload = bundle_payload(where, lock_sha256, image_id, probe, files)
    document = {"format": FORMAT, "schema": SCHEMA, "payload_sha256": hashlib.sha256(canonical(payload)).hexdigest(),
                "payload": payload}
    return canonical(document) + b"\n"


def frame(bundle):
    """The log lines carrying `bundle` (bytes): header with sha256 and length, base64 lines, end line."""
    text = base64.b64encode(bundle).decode("ascii")
    lines = [text[i:i + LINE] for i in range(0, len(text), LINE)]
    header = "%s %s %d" % (BEGIN, hashlib.sha256(bundle).hexdigest(), len(bundle))
    return "\n".join([header] + lines + [END]) + "\n"


def run(argv, timeout, env, echo=True):
    """(exit code, or None on timeout; combined output). The whole process group is killed on timeout."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    except OSError as exc:
        return 127, "cannot start %s: %s\n" % (argv[0], exc)
    try:
        output, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        output, _ = process.communicate()
        code = None
    text = output.decode("utf-8", "replace")
    if echo and text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    return code, text


def prepare(spec):
    """The workspace: an empty `out`, the inputs and the probe copied from the ConfigMap's files."""
    files = spec["files_dir"]
    shutil.rmtree(spec["out"], ignore_errors=True)
    os.makedirs(spec["out"])
    os.makedirs(spec["inputs"], exist_ok=True)
    shutil.copyfile(os.path.join(files, spec["probe_file"]), spec["probe_path"])
    for name, key in sorted(spec["input_files"].items()):
        shutil.copyfile(os.path.join(files, key), os.path.join(spec["inputs"], name))


def failed(step, code, text):
    """The failure line (the step's output is in the log above it) and the runner's exit code."""
    sys.stdout.write("%s %s\n" % (FAILED, json.dumps({"step": step, "exit_code": code, "last": text.strip()[-300:]},
                                                     sort_keys=True)))
    sys.stdout.flush()
    return 1


def execute(spec):
    """Run the probe and the steps; print the frame (0) or the failure line (1)."""
    prepare(spec)
    base = dict(os.environ)
    code, text = run(spec["probe"]["argv"], spec["probe"]["timeout"], base, echo=False)
    try:
        probe = json.loads(text.strip().splitlines()[-1]) if code == 0 else None
    except (ValueError, IndexError):
        probe = None
    if not isinstance(probe, dict):
        sys.stdout.write(text)
        return failed("probe", code, text)
    for step in spec["steps"]:
        sys.stdout.write("mlrepro: step %s\n" % step["name"])
        sys.stdout.flush()
        env = dict(base)
        env.update(step["env"])
        code, text = run(step["argv"], step["timeout"], env)
        if code != 0:
            return failed(step["name"], code, text)
    files = {}
    for path in spec["artifacts"]:
        full = os.path.join(spec["out"], path)
        if os.path.isfile(full):
            with open(full, "rb") as fh:
                files[path] = fh.read()
    bundle = encode_bundle(spec["where"], spec["lock_sha256"], spec["image_id"], probe, files)
    sys.stdout.write(frame(bundle))
    sys.stdout.flush()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        with open(argv[0], "rb") as fh:
            spec = json.loads(fh.read().decode("utf-8"))
        if spec.get("schema") != RUN_SCHEMA:
            raise ValueError("schema %r, expected %d" % (spec.get("schema"), RUN_SCHEMA))
    except (IndexError, OSError, ValueError, AttributeError) as exc:
        sys.stderr.write("error: expected the run description (mlrepro-run.json) as argument, found %s\n" % exc)
        return 2
    return execute(spec)


if __name__ == "__main__":
    sys.exit(main())
