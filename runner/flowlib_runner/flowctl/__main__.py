"""`python -m flowlib_runner.flowctl`: the same as the `flowctl` command."""

from flowlib_runner.flowctl import main

main()
