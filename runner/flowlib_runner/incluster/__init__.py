"""The runner inside a Kubernetes Job: reads its FlowRun, runs the frozen definition, and writes the
FlowRun's status subresource while its logs go to stdout (``kubectl logs -f``).

It talks to the API only as its own service account: get its FlowRun, patch ``flowruns/status``,
create Events. The definition comes from the snapshot ConfigMap that the operator mounted, so a
later edit of the Flow never changes a running run.
"""
