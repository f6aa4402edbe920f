"""Output values too big for the status, kept whole in the run's store (``execution.outputs``): the
threshold, the values ``bounded()`` would shorten, the refs in the status, and a store that fails."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from flowlib_runner.execution.checkpoints.setup import prepare
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.outputs import (
    INDEX_BLOB,
    MAX_OUTPUT_REFS,
    OUTPUT_REF_BYTES,
    choose,
    folder_for,
    json_bytes,
    read_index,
)
from flowlib_runner.flowctl.outputs import PREVIEW
from flowlib_runner.store import DirectoryStore, RunStore, StoreFull, check_name
from flowlib_runner.store.parts import read

from flowlib_api.runstatus import DEFAULT_BUDGET, RunStatus, bounded

from .definitions import load
from .stores import ForwardingStore

VALUES = """\
nodes:
  make:
    run:
      python: |
        def exec(_):
            return dict(params['values'])
    output: made
    next: {default: spread}
  spread:
    run:
      python: |
        def post(shared, prep_res, exec_res):
            shared.update(shared.pop('made'))
"""


class FailingStore(ForwardingStore):
    """A directory store that refuses every blob under ``outputs/`` (as a full store would)."""

    def __init__(self, root: Path) -> None:
        super().__init__(DirectoryStore(root))

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        if any(name.startswith("outputs/") and data is not None for name, data in blobs.items()):
            raise StoreFull(f"{self.location} is full (a test)")
        await self.inner.put_many(blobs)


def run_with_store(root: Path, values: dict[str, Any], *, failing: bool = False) -> RunStatus:
    definition = load(VALUES)

    @asynccontextmanager
    async def opened() -> AsyncIterator[RunStore]:
        yield FailingStore(root) if failing else DirectoryStore(root)

    async def main() -> RunStatus:
        prepared = await prepare(DirectoryStore(root), definition, opener=opened)
        return await execute_async(
            definition, params={"values": values}, checkpointer=prepared.checkpointer, outputs=sorted(values)
        )

    return asyncio.run(main())


def stored(root: Path, status: RunStatus, key: str) -> Any:
    assert status.output_refs is not None and key in status.output_refs, status.output_refs
    entry = status.output_refs[key]
    data = asyncio.run(read(DirectoryStore(root), entry["blob"], parts=entry["parts"]))
    assert data is not None and len(data) == entry["bytes"]
    return json.loads(data)


def hex_text(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("0123456789abcdef") for _ in range(size))


def test_the_threshold_is_the_values_json_size() -> None:
    at, over = "x" * (OUTPUT_REF_BYTES - 2), "y" * (OUTPUT_REF_BYTES - 1)  # JSON adds the two quotes
    assert (len(json_bytes(at)), len(json_bytes(over))) == (OUTPUT_REF_BYTES, OUTPUT_REF_BYTES + 1)
    chosen = choose(RunStatus(phase="Succeeded"), {"at": at, "over": over, "small": 1}, budget=DEFAULT_BUDGET)
    assert sorted(chosen) == ["over"]
    assert chosen["over"] == json_bytes(over)


def test_values_bounded_would_shorten_are_kept_though_under_the_threshold() -> None:
    values = {f"k{i:02}": "v" * 3000 for i in range(30)}  # 90 KB in all: the status shortens most of them
    chosen = choose(RunStatus(phase="Succeeded"), values, budget=DEFAULT_BUDGET)
    assert chosen and all(len(json_bytes(values[key])) <= OUTPUT_REF_BYTES for key in chosen)
    # what is not kept, the status holds whole
    refs = {key: {"blob": folder_for(key), "parts": 1, "bytes": 3002, "storedBytes": 40} for key in chosen}
    shown = bounded(RunStatus(phase="Succeeded", output=values, output_refs=refs)).output or {}
    assert all(shown.get(key) == value for key, value in values.items() if key not in chosen)


def test_a_run_keeps_its_big_outputs_whole_and_says_where(tmp_path: Path) -> None:
    big = hex_text(300_000)
    values = {"big": big, "mid": "m" * 5000, "small": "s", **{f"many{i}": "v" * 3000 for i in range(20)}}
    status = run_with_store(tmp_path, values)
    assert status.phase == "Succeeded", status.message
    refs = status.output_refs or {}
    assert {"big", "mid"} <= set(refs) and "small" not in refs
    assert any(key.startswith("many") for key in refs)  # under the threshold, but shortened by the status
    assert refs["big"] == {
        "blob": "outputs/big",
        "parts": 1,
        "bytes": len(big) + 2,
        "storedBytes": refs["big"]["storedBytes"],
    }
    assert refs["big"]["storedBytes"] < len(big)  # compressed
    assert stored(tmp_path, status, "big") == big
    assert stored(tmp_path, status, "mid") == "m" * 5000
    output = status.output or {}
    assert output["small"] == "s"
    for key, value in output.items():  # every value the status shortened is in the store
        if isinstance(value, str) and PREVIEW.match(value):
            assert stored(tmp_path, status, key) == values[key]
    assert PREVIEW.match(output["big"])
    index = read_index(asyncio.run(DirectoryStore(tmp_path).get(INDEX_BLOB)) or b"")
    assert index == refs
    assert len(status.to_json().encode()) < DEFAULT_BUDGET


def test_refs_are_capped_in_the_status_and_all_in_the_index(tmp_path: Path) -> None:
    values = {f"key{i:03}": f"{i}" * 4100 for i in range(1, MAX_OUTPUT_REFS + 21)}
    status = run_with_store(tmp_path, values)
    assert status.phase == "Succeeded"
    assert len(status.output_refs or {}) == MAX_OUTPUT_REFS
    assert any(f"lists {MAX_OUTPUT_REFS} of the {len(values)}" in note for note in status.notes), status.notes
    index = read_index(asyncio.run(DirectoryStore(tmp_path).get(INDEX_BLOB)) or b"")
    assert sorted(index) == sorted(values)
    entry = index["key120"]
    data = asyncio.run(read(DirectoryStore(tmp_path), entry["blob"], parts=entry["parts"]))
    assert json.loads(data or b"") == values["key120"]


def test_a_value_the_store_refuses_says_so(tmp_path: Path) -> None:
    status = run_with_store(tmp_path, {"big": "b" * 100_000}, failing=True)
    assert status.phase == "Succeeded"
    assert status.output_refs is None
    assert any("output value(s) big could not be kept in the run store" in note for note in status.notes), status.notes
    assert any("is full (a test)" in note for note in status.notes)
    assert PREVIEW.match((status.output or {})["big"])


def test_no_store_keeps_nothing_and_changes_nothing(tmp_path: Path) -> None:
    status = asyncio.run(execute_async(load(VALUES), params={"values": {"big": "b" * 100_000}}, outputs=["big"]))
    assert status.output_refs is None
    assert PREVIEW.match((status.output or {})["big"])


def test_folders_are_valid_unique_blob_names() -> None:
    assert folder_for("report") == "outputs/report"
    assert folder_for("result.summary") == "outputs/result.summary"
    assert folder_for("a/b c_d") == "outputs/a_2fb_20c_5fd"
    assert folder_for("é") == "outputs/_c3_a9"
    assert folder_for("..") == "outputs/_2e_2e"
    assert folder_for("") == "outputs/_"
    long = folder_for("k" * 500)
    assert len(long + "/99999") <= 120 and long != folder_for("k" * 501)
    taken = {folder_for("x")}
    assert folder_for("x", taken) not in taken
    for key in ("report", "a/b c_d", "é", "..", "k" * 500, "x" * 200 + "/"):
        check_name(folder_for(key) + "/0")
