"""Test settings in one place: hypothesis profiles and the Docker policy.

Profiles: `dev` (default, quick) and `ci` (selected when CI=true: more examples,
no deadline because the machines are noisy). Docker tests use the plugin's
`require_engine()`: skipped locally without an engine, a failure under CI=true.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
