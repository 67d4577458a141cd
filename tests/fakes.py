"""A fake engine for unit tests, the way pip-tools tests against a FakeRepository.

`FakeEngine` answers the calls the harness makes on `harness.docker.Engine`
with no Docker at all, so `tests/unit` runs with DOCKER_HOST pointing at
nothing. It is one class in two parts: containers (the container side, the
workers, `run_both`) and images and registries (`release`).
"""

from __future__ import annotations


class FakeEngine:
    """Stands in for `harness.docker.Engine`; see the two sections below."""

    def __init__(self) -> None:
        self._init_containers()
        self._init_images()

    # ---------------------------------------------------------------- containers (sides, workers, run_both)

    def _init_containers(self) -> None:
        pass

    # ---------------------------------------------------------------- images and registries (release)

    def _init_images(self) -> None:
        pass
