"""`mlrepro init`: adopt mlrepro in an existing project, writing only what is missing.

Modules, one concept each:

- `layout`: what the project is (its dependency input, its code, its name, its entry points): read-only.
- `templates`: the Dockerfile, .dockerignore and `[tool.mlrepro]` skeleton for a layout (pure text).
- `scaffold`: what to write and what to keep (`plan`, pure), then writing it (`apply`), never overwriting.
"""

from harness.init.layout import Layout, read_layout
from harness.init.scaffold import Action, Plan, apply, plan
from harness.init.templates import dockerfile, dockerignore, skeleton

__all__ = ["Action", "Layout", "Plan", "apply", "dockerfile", "dockerignore", "plan", "read_layout", "skeleton"]
