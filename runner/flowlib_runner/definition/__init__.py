"""The definition layer: a Flow's YAML in, a validated definition (or every problem) out, and the
flowlib graph built from it.

Validation (``loader``, ``validate``, ``templates``, run kinds' and node types' checks) parses
YAML, Jinja2 templates and inline Python with ``ast`` and never imports or runs user code, so the
operator may import it. ``build`` is where user code is imported and compiled; only runners call it.
It imports the contract (``flowlib_api``) and flowlib, never the execution layer or a program.
"""
