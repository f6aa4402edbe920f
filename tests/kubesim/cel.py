"""A small, honest subset of CEL for ``x-kubernetes-validations`` rules.

Supported (see README): literals (int, double, string, bool, null, lists), ``self``/``oldSelf``,
field selection, indexing, ``has()``, ``size()``, the string methods ``startsWith``, ``endsWith``,
``contains``, ``matches``, the macros ``all``, ``exists``, ``exists_one``, ``map``, ``filter``,
``!``, unary ``-``, arithmetic, comparisons, ``in``, ``&&``/``||`` (with CEL's commutative error
handling) and ``?:``. Anything else is a compile error, which the CRD create rejects, as a real server
rejects rules it cannot compile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d+|\d+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]])
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
)""",
    re.VERBOSE,
)


class CelError(Exception):
    """A rule that does not compile or fails at evaluation."""


@dataclass
class Node:
    kind: str
    args: tuple[Any, ...]


def _tokenize(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CelError(f"Syntax error: unexpected character at {pos} in {text!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
    out.append(("eof", ""))
    return out


_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "in": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise CelError(f"Syntax error: expected {value!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.ternary()
        if self.peek()[0] != "eof":
            raise CelError(f"Syntax error: unexpected {self.peek()[1]!r}")
        return node

    def ternary(self) -> Node:
        cond = self.binary(1)
        if self.peek()[1] == "?":
            self.take("?")
            yes = self.ternary()
            self.take(":")
            return Node("cond", (cond, yes, self.ternary()))
        return cond

    def binary(self, level: int) -> Node:
        left = self.unary()
        while True:
            kind, value = self.peek()
            prec = _BINARY.get(value) if kind in ("op", "id") else None
            if prec is None or prec < level:
                return left
            self.take()
            right = self.binary(prec + 1)
            left = Node("bin", (value, left, right))

    def unary(self) -> Node:
        if self.peek()[1] == "!":
            self.take()
            return Node("not", (self.unary(),))
        if self.peek()[1] == "-":
            self.take()
            return Node("neg", (self.unary(),))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            value = self.peek()[1]
            if value == ".":
                self.take()
                kind, name = self.take()
                if kind != "id":
                    raise CelError(f"Syntax error: expected a field name after '.', got {name!r}")
                if self.peek()[1] == "(":
                    self.take("(")
                    if name in _MACROS:
                        var = self.take()[1]
                        self.take(",")
                        body = self.ternary()
                        self.take(")")
                        node = Node("macro", (name, node, var, body))
                    else:
                        node = Node("call", (name, node, self.arguments()))
                else:
                    node = Node("select", (node, name))
            elif value == "[":
                self.take()
                index = self.ternary()
                self.take("]")
                node = Node("index", (node, index))
            else:
                return node

    def arguments(self) -> tuple[Node, ...]:
        args: list[Node] = []
        while self.peek()[1] != ")":
            args.append(self.ternary())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return tuple(args)

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            return Node("lit", (float(value) if "." in value else int(value),))
        if kind == "str":
            return Node("lit", (bytes(value[1:-1], "utf-8").decode("unicode_escape"),))
        if value == "(":
            node = self.ternary()
            self.take(")")
            return node
        if value == "[":
            items: list[Node] = []
            while self.peek()[1] != "]":
                items.append(self.ternary())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return Node("list", tuple(items))
        if kind == "id":
            if value in ("true", "false"):
                return Node("lit", (value == "true",))
            if value == "null":
                return Node("lit", (None,))
            if value == "has":
                self.take("(")
                inner = self.ternary()
                self.take(")")
                if inner.kind != "select":
                    raise CelError("invalid argument to has() macro")
                return Node("has", (inner,))
            if self.peek()[1] == "(":
                self.take("(")
                return Node("call", (value, None, self.arguments()))
            return Node("ident", (value,))
        raise CelError(f"Syntax error: unexpected {value!r}")


def compile_rule(text: str) -> Node:
    return _Parser(text).parse()


def uses_old_self(node: Node) -> bool:
    if node.kind == "ident" and node.args[0] == "oldSelf":
        return True
    return any(isinstance(a, Node) and uses_old_self(a) for a in node.args) or any(
        isinstance(a, tuple) and any(isinstance(x, Node) and uses_old_self(x) for x in a) for a in node.args
    )


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    k, a = node.kind, node.args
    if k == "lit":
        return a[0]
    if k == "ident":
        if a[0] not in env:
            raise CelError(f"undeclared reference to '{a[0]}'")
        return env[a[0]]
    if k == "list":
        return [evaluate(x, env) for x in a]
    if k == "select":
        target = evaluate(a[0], env)
        if not isinstance(target, dict) or a[1] not in target:
            raise CelError(f"no such key: {a[1]}")
        return target[a[1]]
    if k == "has":
        target = evaluate(a[0].args[0], env)
        return isinstance(target, dict) and a[0].args[1] in target
    if k == "index":
        target, index = evaluate(a[0], env), evaluate(a[1], env)
        try:
            return target[index]
        except (KeyError, IndexError, TypeError) as exc:
            raise CelError(f"no such key: {index}") from exc
    if k == "not":
        return not _bool(evaluate(a[0], env))
    if k == "neg":
        return -evaluate(a[0], env)
    if k == "cond":
        return evaluate(a[1], env) if _bool(evaluate(a[0], env)) else evaluate(a[2], env)
    if k == "bin":
        return _binary(a[0], a[1], a[2], env)
    if k == "call":
        return _call(a[0], None if a[1] is None else evaluate(a[1], env), [evaluate(x, env) for x in a[2]])
    if k == "macro":
        name, target, var, body = a
        items = evaluate(target, env)
        keys = list(items) if isinstance(items, (list, dict)) else None
        if keys is None:
            raise CelError(f"{name}() needs a list or map")
        results = [evaluate(body, {**env, var: x}) for x in keys]
        if name == "all":
            return all(_bool(r) for r in results)
        if name == "exists":
            return any(_bool(r) for r in results)
        if name == "exists_one":
            return sum(1 for r in results if _bool(r)) == 1
        if name == "map":
            return results
        return [x for x, r in zip(keys, results, strict=True) if _bool(r)]
    raise CelError(f"unsupported expression {k}")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelError(f"no matching overload: expected bool, got {type(value).__name__}")
    return value


def _binary(op: str, left_node: Node, right_node: Node, env: dict[str, Any]) -> Any:
    if op in ("&&", "||"):
        decisive = op == "||"
        try:
            left = _bool(evaluate(left_node, env))
        except CelError:
            right = _bool(evaluate(right_node, env))
            if right is decisive:
                return decisive
            raise
        if left is decisive:
            return decisive
        return _bool(evaluate(right_node, env))
    left, right = evaluate(left_node, env), evaluate(right_node, env)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "in":
        return left in right
    try:
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left // right if isinstance(left, int) and isinstance(right, int) else left / right
        if op == "%":
            return left % right
    except (TypeError, ZeroDivisionError) as exc:
        raise CelError(f"no matching overload for '{op}'") from exc
    raise CelError(f"unsupported operator {op}")


def _call(name: str, target: Any, args: list[Any]) -> Any:
    if name == "size":
        value = target if target is not None else (args[0] if args else None)
        if not isinstance(value, (str, list, dict)):
            raise CelError("no matching overload for 'size'")
        return len(value)
    if isinstance(target, str) and len(args) == 1 and isinstance(args[0], str):
        if name == "startsWith":
            return target.startswith(args[0])
        if name == "endsWith":
            return target.endswith(args[0])
        if name == "contains":
            return args[0] in target
        if name == "matches":
            return re.search(args[0], target) is not None
    if target is None and name == "int" and len(args) == 1:
        return int(args[0])
    if target is None and name == "string" and len(args) == 1:
        return str(args[0])
    raise CelError(f"found no matching overload for '{name}'")
