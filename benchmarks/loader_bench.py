"""Parse + validate time of a generated 1,000-node flow (issue 3's loader benchmark).

The flow is a YAML Flow manifest with 1,000 nodes of mixed types (inline Python expressions and
module code, shell templates, worker pools, action templates, retries and timeouts), chained by
``next`` edges with an ``error`` edge on every tenth node, so every validation path is exercised.
Target: under 0.5 s per load.
"""

from __future__ import annotations

import yaml
from flowlib_runner.definition.loader import load_text

from .timing import best_of

NODES = 1_000
TARGET_SECONDS = 0.5


def generate(n: int = NODES) -> str:
    nodes: dict[str, object] = {}
    for i in range(n):
        name = f"n{i:04d}"
        nxt = {"default": f"n{i + 1:04d}"} if i + 1 < n else {}
        kind = i % 4
        node: dict[str, object]
        if kind == 0:
            node = {
                "run": {"python": f"def exec(prep_res):\n    return {i} * 2\n"},
                "retry": {"maxRetries": 3, "wait": "100ms"},
            }
        elif kind == 1:
            node = {
                "type": "worker_pool",
                "batch": {"items": "xs", "maxParallel": 4},
                "run": {"python": "item + 1"},
            }
        elif kind == 2:
            node = {
                "run": {"shell": f"echo {{{{ params.x }}}} {{{{ shared.n{i - 1:04d} }}}}"},
                "timeout": "1m30s",
            }
        else:
            node = {"action": "{{ 'default' if shared.x else 'default' }}", "output": f"out{i}"}
        if i % 10 == 0 and i + 1 < n:
            nxt["error"] = f"n{n - 1:04d}"
        node["next"] = nxt
        nodes[name] = node
    manifest = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "big"},
        "spec": {"params": {"x": 1}, "nodes": nodes},
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def main() -> int:
    text = generate()

    def load() -> None:
        result = load_text(text)
        if not result.ok:
            raise RuntimeError(f"generated flow is invalid: {result.problems[:3]}")

    best = best_of({"load": load}, repeat=5)["load"]
    verdict = "ok" if best <= TARGET_SECONDS else "MISSED"
    print(
        f"parse+validate {NODES} nodes ({len(text) // 1024} KiB YAML): {best:.3f} s (target < "
        f"{TARGET_SECONDS} s) {verdict}"
    )
    return 0 if best <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
