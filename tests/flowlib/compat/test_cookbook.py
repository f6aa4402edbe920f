"""Cookbook-style programs (agent loop, map-reduce, async parallel batch) run on both implementations."""

from __future__ import annotations

from ._support import capture, capture_async, tick


def agent_flow(pf):
    class Decide(pf.Node):
        def prep(self, shared):
            return shared["question"], shared.get("context", [])

        def exec(self, inputs):
            question, context = inputs
            if len(context) < 2:
                return {"action": "search", "query": f"{question} #{len(context) + 1}"}
            return {"action": "answer"}

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("log", []).append(("decide", exec_res["action"]))
            if exec_res["action"] == "search":
                shared["query"] = exec_res["query"]
            return exec_res["action"]

    class Search(pf.Node):
        def __init__(self):
            super().__init__(max_retries=3, wait=1)

        def prep(self, shared):
            return shared["query"]

        def exec(self, query):
            attempts = self.params.setdefault("attempts", [])
            attempts.append(query)
            if len(attempts) % 2 == 1:
                raise ConnectionError("flaky search")
            return f"result for {query}"

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("context", []).append(exec_res)
            shared["log"].append(("search", self.cur_retry))
            return "decide"

    class Answer(pf.Node):
        def prep(self, shared):
            return shared["context"]

        def exec(self, context):
            return " | ".join(context)

        def post(self, shared, prep_res, exec_res):
            shared["answer"] = exec_res
            shared["log"].append(("answer", None))

    decide, search, answer = Decide(), Search(), Answer()
    decide - "search" >> search
    decide - "answer" >> answer
    search - "decide" >> decide
    return pf.Flow(start=decide)


def test_agent_loop_with_branching(pf, sleeps):
    shared = {"question": "q"}
    out = capture(lambda: agent_flow(pf).run(shared))
    assert out.result is None
    assert out.error is None
    assert out.warnings == []
    assert shared["answer"] == "result for q #1 | result for q #2"
    assert shared["log"] == [
        ("decide", "search"),
        ("search", 1),
        ("decide", "search"),
        ("search", 1),
        ("decide", "answer"),
        ("answer", None),
    ]
    assert sleeps.calls == [("time.sleep", 1), ("time.sleep", 1)]


def test_map_reduce_resume_screening(pf):
    class Read(pf.Node):
        def exec(self, _):
            return {f"cv{i}.txt": f"candidate {i} " + ("python" if i % 3 else "java") for i in range(7)}

        def post(self, shared, prep_res, exec_res):
            shared["resumes"] = exec_res

    class Evaluate(pf.BatchNode):
        def prep(self, shared):
            return list(shared["resumes"].items())

        def exec(self, item):
            name, text = item
            if name == "cv4.txt" and self.cur_retry == 0:
                raise TimeoutError("llm timeout")
            return name, "python" in text

        def exec_fallback(self, item, exc):
            return item[0], None

        def post(self, shared, prep_res, exec_res):
            shared["evaluations"] = dict(exec_res)

    class Reduce(pf.Node):
        def prep(self, shared):
            return shared["evaluations"]

        def exec(self, evaluations):
            return sorted(name for name, ok in evaluations.items() if ok)

        def post(self, shared, prep_res, exec_res):
            shared["qualified"] = exec_res
            return "summarised"

    read, evaluate, reduce = Read(), Evaluate(max_retries=2), Reduce()
    read >> evaluate >> reduce
    shared = {}
    out = capture(lambda: pf.Flow(start=read).run(shared))
    assert out.result == "summarised"
    assert shared["qualified"] == ["cv1.txt", "cv2.txt", "cv4.txt", "cv5.txt"]
    assert list(shared["evaluations"]) == [f"cv{i}.txt" for i in range(7)]


def test_async_parallel_translation(pf, sleeps):
    class Translate(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [(shared["text"], lang) for lang in shared["languages"]]

        async def exec_async(self, item):
            text, lang = item
            shared_log = self.params["log"]
            shared_log.append(("start", lang))
            await tick(len(lang))
            if lang == "fr" and shared_log.count(("start", "fr")) == 1:
                raise ConnectionError("rate limited")
            shared_log.append(("done", lang))
            return f"[{lang}] {text}"

        async def post_async(self, shared, prep_res, exec_res):
            shared["translations"] = dict(zip(shared["languages"], exec_res, strict=True))
            return "translated"

    class Save(pf.AsyncNode):
        async def prep_async(self, shared):
            return shared["translations"]

        async def exec_async(self, translations):
            await tick()
            return len(translations)

        async def post_async(self, shared, prep_res, exec_res):
            shared["saved"] = exec_res

    log = []
    translate = Translate(max_retries=2, wait=0.5)
    translate - "translated" >> Save()
    flow = pf.AsyncFlow(start=translate)
    flow.set_params({"log": log})
    shared = {"text": "hello", "languages": ["german", "fr", "es"]}
    out = capture_async(lambda: flow.run_async(shared))
    assert out.error is None
    assert out.result is None
    assert shared["translations"] == {"german": "[german] hello", "fr": "[fr] hello", "es": "[es] hello"}
    assert shared["saved"] == 3
    assert sleeps.calls == [("asyncio.sleep", 0.5)]
    # Items start in order; a failed item retries after its (recorded) sleep while the others run on.
    assert log == [
        ("start", "german"),
        ("start", "fr"),
        ("start", "es"),
        ("done", "es"),
        ("start", "fr"),
        ("done", "fr"),
        ("done", "german"),
    ]


def test_batch_flow_image_filters(pf):
    class Load(pf.Node):
        def prep(self, shared):
            return self.params["image"]

        def exec(self, image):
            return [ord(c) for c in image]

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("pixels", {})[self.params["image"]] = exec_res

    class Filter(pf.Node):
        def prep(self, shared):
            return shared["pixels"][self.params["image"]], self.params["filter"]

        def exec(self, inputs):
            pixels, kind = inputs
            return [p // 2 for p in pixels] if kind == "half" else [255 - p for p in pixels]

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("output", []).append((self.params["image"], self.params["filter"], exec_res))

    class Images(pf.BatchFlow):
        def prep(self, shared):
            return [{"image": i, "filter": f} for i in shared["images"] for f in ("half", "invert")]

    load = Load()
    load >> Filter()
    shared = {"images": ["ab", "c"]}
    out = capture(lambda: Images(start=load).run(shared))
    assert out.result is None
    assert out.warnings == []
    assert shared["output"] == [
        ("ab", "half", [48, 49]),
        ("ab", "invert", [158, 157]),
        ("c", "half", [49]),
        ("c", "invert", [156]),
    ]
