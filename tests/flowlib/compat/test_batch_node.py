"""BatchNode: one exec per item, per-item retries and fallback, None/empty/iterable items."""

from __future__ import annotations

import pytest

from ._support import capture


def batch_node(pf, items, fail=None, fallback=None, **kwargs):
    """A BatchNode over ``items``; ``fail(item, cur_retry)`` says whether that attempt raises."""
    log = []

    class Batch(pf.BatchNode):
        def prep(self, shared):
            log.append(("prep",))
            return items

        def exec(self, item):
            log.append(("exec", item, self.cur_retry))
            if fail is not None and fail(item, self.cur_retry):
                raise ValueError(f"{item}@{self.cur_retry}")
            return f"<{item}>"

        def post(self, shared, prep_res, exec_res):
            log.append(("post", prep_res, exec_res))
            shared["results"] = exec_res
            return "batched"

    if fallback is not None:
        Batch.exec_fallback = fallback
    return Batch(**kwargs), log


def test_exec_runs_once_per_item_in_order(pf):
    node, log = batch_node(pf, [3, 1, 2])
    shared = {}
    out = capture(lambda: node.run(shared))
    assert out.result == "batched"
    assert log == [
        ("prep",),
        ("exec", 3, 0),
        ("exec", 1, 0),
        ("exec", 2, 0),
        ("post", [3, 1, 2], ["<3>", "<1>", "<2>"]),
    ]
    assert type(shared["results"]) is list


@pytest.mark.parametrize("items", [None, [], (), "", 0], ids=repr)
def test_none_and_empty_items_give_an_empty_list(pf, items):
    node, log = batch_node(pf, items)
    shared = {}
    out = capture(lambda: node.run(shared))
    assert out.error is None
    assert out.result == "batched"
    assert shared["results"] == []
    assert type(shared["results"]) is list
    assert log == [("prep",), ("post", items, [])]


def test_default_prep_means_no_items(pf):
    calls = []

    class Batch(pf.BatchNode):
        def exec(self, item):
            calls.append(item)

        def post(self, shared, prep_res, exec_res):
            return (prep_res, exec_res)

    assert Batch().run({}) == (None, [])
    assert calls == []


@pytest.mark.parametrize(
    ("make_items", "expected"),
    [
        (lambda: (i * i for i in range(3)), [0, 1, 4]),
        (lambda: "ab", ["a", "b"]),
        (lambda: {"k1": 1, "k2": 2}, ["k1", "k2"]),
        (lambda: range(2, 5), [2, 3, 4]),
        (lambda: (7, 8), [7, 8]),
    ],
    ids=["generator", "string", "dict", "range", "tuple"],
)
def test_items_can_be_any_truthy_iterable(pf, make_items, expected):
    seen = []

    class Batch(pf.BatchNode):
        def prep(self, shared):
            return make_items()

        def exec(self, item):
            seen.append(item)
            return item

        def post(self, shared, prep_res, exec_res):
            return exec_res

    assert Batch().run({}) == expected
    assert seen == expected


def test_each_item_is_retried_independently(pf):
    node, log = batch_node(pf, ["a", "b", "c"], fail=lambda item, r: item != "a" and r < 1, max_retries=2)
    shared = {}
    assert capture(lambda: node.run(shared)).error is None
    assert [entry for entry in log if entry[0] == "exec"] == [
        ("exec", "a", 0),
        ("exec", "b", 0),
        ("exec", "b", 1),
        ("exec", "c", 0),
        ("exec", "c", 1),
    ]
    assert shared["results"] == ["<a>", "<b>", "<c>"]
    assert node.cur_retry == 1


def test_fallback_is_called_per_item_with_the_item(pf):
    calls = []

    def fallback(self, item, exc):
        calls.append((item, str(exc), self.cur_retry))
        return f"fb:{item}"

    node, _ = batch_node(pf, [1, 2, 3], fail=lambda item, r: item % 2 == 1, fallback=fallback, max_retries=2)
    shared = {}
    assert capture(lambda: node.run(shared)).result == "batched"
    assert calls == [(1, "1@1", 1), (3, "3@1", 1)]
    assert shared["results"] == ["fb:1", "<2>", "fb:3"]


def test_failing_item_stops_the_batch(pf):
    node, log = batch_node(pf, [1, 2, 3], fail=lambda item, r: item == 2, max_retries=2)
    shared = {}
    out = capture(lambda: node.run(shared))
    assert out.error == (ValueError, ("2@1",), "2@1")
    assert [entry for entry in log if entry[0] == "exec"] == [("exec", 1, 0), ("exec", 2, 0), ("exec", 2, 1)]
    assert shared == {}


def test_wait_applies_per_item(pf, sleeps):
    node, _ = batch_node(pf, [1, 2], fail=lambda item, r: r < 2, fallback=lambda s, i, e: None, max_retries=3, wait=0.5)
    assert capture(lambda: node.run({})).error is None
    assert sleeps.calls == [("time.sleep", 0.5)] * 4


def test_max_retries_zero_gives_none_per_item(pf):
    node, log = batch_node(pf, [1, 2], fail=lambda item, r: True, max_retries=0)
    shared = {}
    assert capture(lambda: node.run(shared)).error is None
    assert shared["results"] == [None, None]
    assert [entry[0] for entry in log] == ["prep", "post"]


def test_batch_node_with_successors_warns_when_run_directly(pf):
    node, _ = batch_node(pf, [1])
    node >> pf.Node()
    out = capture(lambda: node.run({}))
    assert out.warnings == [(UserWarning, "Node won't run successors. Use Flow.")]
    assert out.result == "batched"


def test_map_reduce_with_chunks(pf):
    """The cookbook's map-reduce: a BatchNode sums chunks, a Node reduces them."""

    class Chunks(pf.BatchNode):
        def prep(self, shared):
            data = shared["data"]
            return [data[i : i + 10] for i in range(0, len(data), 10)]

        def exec(self, chunk):
            return sum(chunk)

        def post(self, shared, prep_res, exec_res):
            shared["partials"] = exec_res

    class Reduce(pf.Node):
        def prep(self, shared):
            return shared["partials"]

        def exec(self, partials):
            return sum(partials)

        def post(self, shared, prep_res, exec_res):
            shared["total"] = exec_res
            return "reduced"

    for size in (0, 1, 25, 100):
        shared = {"data": list(range(size))}
        chunks = Chunks()
        chunks >> Reduce()
        out = capture(lambda chunks=chunks, shared=shared: pf.Flow(start=chunks).run(shared))
        assert out.result == "reduced"
        assert out.warnings == []
        assert shared["total"] == sum(range(size))
        assert shared["partials"] == [sum(range(i, min(i + 10, size))) for i in range(0, size, 10)]
