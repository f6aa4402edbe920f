"""Test suite. `tests.kubesim` (the Kubernetes API simulator) lives here too, so it is importable."""
