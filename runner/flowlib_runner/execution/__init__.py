"""The execution layer: run a built flow with status and log observers attached (``execute``),
publish status snapshots (``reporting``), and write the run log (``logs``).

It imports the definition layer and the contract; the programs (``flowctl``, the in-cluster runner)
import it. The operator never does: it runs no user code.
"""
