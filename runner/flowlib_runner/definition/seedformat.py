"""The seed's flowrunner format, read as a Flow.

flowrunner (the Go service the seed plan targeted) stored flows as YAML documents like::

    metadata: {name: complex-flow, description: ..., version: "1.0.0"}
    nodes:
      start:
        type: base
        retry: {max_retries: 3, wait: 100ms}
        next: {default: process_data}
      process_data:
        type: worker_pool            # or worker_pool_batch
        batch: {strategy: worker_pool, max_parallel: 5}
        params: {...}
        hooks: {prep: "js...", exec: "js...", post: "js..."}
        next: {success: end, failure: error_node, done: END}

This module rewrites such a document into the canonical spec: snake_case fields become camelCase
(``max_retries``, ``max_wait``, ``max_parallel``, ``max_steps``, ``working_dir``,
``expected_status``), ``batch.strategy`` becomes the node type, ``END`` targets (flowrunner's
"stop here") are dropped, ``max_retries``/``wait``/``max_parallel`` written directly on a node move
into ``retry``/``batch``, and ``metadata.description`` becomes the spec's description. JavaScript
``hooks`` cannot run here and are rejected with a message saying how to port them. Problem paths
are mapped back to the spelling the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .problems import Problem, join_path, key_text, listing, short
from .validate import MAX_NESTING

SNAKE_TO_CAMEL = {
    "max_retries": "maxRetries",
    "max_wait": "maxWait",
    "max_parallel": "maxParallel",
    "max_steps": "maxSteps",
    "working_dir": "workingDir",
    "expected_status": "expectedStatus",
}
STRATEGY_TYPES = {
    "sequential": "batch",
    "batch": "batch",
    "async": "async_batch",
    "async_batch": "async_batch",
    "parallel": "parallel_batch",
    "parallel_batch": "parallel_batch",
    "worker_pool": "worker_pool",
    "worker_pool_batch": "worker_pool",
}
END_TARGET = "END"


def is_seed_document(doc: Mapping[str, Any]) -> bool:
    """A flowrunner document: ``metadata`` and ``nodes`` at the top, no ``spec``/``apiVersion``."""
    return "nodes" in doc and "metadata" in doc and "spec" not in doc and "apiVersion" not in doc


class SeedConversion:
    """The canonical spec of a seed document, its problems, and a map back to the user's paths."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.problems: list[Problem] = []
        self.renames: dict[str, str] = {}
        self.name: str | None = None
        self.spec: dict[str, Any] = self._convert(doc)

    def user_path(self, path: str) -> str:
        """Translate a canonical problem path back into the document's own spelling.

        The longest renamed prefix wins; prefixes are tried from the longest (at dots), so each
        problem costs the depth of its path, not the number of renames (thousands in a big flow).
        """
        end = len(path)
        while end > 0:
            canonical = path[:end]
            if canonical in self.renames:
                return self.renames[canonical] + path[end:]
            end = path.rfind(".", 0, end)
        return path

    def _rename_keys(self, value: Any, path: str, depth: int = 0) -> Any:
        if not isinstance(value, Mapping) or depth > MAX_NESTING:
            return value  # deeper than validation accepts: left as written, and reported there
        out: dict[Any, Any] = {}
        for key, sub in value.items():
            new = SNAKE_TO_CAMEL.get(key, key) if isinstance(key, str) else key
            if new != key:
                self.renames[join_path(path, new)] = join_path(path, key)
            # params and json bodies are user data: never rename inside them.
            out[new] = (
                sub
                if new in ("params", "json", "env", "headers", "query")
                else self._rename_keys(sub, join_path(path, new), depth + 1)
            )
        return out

    def _convert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        metadata = doc.get("metadata")
        spec: dict[str, Any] = {}
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
            self.problems.append(Problem("metadata.name", "a flowrunner document needs metadata.name (a string)"))
        else:
            self.name = metadata["name"]
            if isinstance(metadata.get("description"), str):
                spec["description"] = metadata["description"]
                self.renames["description"] = "metadata.description"
        for key, value in doc.items():
            if key in ("metadata", "nodes"):
                continue
            new = SNAKE_TO_CAMEL.get(key, key) if isinstance(key, str) else key
            if new != key:
                self.renames[key_text(new)] = key_text(key)
            spec[new] = value
        nodes = doc.get("nodes")
        if isinstance(nodes, Mapping):
            spec["nodes"] = {name: self._node(name, node) for name, node in nodes.items()}
        else:
            spec["nodes"] = nodes
        return spec

    def _node(self, name: Any, node: Any) -> Any:
        path = join_path("nodes", name)
        if not isinstance(node, Mapping):
            return node
        out = dict(self._rename_keys(node, path))
        if "hooks" in out:
            out.pop("hooks")
            self.problems.append(
                Problem(
                    join_path(path, "hooks"),
                    "JavaScript hooks are not supported; port them to Python with "
                    "run: {python: ...} defining prep(shared), exec(prep_res) and post(shared, prep_res, "
                    "exec_res)",
                )
            )
        self._move(out, path, ("maxRetries", "wait"), "retry")
        self._move(out, path, ("maxParallel",), "batch")
        batch = out.get("batch")
        if isinstance(batch, Mapping) and "strategy" in batch:
            batch = dict(batch)
            strategy = batch.pop("strategy")
            out["batch"] = batch
            mapped = STRATEGY_TYPES.get(strategy) if isinstance(strategy, str) else None
            current = out.get("type", "base")
            current = "worker_pool" if current == "worker_pool_batch" else current
            if mapped is None:
                self.problems.append(
                    Problem(
                        join_path(path, "batch", "strategy"),
                        f"unknown batch strategy {short(strategy)}; use one of {listing(STRATEGY_TYPES, limit=None)}",
                    )
                )
            elif current == "base":
                out["type"] = mapped
            elif current != mapped:
                self.problems.append(
                    Problem(
                        join_path(path, "batch", "strategy"),
                        f"strategy {short(strategy)} means type {mapped} but the node says type "
                        f"{_word(out.get('type'))}; remove one of them",
                    )
                )
        nxt = out.get("next")
        if isinstance(nxt, Mapping):
            out["next"] = {action: target for action, target in nxt.items() if target != END_TARGET}
        return out

    def _move(self, node: dict[str, Any], path: str, keys: tuple[str, ...], block: str) -> None:
        """Move retry/batch settings written directly on a node into their block."""
        present = [k for k in keys if k in node]
        if not present:
            return
        target = node.get(block)
        if target is not None and not isinstance(target, Mapping):
            return  # the block itself is wrong; the schema reports it
        merged = dict(target or {})
        for key in present:
            merged.setdefault(key, node.pop(key))
            original = self.renames.get(join_path(path, key), join_path(path, key))
            self.renames[join_path(path, block, key)] = original
        node[block] = merged


def _word(value: Any) -> str:
    """A name as a message shows it: a string as written, anything else (a mapping, a list) shortened."""
    return value if isinstance(value, str) else short(value)
