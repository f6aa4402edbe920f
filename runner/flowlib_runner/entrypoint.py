"""Console script ``flowlib-runner``: the runner of a FlowRun inside its Job (see ``incluster``)."""

from flowlib_runner.incluster.main import main

__all__ = ["main"]
