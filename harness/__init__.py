"""mlrepro: prove that an ML container computes exactly what was tested.

Modules, one concept each (see docs/architecture.md):

- pure core, no Docker: `config`, `lock`, `compare`, `report`, `probe` (stdlib only,
  runs inside containers too), `errors`;
- the one adapter in front of Docker: `engine`;
- resources and runs: `baseimage`, `wheelhouse`, `build`, `runner`;
- sequencing: `verify`; entry points: `cli` (mlrepro) and `plugin` (pytest fixtures).
"""

__version__ = "0.1.0"
