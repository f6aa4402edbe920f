"""Loading flow definitions: YAML (or dicts) in, a validated ``FlowDefinition`` or problems out.

Accepted documents:

- a Flow manifest (``apiVersion`` the contract's ``GROUP_VERSION``, ``kind: Flow``, ``metadata.name``, ``spec``);
- a bare spec (a mapping with ``nodes``), named after the file (or ``flow``);
- the seed's flowrunner format (``metadata`` + snake_case ``nodes``, see ``seedformat.py``).

A file may hold several documents; Flows are found by name, and ``type: flow`` nodes refer to them
(or to the ``library`` the operator passes). ``FlowRun`` documents are skipped. Loading validates
only: ``build.build_flow`` is where user code is imported and compiled, so the operator can load
(validate) any definition without importing flowlib or anything of the user's.

Results are bounded (``problems.report``: the first errors and warnings, each cut to size), and
``load_object`` takes a ``time_limit``: the operator validates whatever is applied, and a flow that
still takes too long is reported as a problem instead of holding the operator up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowlib_api.flowspec import FlowSpec
from flowlib_api.flowspec_schema import flow_spec_json_schema
from flowlib_api.meta import API_GROUP, GROUP_VERSION, KIND_FLOW, KIND_FLOWRUN

from .factories import NodeTypeRegistry, default_registry
from .problems import Problem, TooSlow, chain, did_you_mean, join_path, key_text, listing, report, short, too_slow
from .runkinds import RunKindRegistry, default_run_kinds
from .seedformat import SeedConversion, is_seed_document
from .validate import SpecValidator


def read_documents(text: str) -> tuple[list[Any], list[Problem]]:
    """``yamlread.read_documents``, imported at the first text read. Lazy: PyYAML and the reader's
    loader classes (about 10 ms) serve texts only; the in-cluster runner loads its snapshot's
    manifest as an object."""
    from .yamlread import read_documents as read

    return read(text)


_MANIFEST_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")
_SKIPPED_KINDS = (KIND_FLOWRUN,)


@dataclass
class FlowDefinition:
    """A validated, normalized flow: its name, canonical spec and every sub-flow it uses."""

    name: str
    spec: FlowSpec
    subflows: dict[str, FlowSpec] = field(default_factory=dict)


@dataclass
class LoadResult:
    """The definition (None when there is any error) and its problems, sorted by path and bounded
    (``problems.report``: the first ones, then a line counting the rest)."""

    definition: FlowDefinition | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.definition is not None and not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


@dataclass
class _Doc:
    """One flow document, with its raw canonical spec and how to report its problems."""

    name: str
    spec: Any
    problems: list[Problem]
    seed: SeedConversion | None = None

    def user_path(self, path: str) -> str:
        return self.seed.user_path(path) if self.seed is not None else path


class Loader:
    """Loads flows against a set of node types and run kinds (the defaults include plugins)."""

    def __init__(self, registry: NodeTypeRegistry | None = None, run_kinds: RunKindRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self.run_kinds = run_kinds or default_run_kinds()
        self._validator = SpecValidator(self.registry, self.run_kinds)

    # -- entry points ---------------------------------------------------------------------------

    def load_text(self, text: str, *, source: str = "<string>", flow: str | None = None) -> LoadResult:
        return self._load_documents(text, source, flow)[0]

    def load_file(self, path: str | Path, *, flow: str | None = None) -> LoadResult:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return LoadResult(None, [Problem("", f"cannot read {path}: {exc}")])
        return self.load_text(text, source=str(path), flow=flow)

    def load_file_all(self, path: str | Path) -> list[tuple[str, LoadResult]]:
        """Every Flow in a file, each loaded as the main flow (for ``flowctl lint``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [(str(path), LoadResult(None, [Problem("", f"cannot read {path}: {exc}")]))]
        docs, problems = self._read_documents(text, str(path))
        if len(docs) <= 1:
            return [(docs[0].name if docs else str(path), self._choose(docs, problems, str(path), None))]
        # The file is read and parsed once, then each flow is resolved as the main one.
        return [(d.name, self._choose(docs, list(problems), str(path), d.name)) for d in docs]

    def load_object(
        self,
        obj: Mapping[str, Any],
        *,
        library: Mapping[str, Mapping[str, Any]] | None = None,
        source: str = "",
        time_limit: float | None = None,
    ) -> LoadResult:
        """Load a manifest, bare spec or flowrunner dict with ``library`` (other flows by name).

        ``time_limit`` (seconds): when validating takes longer, stop and report that as an error,
        with the problems found so far (the operator's bound; see the module doc).
        """
        deadline = None if time_limit is None else time.monotonic() + time_limit
        doc, problems = self._document(obj, source)
        if doc is None:
            return LoadResult(None, report(problems))
        lib: dict[str, _Doc] = {}
        for name, other in (library or {}).items():
            other_doc, other_problems = self._document(other, "", default_name=name)
            lib[name] = other_doc if other_doc is not None else _Doc(name, None, other_problems)
        return self._resolve(doc, lib, problems, deadline, time_limit)

    # -- documents ------------------------------------------------------------------------------

    def _load_documents(self, text: str, source: str, flow: str | None) -> tuple[LoadResult, list[_Doc]]:
        docs, problems = self._read_documents(text, source)
        return self._choose(docs, problems, source, flow), docs

    def _read_documents(self, text: str, source: str) -> tuple[list[_Doc], list[Problem]]:
        """The flows of a YAML text, with the problems of reading them (no flow when it cannot be read)."""
        raw_docs, problems = read_documents(text)
        if problems:
            return [], problems
        docs: list[_Doc] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_docs):
            doc, doc_problems = self._document(raw, source, index=index if len(raw_docs) > 1 else None)
            problems += doc_problems
            if doc is not None:
                if doc.name in seen:
                    problems.append(
                        Problem(
                            "metadata.name",
                            f"two documents define flow '{doc.name}'; give each a unique name",
                        )
                    )
                    continue
                seen.add(doc.name)
                docs.append(doc)
        return docs, problems

    def _choose(self, docs: list[_Doc], problems: list[Problem], source: str, flow: str | None) -> LoadResult:
        """The flow ``flow`` (None: the first) of ``docs`` resolved as the main one, the rest its library."""
        if not docs:
            if not problems:
                problems.append(Problem("", "no Flow found; the file is empty"))
            return LoadResult(None, report(problems))
        if flow is None:
            main = docs[0]
        else:
            found = [d for d in docs if d.name == flow]
            if not found:
                names = [d.name for d in docs]
                message = f"no flow named '{flow}'{did_you_mean(flow, names)}; flows in {source}: {listing(names)}"
                return LoadResult(None, report([*problems, Problem("", message)]))
            main = found[0]
        library = {d.name: d for d in docs if d is not main}
        return self._resolve(main, library, problems)

    def _document(
        self, raw: Any, source: str, *, index: int | None = None, default_name: str | None = None
    ) -> tuple[_Doc | None, list[Problem]]:
        where = f"document {index + 1}" if index is not None else ""
        if not isinstance(raw, Mapping):
            return None, [Problem(where, f"expected a Flow (a mapping), got {type(raw).__name__}; see the Flow format")]
        if "apiVersion" in raw or "kind" in raw:
            return self._manifest(raw, where)
        if is_seed_document(raw):
            seed = SeedConversion(raw)
            name = seed.name or default_name or "flow"
            return _Doc(name, seed.spec, list(seed.problems), seed), []
        if "nodes" in raw:
            name = default_name or (Path(source).stem if source and not source.startswith("<") else "flow")
            return _Doc(name, raw, []), []
        return None, [
            Problem(
                where,
                "not a flow: expected a Flow manifest (apiVersion, kind, metadata, spec), a bare spec with "
                "nodes, or a flowrunner document (metadata and nodes)",
            )
        ]

    def _manifest(self, raw: Mapping[str, Any], where: str) -> tuple[_Doc | None, list[Problem]]:
        kind = raw.get("kind")
        api_version = raw.get("apiVersion")
        if kind in _SKIPPED_KINDS and isinstance(api_version, str) and api_version.startswith(API_GROUP + "/"):
            return None, []
        problems: list[Problem] = []
        if api_version != GROUP_VERSION:
            problems.append(
                Problem(join_path(where, "apiVersion"), f"expected {GROUP_VERSION}, got {short(api_version)}")
            )
        if kind != KIND_FLOW:
            problems.append(Problem(join_path(where, "kind"), f"expected {KIND_FLOW}, got {short(kind)}"))
        for key in raw:
            if key not in _MANIFEST_KEYS:
                shown = key_text(key)
                problems.append(
                    Problem(
                        join_path(where, shown),
                        f"unknown top-level field '{shown}'{did_you_mean(shown, _MANIFEST_KEYS)}; a "
                        "manifest has "
                        "apiVersion, kind, metadata and spec (put flow fields under spec)",
                    )
                )
        metadata = raw.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or not name:
            problems.append(Problem(join_path(where, "metadata.name"), "a Flow needs metadata.name (a string)"))
        spec = raw.get("spec")
        if spec is None:
            problems.append(Problem(join_path(where, "spec"), "a Flow needs a spec with nodes"))
        if problems and (not isinstance(name, str) or not name or spec is None):
            return None, problems
        return _Doc(str(name), spec, problems), []

    # -- sub-flows and validation ---------------------------------------------------------------

    def _resolve(
        self,
        main: _Doc,
        library: dict[str, _Doc],
        problems: list[Problem],
        deadline: float | None = None,
        time_limit: float | None = None,
    ) -> LoadResult:
        known = {main.name, *library}
        specs: dict[str, FlowSpec] = {}
        problems = list(problems)
        order: dict[str, None] = {}  # flows in the order they were first reached (a set that keeps it)
        # The flows being visited (depth first, without recursion: a chain of a thousand sub-flows is
        # as fine as any), each with its position in the chain and its sub-flow references left to follow.
        visiting: dict[str, int] = {}
        stack: list[tuple[_Doc, str, Iterator[tuple[str, str]]]] = []

        def enter(doc: _Doc, prefix: str) -> None:
            visiting[doc.name] = len(stack)
            order[doc.name] = None
            for p in doc.problems:
                problems.append(Problem(join_path(prefix, doc.user_path(p.path)), p.message, p.severity))
            spec, found = (
                (None, []) if doc.spec is None else self._validator.validate(doc.spec, flows=known, deadline=deadline)
            )
            for p in found:
                problems.append(Problem(join_path(prefix, doc.user_path(p.path)), p.message, p.severity))
            if spec is not None:
                specs[doc.name] = spec
            stack.append((doc, prefix, iter(flow_refs(doc.spec))))

        try:
            enter(main, "")
            while stack:
                doc, prefix, refs = stack[-1]
                step = next(refs, None)
                if step is None:
                    stack.pop()
                    del visiting[doc.name]
                    continue
                node_name, ref = step
                if ref in visiting:
                    at = join_path(prefix, doc.user_path(join_path("nodes", node_name, "flow")))
                    cycle = chain([*(d.name for d, _, _ in stack[visiting[ref] :]), ref])
                    problems.append(
                        Problem(
                            at,
                            f"flows form a cycle ({cycle}); a flow cannot run itself, directly or through sub-flows",
                        )
                    )
                elif ref in library and ref not in order:
                    enter(library[ref], join_path("flows", ref))
        except TooSlow:
            return LoadResult(None, report([*problems, too_slow(time_limit or 0)]))
        problems = report(problems)
        if any(p.is_error for p in problems) or main.name not in specs:
            return LoadResult(None, problems)
        subflows = {name: specs[name] for name in list(order)[1:]}
        return LoadResult(FlowDefinition(main.name, specs[main.name], subflows), problems)


def flow_refs(spec: Any) -> list[tuple[str, str]]:
    """(node name, flow name) for every ``type: flow`` node, read from the raw spec (never validated:
    the operator also uses it to find which Flows a definition needs before loading it)."""
    nodes = spec.get("nodes") if isinstance(spec, Mapping) else None
    if not isinstance(nodes, Mapping):
        return []
    refs = []
    for name, node in nodes.items():
        if isinstance(node, Mapping) and node.get("type") == "flow" and isinstance(node.get("flow"), str):
            refs.append((key_text(name), node["flow"]))
    return refs


_default_loader: Loader | None = None


def default_loader() -> Loader:
    """A shared Loader with the built-in types and run kinds plus installed plugins."""
    global _default_loader
    if _default_loader is None:
        _default_loader = Loader()
    return _default_loader


def load_file(path: str | Path, *, flow: str | None = None) -> LoadResult:
    """Load a YAML file: the Flow named ``flow``, or the first; other Flows in it serve as sub-flows."""
    return default_loader().load_file(path, flow=flow)


def load_file_all(path: str | Path) -> list[tuple[str, LoadResult]]:
    """Every Flow of a file as ``(name, result)``, each validated as the main flow."""
    return default_loader().load_file_all(path)


def load_text(text: str, *, source: str = "<string>", flow: str | None = None) -> LoadResult:
    """Like ``load_file`` for YAML text; ``source`` names it in messages and names a bare spec."""
    return default_loader().load_text(text, source=source, flow=flow)


def load_object(
    obj: Mapping[str, Any],
    *,
    library: Mapping[str, Mapping[str, Any]] | None = None,
    time_limit: float | None = None,
) -> LoadResult:
    """Load a manifest, bare spec or flowrunner dict; ``library`` holds other flows by name (sub-flows);
    past ``time_limit`` seconds validation stops with a problem saying so."""
    return default_loader().load_object(obj, library=library, time_limit=time_limit)


__all__ = [
    "FlowDefinition",
    "LoadResult",
    "Loader",
    "Problem",
    "flow_refs",
    "flow_spec_json_schema",
    "load_file",
    "load_file_all",
    "load_object",
    "load_text",
]
