"""``spec.paramSchema`` in the loader: lint checks the declaration, and the declared defaults reach
the nodes under ``spec.params`` and a run's params."""

from __future__ import annotations

from .helpers import messages, run

TYPED = """
params: {mode: slow}
paramSchema:
  count: {type: integer, default: 2}
  mode: {type: string, enum: [fast, slow], default: fast}
  label: {type: string, default: hello}
nodes:
  show: {run: {python: "shared.update(seen=[params['count'], params['mode'], params['label']])"}}
"""


def test_defaults_sit_under_spec_params_and_run_params() -> None:
    _, shared = run(TYPED)
    assert shared["seen"] == [2, "slow", "hello"]  # spec.params wins over the declared default
    _, shared = run(TYPED, count=9, label="x")
    assert shared["seen"] == [9, "slow", "x"]


def test_lint_checks_defaults_enums_and_spec_params() -> None:
    text = """
    params: {count: "3"}
    paramSchema:
      count: {type: integer, default: "2", required: true}
      mode: {type: string, enum: [fast, 3]}
      pat: {type: string, pattern: "("}
      kind: {type: float}
    nodes: {a: {}}
    """
    found = messages(text)
    assert 'paramSchema.count.default: expected an integer, got the string "2" (write 2 without quotes)' in found
    assert any(m.startswith("paramSchema.count.required: warning: a required param with a default") for m in found)
    assert any(m.startswith("paramSchema.mode.enum[1]: expected a string like the param") for m in found)
    assert any(m.startswith("paramSchema.pat.pattern:") and "regular expression" in m for m in found)
    assert any(m.startswith("paramSchema.kind.type:") for m in found)
    assert any(m.startswith("params.count: expected an integer") for m in found), found


def test_a_good_declaration_is_clean() -> None:
    assert messages(TYPED) == []
