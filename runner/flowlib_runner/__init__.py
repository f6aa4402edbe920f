"""flowlib_runner: load a flow definition, build its flowlib graph, run it and report status and
logs; locally (``flowctl``) or in a runner pod (``flowlib-runner``). See README.md in this folder.

Layers, each importing only the ones below it (import-linter checks it in ``make test``):

- programs: ``flowctl`` (the CLI) and ``incluster`` (the runner of a FlowRun inside its Job);
- ``execution``: ``execute``, ``reporting``, ``logs``;
- ``definition``: YAML reading, validation, the loader, node factories, run kinds, templates, and
  ``build`` (the one place user code is imported);
- ``kube``: a small asyncio Kubernetes client;
- the contract ``flowlib_api`` and the engine ``flowlib``.

This module is the facade: ``from flowlib_runner import load_file, build_flow, execute`` works,
and names are imported on first use, so importing one layer (the operator imports the definition
layer to validate) never drags in the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_FACADE = {
    "FlowDefinition": "flowlib_runner.definition.loader",
    "LoadResult": "flowlib_runner.definition.loader",
    "Loader": "flowlib_runner.definition.loader",
    "Problem": "flowlib_runner.definition.problems",
    "load_file": "flowlib_runner.definition.loader",
    "load_file_all": "flowlib_runner.definition.loader",
    "load_object": "flowlib_runner.definition.loader",
    "load_text": "flowlib_runner.definition.loader",
    "flow_refs": "flowlib_runner.definition.loader",
    "BuildError": "flowlib_runner.definition.runkinds",
    "build_flow": "flowlib_runner.definition.build",
    "execute": "flowlib_runner.execution.execute",
    "execute_async": "flowlib_runner.execution.execute",
    "ReportingFailed": "flowlib_runner.execution.execute",
    "RunStatus": "flowlib_api.runstatus",
    "flow_spec_json_schema": "flowlib_api.flowspec_schema",
}

if TYPE_CHECKING:
    from flowlib_api.flowspec_schema import flow_spec_json_schema
    from flowlib_api.runstatus import RunStatus
    from flowlib_runner.definition.build import build_flow
    from flowlib_runner.definition.loader import (
        FlowDefinition,
        Loader,
        LoadResult,
        flow_refs,
        load_file,
        load_file_all,
        load_object,
        load_text,
    )
    from flowlib_runner.definition.problems import Problem
    from flowlib_runner.definition.runkinds import BuildError
    from flowlib_runner.execution.execute import ReportingFailed, execute, execute_async


def __getattr__(name: str) -> Any:
    module = _FACADE.get(name)
    if module is None:
        raise AttributeError(f"module 'flowlib_runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BuildError",
    "FlowDefinition",
    "LoadResult",
    "Loader",
    "Problem",
    "ReportingFailed",
    "RunStatus",
    "__version__",
    "build_flow",
    "execute",
    "execute_async",
    "flow_refs",
    "flow_spec_json_schema",
    "load_file",
    "load_file_all",
    "load_object",
    "load_text",
]
