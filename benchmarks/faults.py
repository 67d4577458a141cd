"""Fault-injection campaign (issue 13): randomized faults against the real CLI, a real engine and a real registry.

    .venv/bin/python benchmarks/faults.py --faults 200 --seed 1 --out out/faults.json [--budget-seconds 2400]

Each trial picks one scenario at random (equal weights) and runs `python -m
harness.cli` as a subprocess with a run id of its own (MLREPRO_RUN_ID):

- verify-signal:  `verify` of a tiny project (benchmarks/faults_projects/tiny, outputs equal or made
                  to differ), then SIGINT, SIGTERM, SIGHUP or SIGKILL at a moment drawn uniformly over
                  an undisturbed run's duration; after SIGKILL, `mlrepro clean` (the documented recovery);
- build-signal:   the same during `build --no-cache` of that project with a RUN step unique to the trial;
- release-fault:  `release --sign-key` of a small FROM-scratch image with a signed report, through a
                  proxy (tests' DenyingProxy) that fails the k-th registry request (403 at once, or after
                  a stall longer than --push-timeout), or a signal at a random moment; a release that did
                  not succeed is retried undisturbed (the next release resolves what the last one left);
- step-fault:     `verify` of the project whose step misbehaves on the image, the host or both: exits
                  non-zero, sleeps past its timeout, forks a daemon that leaves its session and keeps
                  stdout open, prints 20 MB, prints terminal escapes and a fake REPRODUCIBLE line, reads
                  stdin, writes another output on one side.

After every trial it checks, and counts as failures:

- traceback:     "Traceback (most recent call last)" in the CLI's stdout or stderr (not in `  | ` evidence);
- exit:          an exit code outside the scenario's documented set (2 on a fault or interrupt, and always
                 2 after `error: interrupted`; 0/1 when the signal came after the work was done; killed by
                 the signal itself only before the CLI installed its handlers or after its work, while the
                 interpreter exits; 1 for outputs that differ; 0 for a daemon, a flood, stdin);
- wrong-verdict: exit 0, a JSON report with "reproducible": true or a REPRODUCIBLE line on stdout when
                 the outputs differ; exit 1 or "reproducible": false when they are equal;
- leftover:      anything of the trial's run ids still there when the CLI (and `clean`) returned:
                 engine containers, volumes, networks, images labeled io.mlrepro.run=<id>; temp dirs
                 $TMPDIR/mlrepro-<id>-*; live processes with MLREPRO_OWNER=<id>:... or MLREPRO_RUN_ID=<id>
                 in /proc/*/environ; a build's intermediate container; the push's local tag;
- record-without-push: a release record whose digest the registry's API does not hold under the tag,
                 or a successful release with no record;
- escapes:       the step's terminal control sequences reaching the CLI's output unescaped;
- hang:          a CLI that had not exited after the per-trial timeout (then killed and cleaned).

Everything it creates is named mlrepro-faults/... (images) or lives in one temporary directory, and is
removed at the end. The CLI runs from a copy of harness/ taken at the start (its sha256 is in the output),
so edits to the tree during a campaign do not mix versions. Signals the campaign inherited as ignored
(nohup, a background job) are reset to their defaults first: the CLI must see them as from a terminal.
`--only I` replays trial I of a seed (same choices; moments scale with this run's reference durations).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

import tests.integration.test_release_registry as registry_tests  # noqa: E402  (_start_registry, _stop, DenyingProxy, write_report)
from harness.attest.keys import generate_key, load_signer  # noqa: E402
from harness.config import load_config  # noqa: E402
from harness.docker.engine import Engine  # noqa: E402
from harness.image.wheelhouse import Target, write_stamp  # noqa: E402
from harness.lock import parse_lock  # noqa: E402
from harness.release import ReleaseRecord  # noqa: E402

FIXTURE = ROOT / "benchmarks" / "faults_projects" / "tiny"
BASE_IMAGE = "mlrepro/python:3.11-bookworm"
IMAGES = "mlrepro-faults"
TRIAL_TIMEOUT = 90.0
PUSH_TIMEOUT, STALL = 3, 6.0
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGKILL")
SCENARIOS = ("verify-signal", "build-signal", "release-fault", "step-fault")
KINDS = ("traceback", "exit", "wrong-verdict", "leftover", "record-without-push", "escapes", "hang")
TRACEBACK = "Traceback (most recent call last)"
WHEEL = b"not installed by this image"
LOCK = f"tiny==1.0 \\\n    --hash=sha256:{hashlib.sha256(WHEEL).hexdigest()}\n"


class Gate:
    """The DenyingProxy's `deny`: counts requests, fails the k-th (armed per trial)."""

    def __init__(self) -> None:
        self.count, self.fail_at, self.lock = 0, None, threading.Lock()

    def arm(self, fail_at: int | None) -> None:
        with self.lock:
            self.count, self.fail_at = 0, fail_at

    def __call__(self, method: str, path: str) -> bool:
        with self.lock:
            self.count += 1
            return self.count == self.fail_at


class Campaign:
    def __init__(self, work: Path, seed: int) -> None:
        self.work, self.seed = work, seed
        self.engine = Engine.connect()
        self.client = docker.from_env(timeout=120)
        self.arch = self.engine.architecture()
        self.markers: list[str] = []  # build markers, to find the engine's intermediate images at the end
        self.registry = self.proxy = None
        self.gate = Gate()
        # The CLI runs from a snapshot of harness/ taken now: the tree may be edited while the campaign runs.
        self.src = work / "src"
        shutil.copytree(ROOT / "harness", self.src / "harness", ignore=shutil.ignore_patterns("__pycache__"))
        files = sorted(self.src.rglob("*.py"))
        self.harness_sha256 = hashlib.sha256(b"".join(f.relative_to(self.src).as_posix().encode() + f.read_bytes() for f in files)).hexdigest()
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        self.revision = head.stdout.strip() or None

    # ------------------------------------------------------------------ the project, the CLI

    def project(self, name: str, *, mode: str = "ok", where: str = "both", arg: str = "", timeout: float = 30,
                image_name: str = f"{IMAGES}/tiny", dockerfile_extra: str = "") -> Path:
        root = self.work / name / "project"
        shutil.copytree(FIXTURE, root)
        (root / "pyproject.template.toml").rename(root / "pyproject.toml.in")
        text = (root / "pyproject.toml.in").read_text()
        (root / "pyproject.toml").write_text(text.format(image_name=image_name, base_image=BASE_IMAGE, mode=mode, where=where,
                                                         arg=arg, timeout=timeout))
        (root / "pyproject.toml.in").unlink()
        if dockerfile_extra:
            dockerfile = (root / "Dockerfile").read_text()
            (root / "Dockerfile").write_text(dockerfile.replace("COPY step.py", dockerfile_extra + "COPY step.py"))
        (root / "requirements.txt").write_text(LOCK)
        (root / "wheels").mkdir()
        (root / "wheels" / "tiny-1.0-py3-none-any.whl").write_bytes(WHEEL)
        write_stamp(root / "wheels", parse_lock(LOCK), Target("3.11", self.arch, "2.36"))
        return root

    def cli(self, args: list, run_id: str, *, at: float | None = None, signame: str | None = None,
            env: dict | None = None) -> dict:
        """Run the CLI; with `signame`, send it that signal `at` seconds after the start (if still running)."""
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        full_env = {**os.environ, "MLREPRO_RUN_ID": run_id, "COLUMNS": "400", **(env or {})}
        full_env.pop("MLREPRO_DEBUG", None)
        with open(logs / f"{run_id}.out", "w+b") as out, open(logs / f"{run_id}.err", "w+b") as err:
            started = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=self.src, env=full_env,
                                    stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True)
            sent = False
            if signame is not None:
                try:
                    proc.wait(at)
                except subprocess.TimeoutExpired:
                    proc.send_signal(getattr(signal, signame))
                    sent = True
            try:
                code = proc.wait(max(1.0, TRIAL_TIMEOUT - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:  # a hang: end it and its group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            seconds = time.monotonic() - started
            proc.stdin.close()
            out.seek(0), err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        return {"code": code, "stdout": stdout, "stderr": stderr, "seconds": round(seconds, 2), "signal_sent": sent}

    # ------------------------------------------------------------------ what a run left

    def leftovers(self, run_id: str) -> list[str]:
        found = []
        label = {"label": [f"io.mlrepro.run={run_id}"]}
        # The low-level listing: one call, no per-container inspect that races with a removal.
        found += [f"container {c['Id'][:12]} ({c['State']})" for c in self.client.api.containers(all=True, filters=label)]
        found += [f"volume {v.name}" for v in self.client.volumes.list(filters=label)]
        found += [f"network {n.name}" for n in self.client.networks.list(filters=label)]
        found += [f"image {i.short_id}" for i in self.client.images.list(filters=label)]
        found += [f"temp dir {p}" for p in Path(tempfile.gettempdir()).glob(f"mlrepro-{run_id}-*")]
        markers = (f"MLREPRO_OWNER={run_id}:".encode(), f"MLREPRO_RUN_ID={run_id}".encode())
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
            except (OSError, IndexError):
                continue
            if state != "Z" and any(v.startswith(markers[0]) or v == markers[1] for v in environ):
                found.append(f"process {proc.name}: {cmdline}")
        return found

    def settled_leftovers(self, run_ids: list[str]) -> tuple[list[str], list[str]]:
        """(persistent, transient): what is still there at once, and 3 s later (transient = gone by then)."""
        first = [item for rid in run_ids for item in self.leftovers(rid)]
        if not first:
            return [], []
        time.sleep(3)
        later = [item for rid in run_ids for item in self.leftovers(rid)]
        return later, [item for item in first if item not in later]

    def build_containers(self, marker: str) -> list[str]:
        return [c["Id"][:12] for c in self.client.api.containers(all=True) if marker in (c.get("Command") or "")]

    def clean(self, run_id: str, project: Path) -> dict:
        return self.cli(["clean", "--config", project], run_id + "k")

    # ------------------------------------------------------------------ judging

    def judge(self, trial: dict, runs: list[dict], expected: set, run_ids: list[str], extra_leftovers: list[str] = ()) -> None:
        kinds = trial.setdefault("failures", {})
        main = runs[0]
        trial["exit"] = main["code"]
        trial["seconds"] = round(sum(r["seconds"] for r in runs), 2)
        if any(r["code"] is None for r in runs):
            kinds["hang"] = f"no exit after {TRIAL_TIMEOUT:g} s"
        for r in runs:
            text = [line for line in (r["stdout"] + "\n" + r["stderr"]).splitlines() if not line.startswith("  | ")]
            if any(TRACEBACK in line for line in text):
                kinds["traceback"] = "\n".join(r["stderr"].splitlines()[-12:])
                if r["code"] == -signal.SIGINT and "KeyboardInterrupt" in r["stderr"] and "harness/cli/options.py" not in r["stderr"]:
                    trial["traceback_where"] = "SIGINT before harness.cli.options.run installed its handlers (Python's own KeyboardInterrupt)"
        if main["code"] is not None and main["code"] not in expected:
            kinds["exit"] = f"exit {main['code']}, expected one of {sorted(expected)}"
        persistent, transient = self.settled_leftovers(run_ids)
        persistent += list(extra_leftovers)
        if persistent:
            kinds["leftover"] = persistent
        if transient:
            trial["transient_leftovers"] = transient
        trial["error_line"] = next((l for l in main["stderr"].splitlines() if l.startswith("error: ")), "")[:300]
        trial["stderr_tail"] = "\n".join(main["stderr"].splitlines()[-(15 if kinds else 4):])[-3000:]
        signame = (trial.get("params") or {}).get("signal")
        if "error: interrupted" in main["stderr"] and main["code"] != 2:  # the CLI said it was interrupted: its exit is 2
            kinds["exit"] = f"printed 'error: interrupted' but exited {main['code']} (documented: 2)"
        elif signame and signame != "SIGKILL" and main["code"] == -int(getattr(signal, signame)):
            # Killed by the signal's default action: before the CLI installed its handlers, or after its work,
            # while the interpreter exited (its result is already on stdout).
            trial["killed_by_signal"] = "after the work, during exit" if main["stdout"].strip() else "before the handlers were installed"

    @staticmethod
    def verdict_check(trial: dict, run: dict, report: Path | None, differ: bool) -> None:
        problems = []
        if report is not None and report.exists():
            reproducible = json.loads(report.read_text()).get("reproducible")
            trial["report_reproducible"] = reproducible
            if reproducible == differ:
                problems.append(f"report says reproducible={reproducible} for {'differing' if differ else 'equal'} outputs")
        if differ and run["code"] == 0:
            problems.append("exit 0 for outputs that differ")
        if not differ and run["code"] == 1:
            problems.append("exit 1 (drift) for equal outputs")
        if differ and any(line.startswith("REPRODUCIBLE") for line in run["stdout"].splitlines()):
            problems.append("a REPRODUCIBLE line on stdout for outputs that differ")
        if problems:
            trial.setdefault("failures", {})["wrong-verdict"] = problems

    # ------------------------------------------------------------------ warm-up: reference durations

    def warm_up(self) -> dict:
        if self.engine.image_id(BASE_IMAGE) is None:
            raise SystemExit(f"the base image {BASE_IMAGE} is missing: run `python -m harness.cli base-image` first")
        ok = self.project("warm-ok")
        durations = []
        for attempt in range(3):  # the first builds the image; the slower of the others is the reference
            run = self.cli(["verify", "--config", ok, "--json", ok / "report.json"], f"fcwarm{attempt}")
            if run["code"] != 0:
                raise SystemExit(f"warm-up: verify of the tiny project exited {run['code']}:\n{run['stderr'][-2000:]}")
            durations.append(run["seconds"])
        self.t_verify = max(durations[1:])
        marker = uuid.uuid4().hex
        self.markers.append(marker)
        build = self.project("warm-build", image_name=f"{IMAGES}/build", dockerfile_extra=f"RUN sleep 1 && echo {marker} > /marker\n")
        run = self.cli(["build", "--config", build, "--no-cache"], "fcwarmbuild")
        if run["code"] != 0:
            raise SystemExit(f"warm-up: build exited {run['code']}:\n{run['stderr'][-2000:]}")
        self.t_build = run["seconds"]
        self.registry = registry_tests._start_registry(self.work / "registry")
        self.proxy = registry_tests.DenyingProxy(self.registry.host, self.gate).__enter__()
        self.proxy.server.handle_error = lambda request, address: None  # a client gone mid-stall is expected
        key = self.work / "key" / "release.pem"
        key.parent.mkdir()
        generate_key(key)
        self.key = key
        registry_tests._KEY[:] = [load_signer(key)]
        self.gate.arm(None)
        run, _ = self.release_once("fcwarmrel", random.Random(0))
        if run["code"] != 0:
            raise SystemExit(f"warm-up: release exited {run['code']}:\n{run['stderr'][-2000:]}")
        self.t_release, self.requests = run["seconds"], self.gate.count
        return {"verify_s": self.t_verify, "build_s": self.t_build, "release_s": self.t_release, "release_requests": self.requests}

    # ------------------------------------------------------------------ scenarios

    def verify_signal(self, rng: random.Random, rid: str, trial: dict) -> None:
        differ = rng.random() < 0.5
        signame, at = rng.choice(SIGNALS), round(rng.uniform(0, self.t_verify), 3)
        trial["params"] = {"outputs": "differ" if differ else "equal", "signal": signame, "at_s": at}
        project = self.project(rid, mode="differ" if differ else "ok", where=rng.choice(["image", "host"]))
        report = project / "report.json"
        run = self.cli(["verify", "--config", project, "--json", report], rid, at=at, signame=signame)
        self.after_signal(trial, run, rid, project, signame, 1 if differ else 0)
        self.verdict_check(trial, run, report, differ)

    def build_signal(self, rng: random.Random, rid: str, trial: dict) -> None:
        marker = uuid.uuid4().hex
        self.markers.append(marker)
        signame, at = rng.choice(SIGNALS), round(rng.uniform(0, self.t_build), 3)
        trial["params"] = {"signal": signame, "at_s": at}
        project = self.project(rid, image_name=f"{IMAGES}/build", dockerfile_extra=f"RUN sleep 1 && echo {marker} > /marker\n")
        run = self.cli(["build", "--config", project, "--no-cache"], rid, at=at, signame=signame)
        deadline = time.monotonic() + 30  # the engine cancels a build whose client went, then removes its container
        while self.build_containers(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        extra = [f"build container {c}" for c in self.build_containers(marker)]
        if run["code"] != 0 and "· built " not in run["stderr"]:  # an interrupted build must not have tagged an image
            for image in self.client.images.list(name=f"{IMAGES}/build"):
                if marker in json.dumps(image.history()):
                    extra.append(f"tagged image {image.tags} of an interrupted build")
            # Untagged intermediate images of the steps that completed: the engine's build cache, not the
            # harness's (unlabeled, invisible to `mlrepro clean`); counted, removed at the end, not a failure.
            trial["engine_cache_images"] = sum(1 for image in self.client.images.list(all=True, filters={"dangling": True})
                                               if marker in json.dumps(image.history()))
        self.after_signal(trial, run, rid, project, signame, 0, extra)

    def after_signal(self, trial: dict, run: dict, rid: str, project: Path, signame: str, natural: int,
                     extra: list[str] = ()) -> None:
        trial["signal_sent"] = run["signal_sent"]
        runs, run_ids = [run], [rid]
        signum = int(getattr(signal, signame))
        if signame == "SIGKILL":
            expected = {-signum, natural}
            if run["code"] == -signum:
                trial["left_by_kill"] = self.leftovers(rid)
                runs.append(self.clean(rid, project))
                run_ids.append(rid + "k")
        else:  # interrupted; done before the signal; killed by it before the CLI's handlers were installed
            expected = {2, natural, -signum}
            if run["code"] == 2 and "interrupted" not in run["stderr"]:
                trial.setdefault("failures", {})["exit"] = "exit 2 without 'interrupted'"
        self.judge(trial, runs, expected, run_ids, extra)
        if len(runs) > 1 and runs[1]["code"] != 0:
            trial["failures"]["exit"] = f"clean exited {runs[1]['code']}"

    def release_once(self, rid: str, rng: random.Random, *, at: float | None = None, signame: str | None = None,
                     image: tuple[str, str] | None = None, repository: str | None = None,
                     project: Path | None = None) -> tuple[dict, dict]:
        context = self.work / rid / "image"
        if image is None:
            context.mkdir(parents=True)
            (context / "a.bin").write_bytes(rng.randbytes(4096))
            (context / "b.bin").write_bytes(rng.randbytes(8192))
            (context / "Dockerfile").write_text('FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\nLABEL io.mlrepro.test="faults"\n')
            tag = f"{IMAGES}/release:{rid}"
            image = (tag, self.engine.build(context=context, dockerfile=context / "Dockerfile", tag=tag, buildargs={}, labels={}, timeout=120))
        project = project or self.project(rid)
        report = registry_tests.write_report(project / "report.json", *image, config=load_config(project))
        repository = repository or f"{IMAGES}/{rid}"
        env = {"MLREPRO_REGISTRY_USERNAME": registry_tests.USER, "MLREPRO_REGISTRY_PASSWORD": registry_tests.PASSWORD}
        run = self.cli(["release", "--config", project, "--registry", self.proxy.host, "--repository", repository, "--tag", "1.0.0",
                        "--image", image[0], "--report", report, "--record", project / "release.json", "--sign-key", self.key,
                        "--allow-dirty", "--push-timeout", PUSH_TIMEOUT], rid, at=at, signame=signame, env=env)
        return run, {"image": image, "project": project, "repository": repository}

    def record_holds(self, facts: dict) -> str | None:
        """None when the release record (if any) names what the registry holds under the tag; else why not."""
        path = facts["project"] / "release.json"
        if not path.exists():
            return None
        record = ReleaseRecord.from_json(path.read_text())
        api = self.registry.api()
        held = api.manifest_digest(facts["repository"], "1.0.0")
        manifest = api.manifest(facts["repository"], record.digest)
        if held != record.digest or manifest is None or manifest.config_digest != facts["image"][1]:
            return f"record says {record.digest}; the registry holds {held} under the tag, config {manifest and manifest.config_digest}"
        return None

    def release_fault(self, rng: random.Random, rid: str, trial: dict) -> None:
        variant = rng.choice(["deny", "stall", "signal"])
        signame = at = None
        if variant == "signal":
            signame, at = rng.choice(SIGNALS), round(rng.uniform(0, self.t_release), 3)
            self.gate.arm(None)
            trial["params"] = {"variant": variant, "signal": signame, "at_s": at}
        else:
            self.gate.arm(rng.randint(1, self.requests))
            trial["params"] = {"variant": variant, "fail_request": self.gate.fail_at, "of": self.requests}
        self.proxy.stall = STALL if variant == "stall" else 0.0
        run, facts = self.release_once(rid, rng, at=at, signame=signame)
        self.gate.arm(None)
        self.proxy.stall = 0.0
        trial["signal_sent"] = run["signal_sent"]
        problems = []
        record = facts["project"] / "release.json"
        if (why := self.record_holds(facts)) is not None:
            problems.append(why)
        if run["code"] == 0 and not record.exists():
            problems.append("exit 0 but no release record")
        runs, run_ids = [run], [rid]
        if run["code"] == -9:
            trial["left_by_kill"] = self.leftovers(rid)
            runs.append(self.clean(rid, facts["project"]))
            run_ids.append(rid + "k")
        if run["code"] != 0:  # the next release, undisturbed, must complete and resolve what this one left
            again, _ = self.release_once(rid + "r", rng, image=facts["image"], repository=facts["repository"], project=facts["project"])
            runs.append(again)
            run_ids.append(rid + "r")
            trial["retry_exit"] = again["code"]
            trial["retry_said"] = [l[2:][:240] for l in again["stderr"].splitlines() if "earlier release" in l or "already" in l]
            if again["code"] != 0:
                problems.append(f"the undisturbed retry exited {again['code']}: {again['stderr'][-300:]}")
            elif not record.exists():
                problems.append("retry: exit 0 but no release record")
            elif (why := self.record_holds(facts)) is not None:
                problems.append("retry: " + why)
        extra = []
        push_tag = f"{self.proxy.host}/{facts['repository']}:1.0.0"
        if self.engine.image_id(push_tag) is not None:
            extra.append(f"local tag {push_tag} (the push's own name)")
        journals = [p.name for p in facts["project"].glob("*.journal")]
        if run["code"] != 0 and journals:
            extra.append(f"journal(s) not resolved by the retry: {journals}")
        signum = int(getattr(signal, signame)) if signame else 0
        expected = {0, 2} | ({-signum} if signame else set())
        self.judge(trial, runs, expected, run_ids, extra)
        if problems:
            trial["failures"]["record-without-push"] = problems
        with contextlib.suppress(docker.errors.DockerException):
            self.client.images.remove(facts["image"][1], force=True)

    def step_fault(self, rng: random.Random, rid: str, trial: dict) -> None:
        mode = rng.choice(["exit", "sleep", "fork", "flood", "escapes", "stdin", "differ"])
        where = {"escapes": "both", "differ": rng.choice(["image", "host"])}.get(mode) or rng.choice(["image", "host", "both"])
        arg = str(rng.randint(1, 125)) if mode == "exit" else (rng.choice(["", "4"]) if mode == "escapes" else "")
        timeout = {"sleep": 3, "fork": 10}.get(mode, 30)
        trial["params"] = {"mode": mode, "where": where, "arg": arg, "timeout": timeout}
        project = self.project(rid, mode=mode, where=where, arg=arg, timeout=timeout)
        report = project / "report.json"
        run = self.cli(["verify", "--config", project, "--json", report], rid)
        differ = mode in ("escapes", "differ")
        expected = {"exit": {2}, "sleep": {2}, "escapes": {2} if arg else {1}, "differ": {1}}.get(mode, {0})
        if mode == "fork" and where != "host":
            expected = {0, 2}  # in the container a daemon holding stdout keeps the exec open: the step's timeout ends it
        self.judge(trial, [run], expected, [rid])
        if 2 in expected and run["code"] == 2 and "step 'train'" not in trial["error_line"]:
            trial["failures"]["exit"] = f"exit 2 but the error does not name the step: {trial['error_line']}"
        if run["code"] != 2:
            self.verdict_check(trial, run, report, differ)
        if mode == "escapes" and "\x1b" in run["stdout"] + run["stderr"]:  # the CLI's output goes to files: rich adds none
            trial["failures"]["escapes"] = "a raw ESC from the step reached the CLI's output"

    # ------------------------------------------------------------------ the end

    def tear_down(self) -> dict:
        removed = Counter()
        if self.proxy is not None:
            self.proxy.__exit__(None, None, None)
        if self.registry is not None:
            registry_tests._stop(self.registry.process)
        for image in self.client.images.list():
            if any(t.startswith(f"{IMAGES}/") or f"/{IMAGES}/" in t for t in image.tags):
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.images.remove(image.id, force=True)
                    removed["tagged"] += 1
        for image in self.client.images.list(all=True, filters={"dangling": True}):  # intermediates of interrupted builds
            with contextlib.suppress(docker.errors.DockerException):
                if any(m in json.dumps(image.history()) for m in self.markers):
                    self.client.images.remove(image.id, force=True)
                    removed["intermediate"] += 1
        shutil.rmtree(self.work, ignore_errors=True)
        return dict(removed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "faults.json")
    parser.add_argument("--budget-seconds", type=float, default=2400)
    parser.add_argument("--only", type=int, default=None, help="replay this trial index only")
    options = parser.parse_args()
    # A signal ignored here (nohup, a background job of a non-interactive shell) would be ignored by the CLI
    # too until it installs its handlers: give the children the default dispositions a terminal gives.
    inherited = {name: "ignored" for name in ("SIGINT", "SIGHUP", "SIGTERM", "SIGQUIT")
                 if signal.getsignal(getattr(signal, name)) == signal.SIG_IGN}
    for name in inherited:
        signal.signal(getattr(signal, name), signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)
    work = Path(tempfile.mkdtemp(prefix="fc-campaign-"))
    campaign = Campaign(work, options.seed)
    trials, started = [], time.monotonic()
    stopped = None
    try:
        warm = campaign.warm_up()
        print(f"warm-up: {warm}", flush=True)
        indices = [options.only] if options.only is not None else range(options.faults)
        for i in indices:
            if time.monotonic() - started > options.budget_seconds:
                stopped = f"budget of {options.budget_seconds:g} s reached after {len(trials)} faults"
                break
            rng = random.Random(f"{options.seed}:{i}")
            scenario = rng.choice(SCENARIOS)
            rid = f"fc{i:03d}{rng.getrandbits(24):06x}"
            trial = {"index": i, "seed": options.seed, "scenario": scenario, "run_id": rid}
            try:
                getattr(campaign, scenario.replace("-", "_"))(rng, rid, trial)
            except Exception as exc:  # the campaign's own failure: recorded, never hidden
                trial.setdefault("failures", {})["campaign-error"] = f"{type(exc).__name__}: {exc}"
            trials.append(trial)
            status = ",".join(trial.get("failures", {})) or "ok"
            print(f"[{i:3d}] {scenario:13s} {json.dumps(trial.get('params'))} exit={trial.get('exit')} "
                  f"{trial.get('seconds', 0):5.1f}s {status}", flush=True)
    finally:
        removed = campaign.tear_down()
    wall = time.monotonic() - started
    by_kind = Counter(kind for t in trials for kind in t.get("failures", {}))
    summary = {
        "faults": len(trials), "seed": options.seed, "wall_seconds": round(wall, 1),
        "harness": {"git_head": campaign.revision, "snapshot_sha256": campaign.harness_sha256},
        "signals_ignored_at_start_and_reset": sorted(inherited),
        "faults_per_minute": round(len(trials) / (wall / 60), 2) if wall else None, "stopped": stopped,
        "reference_durations": warm, "per_scenario": dict(Counter(t["scenario"] for t in trials)),
        "failures_by_kind": {k: by_kind.get(k, 0) for k in (*KINDS, "campaign-error")},
        "failed_trials": sum(1 for t in trials if t.get("failures")),
        "exit_codes": {s: dict(Counter(str(t.get("exit")) for t in trials if t["scenario"] == s)) for s in SCENARIOS},
        "observations": {
            "signal_after_exit": sum(1 for t in trials if t.get("signal_sent") is False and "signal" in (t.get("params") or {})),
            "killed_by_catchable_signal": Counter(t["killed_by_signal"] for t in trials if "killed_by_signal" in t),
            "sigkill_then_clean": sum(1 for t in trials if "left_by_kill" in t),
            "sigkill_left_something_for_clean": sum(1 for t in trials if t.get("left_by_kill")),  # the detector sees leftovers
            "release_retries": Counter(str(t.get("retry_exit")) for t in trials if "retry_exit" in t),
            "transient_leftovers": sum(1 for t in trials if t.get("transient_leftovers")),
            "engine_cache_images_after_interrupted_builds": sum(t.get("engine_cache_images", 0) for t in trials),
            "step_modes": Counter(f"{t['params']['mode']}@{t['params']['where']}->{t.get('exit')}" for t in trials
                                  if t["scenario"] == "step-fault" and "params" in t),
        },
        "removed_at_end": removed,
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"summary": summary, "failures": [t for t in trials if t.get("failures")],
                                       "trials": trials}, indent=2) + "\n")
    print(f"\n{len(trials)} faults in {wall:.0f} s ({summary['faults_per_minute']}/min); per scenario: {summary['per_scenario']}")
    for kind, count in summary["failures_by_kind"].items():
        print(f"  {kind:20s} {count}")
    print(f"written to {options.out}")
    return 1 if summary["failed_trials"] or stopped else 0


if __name__ == "__main__":
    sys.exit(main())
