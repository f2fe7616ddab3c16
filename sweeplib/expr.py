"""Constraint expressions over parameters or result metrics, parsed by a whitelist — never eval'd.

Grammar (Python's expression syntax, parsed with ``ast`` and accepted only if every node is one of
these; anything else — calls, attributes, subscripts, lambdas, comprehensions, f-strings, ``**`` —
is a SweepInputError naming the field)::

    condition  := comparison | condition "and" condition | condition "or" condition
                | "not" condition | "(" condition ")" | "true" | "false"
    comparison := term (("<" | "<=" | ">" | ">=" | "==" | "!=") term)+     # chains: 3 <= a < b
    term       := NAME | NUMBER | STRING | term ("+" | "-" | "*" | "/" | "%") term | "-" term | "(" term ")"

Names must be known (parameters of the space, or metric names for result constraints). A
comparison that cannot be evaluated — a division by zero, a metric that is undefined (None) for
this trial, an ordering between a string and a number — is false, so a trial with an undefined
metric does not satisfy a result constraint.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeplib.errors import SweepInputError

MAX_EXPR_CHARS = 500
MAX_NODES = 200
MAX_CONSTRAINTS = 32

_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}

Env = Mapping[str, Any]
_Eval = Callable[[Env], Any]


class _Undefined(Exception):
    """A value needed by the expression does not exist (None metric, zero division, bad types)."""


@dataclass(frozen=True)
class Condition:
    """One parsed constraint: ``holds(values)`` is True when it is satisfied."""

    text: str
    names: frozenset[str]
    _fn: _Eval

    def holds(self, values: Env) -> bool:
        try:
            return bool(self._fn(values))
        except _Undefined:
            return False

    def __str__(self) -> str:
        return self.text


def _node_name(node: ast.AST) -> str:
    return {
        ast.Call: "a function call", ast.Attribute: "an attribute", ast.Subscript: "a subscript",
        ast.Lambda: "a lambda", ast.Pow: "'**'", ast.NamedExpr: "':='", ast.IfExp: "'if … else'",
        ast.JoinedStr: "an f-string", ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict",
        ast.Set: "a set", ast.In: "'in'", ast.NotIn: "'not in'", ast.Is: "'is'", ast.IsNot: "'is not'",
        ast.Starred: "'*'", ast.Await: "'await'",
    }.get(type(node), f"'{type(node).__name__}'")


class _Compiler:
    def __init__(self, field: str, known: frozenset[str], what: str) -> None:
        self.field, self.known, self.what = field, known, what
        self.names: set[str] = set()

    def fail(self, message: str) -> SweepInputError:
        return SweepInputError(self.field, message)

    def condition(self, node: ast.AST) -> _Eval:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda env: all(p(env) for p in parts)
            return lambda env: any(_safe(p, env) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.condition(node.operand)
            return lambda env: not inner(env)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            value = node.value
            return lambda env: value
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            value = node.id == "true"
            return lambda env: value
        if isinstance(node, (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp)):
            raise self.fail("must be a comparison such as 'a < b' (a value alone is not a condition)")
        raise self.fail(f"{_node_name(node)} is not allowed in a constraint")

    def compare(self, node: ast.Compare) -> _Eval:
        ops: list[Callable[[Any, Any], bool]] = []
        for op in node.ops:
            fn = _CMP.get(type(op))
            if fn is None:
                raise self.fail(f"{_node_name(op)} is not allowed in a constraint")
            ops.append(fn)
        terms = [self.term(node.left), *(self.term(c) for c in node.comparators)]

        def run(env: Env) -> bool:
            left = terms[0](env)
            for fn, term in zip(ops, terms[1:], strict=True):
                right = term(env)
                try:
                    ok = fn(left, right)
                except TypeError:
                    raise _Undefined from None
                if not ok:
                    return False
                left = right
            return True

        return run

    def term(self, node: ast.AST) -> _Eval:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise self.fail(f"the constant {value!r} is not allowed (numbers and strings only)")
            return lambda env: value
        if isinstance(node, ast.Name):
            name = node.id
            if name not in self.known:
                known = ", ".join(sorted(self.known)) or "none"
                raise self.fail(f"unknown {self.what} '{name}' (known: {known})")
            self.names.add(name)

            def look(env: Env) -> Any:
                value = env.get(name)
                if value is None or (isinstance(value, float) and value != value):
                    raise _Undefined
                return value

            return look
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.term(node.operand)
            sign = -1 if isinstance(node.op, ast.USub) else 1
            return lambda env: _arith(operator.mul, sign, inner(env))
        if isinstance(node, ast.BinOp):
            fn = _BIN.get(type(node.op))
            if fn is None:
                raise self.fail(f"{_node_name(node.op)} is not allowed in a constraint")
            left, right = self.term(node.left), self.term(node.right)
            return lambda env: _arith(fn, left(env), right(env))
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            raise self.fail("a condition cannot be used as a number")
        raise self.fail(f"{_node_name(node)} is not allowed in a constraint")


def _arith(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
        raise _Undefined
    try:
        return fn(a, b)
    except (ZeroDivisionError, OverflowError, TypeError):
        raise _Undefined from None


def _safe(fn: _Eval, env: Env) -> bool:
    try:
        return bool(fn(env))
    except _Undefined:
        return False


def parse_condition(text: Any, known: Iterable[str], *, field: str, what: str = "name") -> Condition:
    """Parse one constraint; ``known`` are the names it may use, ``what`` names them in errors
    ("parameter", "metric")."""
    if not isinstance(text, str):
        raise SweepInputError(field, "must be a string")
    if not text.strip():
        raise SweepInputError(field, "is empty")
    if len(text) > MAX_EXPR_CHARS:
        raise SweepInputError(field, f"is longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SweepInputError(field, f"is not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise SweepInputError(field, "is not a valid expression (too deeply nested)") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise SweepInputError(field, f"is too complex (more than {MAX_NODES} nodes)")
    compiler = _Compiler(field, frozenset(known), what)
    fn = compiler.condition(tree.body)
    return Condition(text.strip(), frozenset(compiler.names), fn)


def parse_conditions(texts: Any, known: Iterable[str], *, field: str, what: str) -> tuple[Condition, ...]:
    """A list of constraints (all must hold); errors name ``field[i]``."""
    if texts is None:
        return ()
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise SweepInputError(field, "must be a list of expressions")
    if len(texts) > MAX_CONSTRAINTS:
        raise SweepInputError(field, f"has more than {MAX_CONSTRAINTS} expressions")
    names = frozenset(known)
    return tuple(parse_condition(t, names, field=f"{field}[{k}]", what=what) for k, t in enumerate(texts))


def all_hold(conditions: Sequence[Condition], values: Env) -> bool:
    return all(c.holds(values) for c in conditions)
