"""`python -m harness.cli`: the same as the `mlrepro` script."""

from harness.cli import main

main()
