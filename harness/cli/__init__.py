"""`mlrepro`: a thin command line over the library.

One module per command (`verify`, `image`: base-image / wheelhouse / build,
`lock`, `demo`, `release`, `check` + `key`, `clean`, ...), what they share in `options`. This
module only assembles the group; nothing imports it back.
"""

from __future__ import annotations

from harness.cli.signals import install_startup_handlers, restore_handlers

_saved = install_startup_handlers()  # first: a signal during the imports below ends the start-up with one line, exit 2

import click  # noqa: E402

from harness.cli.check import check_command, key_group  # noqa: E402
from harness.cli.clean import clean_command  # noqa: E402
from harness.cli.compare import compare_command
from harness.cli.demo import demo_command
from harness.cli.image import base_image_command, build_command, wheelhouse_command
from harness.cli.init import init_command
from harness.cli.kubernetes import kubernetes_group
from harness.cli.lock import lock_command
from harness.cli.options import Group
from harness.cli.rebuild import rebuild_check_command
from harness.cli.record import record_command
from harness.cli.release import release_command
from harness.cli.verify import verify_command


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlrepro")
def main() -> None:
    """Prove that an ML container computes exactly what was tested."""


restore_handlers(_saved)

for _command in (verify_command, base_image_command, wheelhouse_command, build_command, clean_command,
                 lock_command, demo_command, release_command, rebuild_check_command, init_command, compare_command,
                 record_command, kubernetes_group, check_command, key_group):
    main.add_command(_command)

__all__ = ["main"]
