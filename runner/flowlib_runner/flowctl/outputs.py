"""`flowctl output RUN|DIR [KEY] [-o FILE]`: a run's output value, whole, even when its status holds a preview.

Why a command: an output value too big for the FlowRun's status is kept whole in the run's store
(``execution.outputs``; ``status.outputRefs`` says where), as compressed parts in ConfigMaps, S3
objects or files. This finds it (the FlowRun's ``status.store``, or a local store directory),
reads it with the user's own credentials (``archived``) and prints it as JSON, or saves it with
``-o FILE``. A value small enough to be whole in ``status.output`` is printed from there. Without
KEY it lists the run's outputs: their size and where each is.

Exit codes: 0 printed; 2 bad usage (no such key, a directory holding no run); 3 the cluster or the
store could not be asked (``clusterapi``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from flowlib_runner.flowctl.archived import (
    NoStore,
    how_read,
    open_cluster_store,
    output_refs,
    reading,
    store_location,
)
from flowlib_runner.flowctl.clusterapi import ClusterError, connect
from flowlib_runner.flowctl.common import EXIT_CANCELLED, EXIT_INVALID, cluster_options
from flowlib_runner.store import DirectoryStore, RunStore, StoreError
from flowlib_runner.store.parts import read

PREVIEW = re.compile(r"^<\d+ bytes of JSON, shortened> ")
"""How ``bounded()`` marks a value it shortened to a preview."""


class Refused(click.ClickException):
    """Bad usage (no such key): ``flowctl: <message>``, exit code 2."""

    exit_code = EXIT_INVALID

    def show(self, file: Any = None) -> None:
        click.echo(f"flowctl: {self.format_message()}", err=True, file=file)


def _note(text: str) -> None:
    click.echo(f"flowctl: {text}", err=True)


async def _kept_value(store: RunStore, key: str, entry: dict[str, Any]) -> bytes:
    folder = entry.get("blob")
    if not isinstance(folder, str):
        raise StoreError(f"{store.location}: the ref of output {key!r} names no blob: {entry}")
    parts = entry.get("parts")
    data = await read(store, folder, parts=parts if isinstance(parts, int) else None)
    if data is None:
        raise StoreError(f"{store.location}: output {key!r} is not there any more ({folder}/* holds nothing)")
    return data


def _listing(output: dict[str, Any], refs: dict[str, dict[str, Any]], where: str) -> list[str]:
    rows = [("KEY", "BYTES", "WHERE")]
    for key in sorted(set(output) | set(refs)):
        if key in refs:
            rows.append((key, str(refs[key].get("bytes", "?")), f"{where}: {refs[key].get('blob')}"))
        else:
            value = output[key]
            shortened = isinstance(value, str) and PREVIEW.match(value)
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
            rows.append((key, str(size), "status.output (a preview only: not kept)" if shortened else "status.output"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}".rstrip() for row in rows]


def _deliver(data: bytes, target: str | None, what: str) -> None:
    if target is None or target == "-":
        out = sys.stdout.buffer
        out.write(data if data.endswith(b"\n") else data + b"\n")
        out.flush()
        return
    Path(target).write_bytes(data)
    _note(f"{what}: {len(data)} bytes of JSON written to {target}")


async def _from_directory(directory: str, key: str | None) -> tuple[bytes | list[str], str]:
    store = DirectoryStore(directory)
    try:
        refs = await output_refs(store)
    except StoreError as error:
        raise Refused(str(error)) from error
    if key is None:
        return _listing({}, refs, directory), ""
    entry = refs.get(key)
    if entry is None:
        known = ", ".join(sorted(refs)) or "none"
        raise Refused(
            f"{directory} keeps no output {key!r} (kept: {known}); outputs small enough for the status are not "
            "kept: they are in the run's final status (flowctl run --json)"
        )
    try:
        return await _kept_value(store, key, entry), f"output {key} read from {directory}/{entry['blob']}"
    except StoreError as error:
        raise Refused(str(error)) from error


async def _from_cluster(
    run: str, key: str | None, kubeconfig: str | None, context: str | None, namespace: str | None
) -> tuple[bytes | list[str], str]:
    async with connect(kubeconfig, context, namespace, prog="flowctl") as api:
        flowrun = await api.get_run(run)
        status = flowrun.get("status") or {}
        output: dict[str, Any] = status.get("output") or {}
        location = store_location(flowrun)
        refs: dict[str, dict[str, Any]] = dict(status.get("outputRefs") or {})
        store: RunStore | None = None
        if location is not None and (key is None or key not in output or key in refs or _is_preview(output[key])):
            try:
                store = open_cluster_store(api, flowrun, location)
            except NoStore:
                if refs:
                    raise
            if store is not None:
                refs = await reading(location, output_refs(store, flowrun), namespace=api.namespace)
        if key is None:
            return _listing(output, refs, location.description if location else "store"), ""
        if key in refs and store is not None and location is not None:
            data = await reading(location, _kept_value(store, key, refs[key]), namespace=api.namespace)
            return data, f"output {key} of {run} read from {how_read(location)} ({refs[key].get('blob')})"
        if key in output and not _is_preview(output[key]):
            data = json.dumps(output[key], ensure_ascii=False, separators=(",", ":")).encode()
            return data, f"output {key} of {run} read from its status"
        if key in output:
            why = "the run kept no store" if location is None else "the run did not keep it in its store"
            notes = "; ".join(status.get("notes") or [])
            raise ClusterError(
                f"output {key!r} of {run} is only a preview in its status and {why}"
                + (f" (the status notes: {notes})" if notes else "")
            )
        known = ", ".join(sorted(set(output) | set(refs))) or "none"
        phase = status.get("phase") or "Pending"
        raise Refused(
            f"FlowRun {run} ({phase}) has no output {key!r} (its outputs: {known}); spec.outputs names the shared "
            "keys a run publishes"
        )


def _is_preview(value: Any) -> bool:
    return isinstance(value, str) and PREVIEW.match(value) is not None


@click.command()
@click.argument("run", metavar="RUN|DIR")
@click.argument("key", required=False)
@click.option("-o", "--output", "target", metavar="FILE", help="Write the value to FILE instead of stdout.")
@cluster_options
def output(
    *,
    run: str,
    key: str | None,
    target: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Print output KEY of FlowRun RUN (or of the local run stored in directory DIR) whole, as JSON.

    Values too big for the FlowRun's status are read from the run's store (status.outputRefs says
    where) with your own credentials: a configmap store with your kubeconfig, an s3 store with your
    AWS credentials (boto3's default chain); a pvc store cannot be read from outside the cluster.
    Without KEY, list the run's outputs, their size and where each is.
    """
    local = Path(run).is_dir()
    work = _from_directory(run, key) if local else _from_cluster(run, key, kubeconfig, context, namespace)
    try:
        found, said = asyncio.run(work)
    except KeyboardInterrupt:
        _note("interrupted")
        raise SystemExit(EXIT_CANCELLED) from None
    if isinstance(found, list):
        for line in found:
            click.echo(line)
        return
    if said:
        _note(said)
    _deliver(found, target, f"output {key}")


COMMANDS: tuple[click.Command, ...] = (output,)

__all__ = ["COMMANDS", "PREVIEW", "Refused"]
