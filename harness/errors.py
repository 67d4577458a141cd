"""The one error root of the harness, and the errors that carry evidence.

Tree (each class says what to do about it in its docstring)::

    MlreproError                 exit 2: usage, configuration or infrastructure
    ├── ConfigError              a key in [tool.mlrepro] is wrong
    ├── EngineError              no Docker engine, or it failed underneath us
    ├── BaseImageError           no base image, or it could not be made
    ├── WheelhouseError          the locked wheels could not be fetched
    ├── LockError                requirements.txt / requirements.in unusable
    ├── BuildError               the image build failed (carries the log tail)
    ├── StepError                a train/predict step failed (carries its logs)
    │   └── worker.WorkerError   a persistent prediction worker died (carries its stderr)
    ├── InterruptedRun           SIGINT/SIGTERM during a run (cleaned up)
    ├── registry.RegistryError   a registry refused or failed us
    │   ├── RegistryUnreachable, RegistryAuthError, PushError
    └── release.ReleaseRefused   a release policy said no (unverified image, dirty tree, ...)
        └── TagCollision         the remote tag names another image

The subclasses that live beside the code raising them are listed by module.

Drift is not an error: it is a result (a Report), mapped to exit 1 by the CLI;
so is non-determinism (two runs of the same side disagree: the project, not
the image, is at fault), mapped to exit 3.
Messages are one line: what was expected, what was found, what to do. The
evidence (logs) is kept in attributes so a report or a pytest hook can show it
without cluttering the line.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2
#: `mlrepro verify --repeat N`: two runs of the same side disagreed (NON-DETERMINISTIC).
EXIT_NON_DETERMINISTIC = 3


class _Missing:
    """The `found` of a ConfigError for a key that is absent: printed as `none`, not as a value."""

    def __repr__(self) -> str:
        return "none"


MISSING = _Missing()


class MlreproError(Exception):
    """Root of every error the harness raises on purpose; the CLI prints it as one line, exit 2."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, evidence: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: Multi-line supporting material (build log tail, container logs): shown in
        #: reports and test failures, never in the one-line message.
        self.evidence = evidence

    def __str__(self) -> str:
        return self.message


class ConfigError(MlreproError):
    """A configuration key is missing or invalid: fix the named key in pyproject.toml."""

    def __init__(self, key: str, expected: str, found: object, *, hint: str = "") -> None:
        self.key, self.expected, self.found = key, expected, found
        super().__init__(f"[tool.mlrepro] {key}: expected {expected}, found {found!r}" + (f"; {hint}" if hint else ""))


class EngineError(MlreproError):
    """The Docker engine is unreachable or failed: start it (`scripts/ensure-docker.sh`) and retry."""

    #: What to do once the engine answers again (shared by every message that says the engine failed mid-run).
    RECOVER = ("once it answers again (restart Docker, or scripts/ensure-docker.sh as root on Debian), "
               "run 'mlrepro clean' to remove what this run left on it")

    def __init__(self, message: str, *, evidence: str = "", cause: str = "") -> None:
        super().__init__(message, evidence=evidence)
        #: The engine's own words, short, for a caller that rephrases the message in its terms.
        self.cause = cause


class BaseImageError(MlreproError):
    """No usable base image: run `mlrepro base-image`, or make the configured one pullable."""


class WheelhouseError(MlreproError):
    """The locked wheels could not be fetched: check the index is reachable and the lock is valid."""


class LockError(MlreproError):
    """The lock or its input is unusable: the message names the line; re-run `mlrepro lock`."""


class BuildError(MlreproError):
    """The image build failed: `evidence` holds the tail of the build log."""


class StepError(MlreproError):
    """A configured step (train, predict, ...) failed: `evidence` holds its output."""

    def __init__(self, message: str, *, where: str, step: str, exit_code_seen: int | None, evidence: str = "") -> None:
        self.where, self.step, self.exit_code_seen = where, step, exit_code_seen
        super().__init__(message, evidence=evidence)


class InterruptedRun(MlreproError):
    """The run was interrupted (SIGINT/SIGTERM); what it created has been removed."""


def tail(text: str, lines: int = 25) -> str:
    """The last `lines` lines of `text`: enough evidence to act on, short enough to read."""
    return "\n".join(text.rstrip().splitlines()[-lines:])
