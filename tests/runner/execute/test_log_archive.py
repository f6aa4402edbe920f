"""The run log's archive (``execution.logarchive``): every line passes on, a bounded and masked copy
is kept, saved per attempt and read back; locally through ``flowctl run --store DIR``, ``flowctl
logs DIR`` and ``flowctl output DIR KEY``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from flowlib_runner.execution.logarchive import LogArchive, archived_attempts, read_log
from flowlib_runner.execution.logs import RunLogger
from flowlib_runner.execution.masking import Masker
from flowlib_runner.store import DirectoryStore

from tests.flowctl.conftest import flowctl


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flushes = 0

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        self.flushes += 1


def test_every_line_passes_on_and_a_masked_copy_is_kept() -> None:
    sink = Sink()
    archive = LogArchive(sink)
    log = RunLogger(archive, masker=Masker.from_environment(["TOKEN"], {"TOKEN": "hunter2"}))
    log.line("WARNING", ("a",), "the token is hunter2")
    log.line("INFO", (), "plain")
    assert len(sink.lines) == 2 and sink.flushes >= 1  # the sink's flush is still used
    text = archive.text()
    assert text == "".join(line + "\n" for line in sink.lines)
    assert "hunter2" not in text and "the token is ***" in text


def test_a_huge_log_keeps_its_head_and_tail() -> None:
    archive = LogArchive(lambda line: None, head=100, tail=200)
    for i in range(1000):
        archive(f"line {i:04}")  # 10 characters a line, with its newline
    lines = archive.text().splitlines()
    assert lines[:10] == [f"line {i:04}" for i in range(10)]
    assert lines[-20:] == [f"line {i:04}" for i in range(980, 1000)]
    assert lines[10].startswith("... 970 line(s) (9700 characters) left out of the archive here")
    assert len(lines) == 31


def test_attempts_are_saved_apart_and_read_back(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)

    async def main() -> None:
        for attempt in (1, 2, 10):
            archive = LogArchive(lambda line: None)
            archive(f"attempt {attempt} says hello")
            await archive.save(store, attempt)
        assert await archived_attempts(store) == [1, 2, 10]
        assert await read_log(store, 10) == "attempt 10 says hello\n"
        assert await read_log(store, 3) is None

    asyncio.run(main())


FLOW = """\
nodes:
  make:
    run:
      python: |
        def exec(_):
            print('making it')
            return 'z' * 20000
    output: big
"""


def test_a_local_store_keeps_the_log_and_the_big_output(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    store = tmp_path / "store"
    done = flowctl("run", flow, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["outputRefs"]["big"]["blob"] == "outputs/big"
    logs = flowctl("logs", store)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines[0] == f"==> attempt 1 (archived in {store}) <=="
    assert any("making it" in line for line in lines) and "run finished" in lines[-1]
    value = tmp_path / "big.json"
    got = flowctl("output", store, "big", "-o", value)
    assert got.returncode == 0, got.stderr
    assert json.loads(value.read_text()) == "z" * 20000
    listed = flowctl("output", store)
    assert listed.stdout.split() == ["KEY", "BYTES", "WHERE", "big", "20002", f"{store}:", "outputs/big"]
    missing = flowctl("output", store, "nope")
    assert missing.returncode == 2 and "keeps no output 'nope' (kept: big)" in missing.stderr
