"""flowlib_operator: kopf handlers for the Flow and FlowRun CRDs of API group ``flowlib.dev``.

The operator validates Flows, turns each FlowRun into a runner Job, and reports what the runner
cannot (pods that never start, crashes, timeouts, deleted Jobs). It never runs user code. It may
import ``flowlib_runner`` (the loader, the resource models, the Kubernetes client); nothing
imports it. The folder is ``operator/``, the package ``flowlib_operator``, so the standard
library's ``operator`` module is never shadowed.
"""

__version__ = "0.1.0"
