"""A fake engine for unit tests, the way pip-tools tests against a FakeRepository.

`FakeEngine` answers the calls the harness makes on `harness.docker.Engine`
with no Docker at all, so `tests/unit` runs with DOCKER_HOST pointing at
nothing. It is one class in two parts: containers (the container side, the
workers, `run_both`) and images and registries (`release`).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping

from harness.docker import ExecResult
from harness.ownership import owner_labels
from harness.sides.process import HostProcesses, ProcessStream


class FakeEngine:
    """Stands in for `harness.docker.Engine`; see the two sections below."""

    def __init__(self) -> None:
        self._init_containers()
        self._init_images()

    # ---------------------------------------------------------------- containers (sides, workers, run_both)

    def _init_containers(self, python: str = sys.executable) -> None:
        #: What `python` in a container command runs (the fake image's interpreter).
        self.python = python
        self.containers: list[FakeContainer] = []  # every container made, in order
        #: Called before every exec as hook(container, argv); may return an ExecResult to answer instead.
        self.on_exec: Callable[["FakeContainer", list[str]], ExecResult | None] | None = None
        self.leftover_removals = 0  # calls of remove_leftovers: a call must only remove what it made

    @contextlib.contextmanager
    def container(self, image: str, *, role: str, env: Mapping[str, str] | None = None, mem_limit: str | None = None,
                  network: str = "none", writable: str | None = None) -> Iterator["FakeContainer"]:
        box = FakeContainer(self, image, role, dict(env or {}), writable, network)
        self.containers.append(box)
        try:
            yield box
        finally:
            box.remove()

    def live_containers(self) -> list["FakeContainer"]:
        return [c for c in self.containers if not c.removed]

    def remove_leftovers(self, **kwargs: object) -> dict[str, int]:
        self.leftover_removals += 1
        return {"container": 0, "volume": 0, "network": 0, "skipped": 0}

    def architecture(self) -> str:
        return "x86_64"

    # ---------------------------------------------------------------- images and registries (release)
    #
    # Local images are dicts shaped like docker's attrs; `registry` is an in-memory
    # FakeRegistry that `push` stores manifests in and that `release()` reads back
    # through its `registry_client` seam (`registry_client=engine.registry.client`).
    # `push_stream` makes pushes report that stream instead (an error line inside
    # a 200 stream, as the real engine does); it is scanned by the real
    # `scan_registry_stream`, so failures are classified exactly as in production.

    def _init_images(self) -> None:
        self.images: dict[str, dict] = {}  # image ID -> attrs (Id, RepoTags, Config.Labels)
        self.registry = FakeRegistry()
        self.docker_config: dict[str, tuple[str, str]] = {}  # registry -> (user, password), as `docker login` leaves it
        self.push_stream: list[dict] | None = None  # what pushes report (None: a push that succeeds)
        self.pushed: list[str] = []  # refs pushed successfully, in order
        self.image_calls: list[tuple[str, str]] = []  # ("tag" | "untag" | "push", ref), in order

    def add_image(self, tag: str, labels: Mapping[str, str] | None = None) -> str:
        """A local image named `tag` with `labels`; its ID (the digest of its config, as docker's IDs are)."""
        config = {"Labels": dict(labels or {}), "serial": len(self.images)}
        image_id = _digest(json.dumps(config, sort_keys=True).encode())
        self.images[image_id] = {"Id": image_id, "RepoTags": [tag], "Config": {"Labels": dict(labels or {})}}
        return image_id

    def image_id(self, ref: str) -> str | None:
        if ref in self.images:
            return ref
        return next((image_id for image_id, attrs in self.images.items() if ref in attrs["RepoTags"]), None)

    def image_attrs(self, ref: str) -> dict:
        image_id = self.image_id(ref)
        if image_id is None:
            raise LookupError(f"FakeEngine: no image {ref}")  # the real engine raises docker's ImageNotFound
        return copy.deepcopy(self.images[image_id])

    def tag(self, image_id: str, ref: str) -> None:
        self.image_calls.append(("tag", ref))
        for attrs in self.images.values():  # a name names one image: tagging moves it
            if ref in attrs["RepoTags"]:
                attrs["RepoTags"].remove(ref)
        self.images[image_id]["RepoTags"].append(ref)

    def untag(self, ref: str) -> bool:
        """Like Engine.untag: the name goes, never the image (False when it is the image's only name)."""
        self.image_calls.append(("untag", ref))
        image_id = self.image_id(ref)
        if image_id is None or self.images[image_id]["RepoTags"] == [ref]:
            return False
        self.images[image_id]["RepoTags"].remove(ref)
        return True

    def push(self, ref: str, *, auth_config: Mapping[str, str] | None = None,
             on_layer: Callable[[Any], None] = lambda event: None, redact: Callable[[str], str] = lambda text: text,
             idle_timeout: float | None = None) -> str:
        """Like Engine.push: the stream scanned (RegistryStreamError on an error line), then the manifest stored; its digest."""
        from harness.docker.registry_stream import _split_tag, scan_registry_stream

        self.image_calls.append(("push", ref))
        name, tag = _split_tag(ref)
        host, _, repository = name.partition("/")
        image_id = self.image_id(ref)
        if image_id is None:
            raise LookupError(f"FakeEngine: push of {ref}, which names no local image")
        body = image_manifest(image_id)
        stream = self.push_stream if self.push_stream is not None else self.registry.push_stream(host, repository, tag, body)
        outcome = scan_registry_stream(stream, action=f"push of {ref}", on_layer=on_layer, redact=redact, require_digest=True)
        self.registry.put_manifest(repository, tag, body, MEDIA_DOCKER_MANIFEST, by="push")
        self.pushed.append(ref)
        return outcome.digest

    def registry_credentials(self, registry: str) -> tuple[str, str] | None:
        return self.docker_config.get(registry)


@dataclass
class FakeContainer:
    """A "container" whose filesystem is a host directory and whose processes are host processes.

    The writable workdir in commands is mapped under `root`, a leading `python`
    runs the engine's interpreter: the steps of a real configuration run for
    real, only without Docker.
    """

    engine: FakeEngine
    image: str
    role: str
    env: dict[str, str]
    writable: str | None
    network: str
    labels: dict[str, str] = field(default_factory=dict)
    removed: bool = False
    killed: bool = False
    execs: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = owner_labels(self.role)
        self.root = Path(tempfile.mkdtemp(prefix="mlrepro-fake-container-"))
        self._processes = HostProcesses()

    def host_path(self, path: str) -> Path:
        return self.root / PurePosixPath(path).relative_to("/")

    def _translate(self, argv: list[str]) -> list[str]:
        words = [self.engine.python if i == 0 and w in ("python", "python3") else w for i, w in enumerate(argv)]
        if self.writable is None:
            return words
        return [w.replace(self.writable, str(self.host_path(self.writable))) for w in words]

    def put_files(self, dest: str, files: Mapping[str, bytes], dirs: tuple[str, ...] = ()) -> None:
        base = self.host_path(dest)
        for d in dirs:
            (base / d).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_bytes(data)

    def get_dir(self, path: str) -> dict[str, bytes]:
        base = self.host_path(path)
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}

    def exec(self, command: list[str], *, timeout: float, env: Mapping[str, str] | None = None, workdir: str | None = None) -> ExecResult:
        self.execs.append(list(command))
        if self.removed or self.killed:
            return ExecResult(137, "")
        if self.engine.on_exec is not None:
            answer = self.engine.on_exec(self, list(command))
            if answer is not None:
                return answer
        done = self._processes.run(self._translate(command), env={**self.env, "PATH": "/usr/bin:/bin", **(env or {})}, timeout=timeout)
        if done.timed_out:
            self.kill()
            return ExecResult(-9, "", timed_out=True)
        return ExecResult(137 if self.killed else done.exit_code, done.output)

    def exec_stream(self, command: list[str], *, env: Mapping[str, str] | None = None, workdir: str | None = None) -> ProcessStream:
        self.execs.append(list(command))
        return self._processes.spawn(self._translate(command), env={**self.env, "PATH": "/usr/bin:/bin", **(env or {})})

    def kill(self) -> None:
        self.killed = True
        self._processes.kill_all()

    def kill_reason(self, since: float) -> str:
        return "killed: the container stopped while the step ran (fake)" if self.killed else ""

    def remove(self) -> None:
        self.kill()
        self.removed = True
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- images and registries (release), continued

# This section's own imports, here rather than at the top: the file has two owners.
import copy  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(image_id: str) -> bytes:
    """The (docker v2) manifest a push of image `image_id` stores: its config digest is the image ID."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": image_id, "size": 1024},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": _digest(image_id.encode()), "size": 4096}],
    }, sort_keys=True, separators=(",", ":")).encode()


class FakeRegistry:
    """An in-memory registry at `host`: the `RegistryAPI` release() checks and adds to, and what FakeEngine.push fills.

    Anyone may push (credentials refused are pushed as a stream: `FakeEngine.push_stream`).
    `calls` lists every request in order, so a test can say "the registry was never contacted".
    """

    def __init__(self, host: str = "registry.test:5000") -> None:
        self.host = self.registry = host
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}  # (repository, digest) -> (body, media type)
        self.tags: dict[tuple[str, str], str] = {}  # (repository, tag) -> digest
        self.blobs: dict[tuple[str, str], bytes] = {}  # (repository, digest) -> bytes
        self.calls: list[tuple[str, str, str]] = []  # (request, repository, reference)
        self.credentials: list[Any] = []  # what each client was made with

    def client(self, registry: str, credentials: Any) -> "FakeRegistry":
        """The `registry_client(registry, credentials)` seam of `harness.release.release`."""
        from harness.release import RegistryUnreachable

        if registry != self.host:
            raise RegistryUnreachable(f"nothing answers at http://{registry} (the fake registry is {self.host}); check the registry name")
        self.credentials.append(credentials)
        return self

    # RegistryAPI --------------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str):
        from harness.release.manifest import parse_manifest

        self.calls.append(("manifest", repository, reference))
        digest = self._resolve(repository, reference)
        return None if digest is None else parse_manifest(*self.manifests[(repository, digest)])

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        self.calls.append(("manifest_digest", repository, reference))
        return self._resolve(repository, reference)

    def upload_blob(self, repository: str, data: bytes, media_type: str) -> dict[str, Any]:
        self.calls.append(("upload_blob", repository, _digest(data)))
        self.blobs[(repository, _digest(data))] = data
        return {"mediaType": media_type, "digest": _digest(data), "size": len(data)}

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str, *, by: str = "put_manifest") -> str:
        self.calls.append((by, repository, reference))
        self.manifests[(repository, _digest(body))] = (body, media_type)
        if not reference.startswith("sha256:"):
            self.tags[(repository, reference)] = _digest(body)
        return _digest(body)

    def blob(self, repository: str, digest: str) -> bytes | None:
        self.calls.append(("blob", repository, digest))
        return self.blobs.get((repository, digest))

    def referrers(self, repository: str, digest: str, artifact_type: str | None = None) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers API (the real docker-registry 2.8 has none: the tests there cover the tag scheme)."""
        import json

        self.calls.append(("referrers", repository, digest))
        found = []
        for (repo, manifest_digest), (body, media_type) in sorted(self.manifests.items()):
            data = json.loads(body)
            if repo == repository and (data.get("subject") or {}).get("digest") == digest:
                if artifact_type is None or data.get("artifactType") == artifact_type:
                    found.append({"mediaType": media_type, "digest": manifest_digest, "size": len(body),
                                  "artifactType": data.get("artifactType")})
        return found

    # For tests ----------------------------------------------------------------------------------

    def store_image(self, repository: str, tag: str, image_id: str) -> str:
        """Someone else's earlier push of image `image_id` as REPOSITORY:TAG (not in `calls`); its digest."""
        body = image_manifest(image_id)
        self.manifests[(repository, _digest(body))] = (body, MEDIA_DOCKER_MANIFEST)
        self.tags[(repository, tag)] = _digest(body)
        return _digest(body)

    def push_stream(self, host: str, repository: str, tag: str, body: bytes) -> list[dict]:
        """What the engine's push stream says: success to this registry, "connection refused" to any other host."""
        if host != self.host:
            message = f'Get "http://{host}/v2/": dial tcp {host}: connect: connection refused'
            return [{"status": f"The push refers to repository [{host}/{repository}]"}, {"errorDetail": {"message": message}, "error": message}]
        digest = _digest(body)
        layer = digest[7:19]
        return [
            {"status": f"The push refers to repository [{host}/{repository}]"},
            {"status": "Preparing", "progressDetail": {}, "id": layer},
            {"status": "Pushing", "progressDetail": {"current": 2048, "total": 4096}, "id": layer},
            {"status": "Pushed", "progressDetail": {}, "id": layer},
            {"status": f"{tag}: digest: {digest} size: {len(body)}"},
            {"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}},
        ]

    def _resolve(self, repository: str, reference: str) -> str | None:
        digest = reference if reference.startswith("sha256:") else self.tags.get((repository, reference))
        return digest if digest is not None and (repository, digest) in self.manifests else None
