"""flowlib_runner: load a flow definition (YAML, pydantic models), build its flowlib graph through
node factories, run it and report status and logs; locally (``flowctl``) or in a runner pod
(``flowlib-runner``). See README.md in this folder. It may import flowlib, pydantic, PyYAML, Jinja2,
aiohttp, click, rich and the ``kubernetes`` package's config loaders; never the operator.
"""

__version__ = "0.1.0"
