"""A flowlib program: fan out over documents with a bounded worker pool, then branch on the total.

Run it with ``make run`` (or ``python examples/hello_flowlib.py``). It is written exactly as a
PocketFlow program would be, plus flowlib's WorkerPoolBatchNode.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowlib import AsyncFlow, AsyncNode, Node, WorkerPoolBatchNode

DOCUMENTS = ["the quick brown fox", "jumps over", "the lazy dog", "flowlib runs graphs of small steps"]


class CountWords(WorkerPoolBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[str]:
        return shared["documents"]

    async def exec_async(self, document: str) -> int:
        await asyncio.sleep(0.01)  # stands in for real I/O
        return len(document.split())

    async def post_async(self, shared: dict[str, Any], prep_res: Any, counts: list[int]) -> str:
        shared["counts"] = counts
        return "big" if sum(counts) > 10 else "small"


class Report(AsyncNode):
    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        print(f"{shared['size']} corpus: {sum(shared['counts'])} words, per document {shared['counts']}")


class Label(Node):
    def __init__(self, size: str) -> None:
        super().__init__()
        self.size = size

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["size"] = self.size


def main() -> None:
    count = CountWords(max_parallel=2)
    big, small, report = Label("big"), Label("small"), Report()
    count - "big" >> big
    count - "small" >> small
    big >> report
    small >> report
    shared = {"documents": DOCUMENTS}
    asyncio.run(AsyncFlow(start=count).run_async(shared))


if __name__ == "__main__":
    main()
