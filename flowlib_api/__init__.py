"""flowlib_api: the contract between the operator and the runner, in one place.

Modelled on Kubernetes' ``pkg/apis``: the types of the project's resources and every name, format
and rule that both sides of a run must agree on. It imports the standard library and pydantic,
nothing of the project; the runner, ``flowctl`` and the operator all import it.

- ``meta``: API group and version, kinds, resource refs, label and annotation keys.
- ``flowspec`` (and ``flowspec_schema``): the Flow definition's models and their CRD schema.
- ``runstatus``: the run status shared by ``flowctl run --json`` and the FlowRun, kept bounded.
- ``resources``: FlowRun spec and status, Flow status, conditions, and *who writes which status
  field* (its docstring states the rule; ``RUNNER_FIELDS`` and ``OPERATOR_FIELDS`` hold it).
- ``views``: typed read-only views of FlowRun and Flow bodies.
- ``runnerpod``: what the operator hands a runner pod (environment, definition snapshot) and what
  the pod hands back (exit codes, the termination message).
- ``times``, ``text``: durations and timestamps; message size limits and the one way to cut.
- ``structural``: pydantic models to Kubernetes structural schemas (for CRD generation).
"""
