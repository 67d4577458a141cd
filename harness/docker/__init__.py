"""The one adapter in front of Docker: the only package that imports docker or testcontainers.

`Engine` (images, builds, labeled containers, resources, push and pull),
`Container` (files in and out, commands, attached processes), and the registry
stream scanner. Errors are neutral (`EngineError`, `ExecResult.timed_out`,
the stream's classified failures): callers say what they mean for a step, a
lock or a release.
"""

from harness.docker.container import Container, ExecResult, ExecStream
from harness.docker.engine import Engine, Resource, context_files
from harness.docker.registry_stream import LayerProgress, StreamOutcome, scan_registry_stream

__all__ = ["Container", "Engine", "ExecResult", "ExecStream", "LayerProgress", "Resource", "StreamOutcome", "context_files",
           "scan_registry_stream"]
