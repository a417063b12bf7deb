"""Evaluation of expression nodes: literals, names, arithmetic, indexing, builtins.

Integers stay within +-2**53 and lists within a fixed length, so no expression can make the
compiler run away; every failure is an `ArchError` at the sub-expression that caused it.
Handlers reach the elaborator running them only through `Evaluator`.
"""
from __future__ import annotations

import difflib
import math
import operator
import re
from typing import Any, Callable, Protocol

import lark

from archc.dsl.values import BlockDef, Frame, Scope, Tensor, brief, show, type_name
from archc.errors import ArchError, Span
from archc.ir.ops.base import FLOAT32_MAX, FLOAT32_MIN_NORMAL

MAX_INT = 2 ** 53
MAX_LIST = 100_000
# Numbers written in a file or on the command line are 0 or within float32's normal range:
# Caffe stores its fields as float32, which flushes smaller magnitudes to 0 or a denormal.


class EvalError(Exception):
    """Raised by helpers without a node at hand; the caller attaches the position."""


class Evaluator(Protocol):
    """What evaluating an expression needs from the elaborator running it."""

    def eval(self, tree: Any, scope: Scope, frame: Frame | None) -> Any:
        """The value of an expression node, charged to the elaboration's work budget."""

    def string(self, token: lark.Token, scope: Scope, frame: Frame | None) -> str:
        """A string literal's text, its `{expressions}` evaluated."""

    def error(self, message: str, node: Any) -> ArchError:
        """An error at a node of the file being evaluated."""

    def span(self, node: Any) -> Span:
        """Where a node of the file being evaluated stands."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked(value: Any) -> Any:
    """Keep numbers and lists within the language's bounds."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise EvalError(f"integer {'-' if value < 0 else ''}2**{abs(value).bit_length() - 1}+ is "
                        f"beyond the limit of 2**53")
    if isinstance(value, float) and not math.isfinite(value):
        raise EvalError("the result is not a finite number")
    if isinstance(value, (list, str)) and len(value) > MAX_LIST:
        raise EvalError(f"a list or string longer than {MAX_LIST} elements")
    return value


def written_int(text: str) -> int:
    """An integer as a file (INT) or the command line writes it: ASCII digits, an optional sign.

    Raises ValueError for other text, EvalError beyond the 2**53 limit.
    """
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):  # isdigit() alone takes '²' and '٣'
        raise ValueError(f"not an integer: {text!r}")
    # Count digits first: int() refuses text of over 4300 digits.
    if len(digits) > _MAX_INT_DIGITS and len(digits.lstrip("0")) > _MAX_INT_DIGITS:
        raise EvalError("integer beyond the limit of 2**53")
    value = int(text)
    if abs(value) > MAX_INT:
        raise EvalError("integer beyond the limit of 2**53")
    return value


_MAX_INT_DIGITS = len(str(MAX_INT))


def written_float(text: str) -> float:
    """A number as a file (INT or FLOAT) or the command line writes it, as a float.

    Raises ValueError for other text, EvalError outside float32's range (see FLOAT32_MAX).
    """
    if not _NUMBER_TEXT.fullmatch(text):
        raise ValueError(f"not a number: {text!r}")
    value = float(text)
    if abs(value) > FLOAT32_MAX:
        raise EvalError("number beyond float32's range (3.4e38), the largest Caffe's fields "
                        "hold: use a smaller one")
    if value != 0 and abs(value) < FLOAT32_MIN_NORMAL:
        raise EvalError("number below float32's normal range (1.2e-38): Caffe's fields would "
                        "hold 0 or a denormal instead; write 0 or a larger number")
    return value


_NUMBER_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def value_size(value: Any, limit: int = MAX_LIST) -> int:
    """How many elements and characters a value holds, nested lists and tables included.

    Elaboration charges this for every value an expression yields, so work on shared nested
    lists (`[b, b, b]` with `b = [a, a, a]`) is paid for; counting stops past `limit`.
    """
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, dict)):
        return 0
    count, pending = 0, [value]
    while pending and count <= limit:
        container = pending.pop()
        items = [*container, *container.values()] if isinstance(container, dict) else container
        count += len(items)
        for item in items:
            if isinstance(item, (list, dict)):
                pending.append(item)
            elif isinstance(item, str):
                count += len(item)
    return count


def _arith(symbol: str, left: Any, right: Any) -> Any:
    if symbol == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if symbol == "+" and isinstance(left, list) and isinstance(right, list):
        return left + right
    if not (_number(left) and _number(right)):
        raise EvalError(f"'{symbol}' needs numbers, got {type_name(left)} and {type_name(right)}")
    if symbol in ("/", "//", "%") and right == 0:
        raise EvalError(f"division by zero in '{symbol}'")
    if symbol == "**":
        if isinstance(right, int) and right < 0 and isinstance(left, int):
            left = float(left)  # 2 ** -1 is 0.5, as in Python
        if abs(left) > 1 and _number(right) and right * math.log2(abs(left)) > 53:
            raise EvalError("the power is beyond the limit of 2**53")
        if left < 0 and not float(right).is_integer():
            raise EvalError("a negative number to a fractional power is not a real number")
    try:
        return _ARITH[symbol](left, right)
    except ZeroDivisionError:  # `0 ** -1`
        raise EvalError("zero to a negative power is a division by zero") from None
    except OverflowError:  # float `**` raises instead of returning inf: `0.5 ** -2000`
        raise EvalError("the result is not a finite number") from None


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def equal(left: Any, right: Any) -> bool:
    """Numbers compare by value; other values only equal values of the same type (true != 1),
    inside lists and tables too."""
    if _number(left) and _number(right):
        return left == right
    if type_name(left) != type_name(right) or left != right:  # Python's == is the looser one
        return False
    if isinstance(left, list):
        return all(equal(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return _typed_keys(left) == _typed_keys(right) and all(
            equal(value, right[key]) for key, value in left.items())
    return True


def _typed_keys(table: dict) -> set[tuple[bool, Any]]:
    return {(isinstance(key, bool), key) for key in table}


def _compare(symbol: str, left: Any, right: Any) -> bool:
    if symbol == "==":
        return equal(left, right)
    if symbol == "!=":
        return not equal(left, right)
    comparable = (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise EvalError(f"'{symbol}' compares two numbers or two strings, got {type_name(left)} "
                        f"and {type_name(right)}")
    return _COMPARE[symbol](left, right)


def _integer_range(start: Any, stop: Any, inclusive: bool = False, step: Any = 1) -> range:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)):
        raise EvalError("a range needs integer bounds")
    if step == 0:
        raise EvalError("a range step cannot be 0")
    stop = stop + (1 if step > 0 else -1) if inclusive else stop
    if len(range(start, stop, step)) > MAX_LIST:
        raise EvalError(f"a range of more than {MAX_LIST} elements")
    return range(start, stop, step)


def _range(start: Any, stop: Any, inclusive: bool = False, step: Any = 1) -> list[int]:
    return list(_integer_range(start, stop, inclusive, step))


def _builtin_len(value: Any) -> int:
    if not isinstance(value, (list, dict, str)):
        raise EvalError(f"len() takes a list, table or string, got {type_name(value)}")
    return len(value)


def _numbers(name: str, values: Any) -> list:
    if len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    if not values or not all(_number(v) for v in values):
        raise EvalError(f"{name}() takes numbers or a non-empty list of numbers")
    return list(values)


def _builtin_abs(value: Any) -> Any:
    if not _number(value):
        raise EvalError(f"abs() takes a number, got {type_name(value)}")
    return abs(value)


def _builtin_letter(index: Any) -> str:
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 26):
        raise EvalError("letter() takes an integer from 0 (a) to 25 (z)")
    return "abcdefghijklmnopqrstuvwxyz"[index]


def _builtin_int(value: Any) -> int:
    if _number(value):
        return int(value)
    if isinstance(value, str):
        try:
            return written_int(value.strip())
        except ValueError:
            pass
    raise EvalError(f"int() cannot convert {type_name(value)} {brief(value)}")


def _builtin_float(value: Any) -> float:
    if _number(value):
        return float(value)
    raise EvalError(f"float() takes a number, got {type_name(value)}")


#: name -> (function, minimum args, maximum args)
BUILTINS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "len": (_builtin_len, 1, 1),
    "sum": (lambda *v: sum(_numbers("sum", v)) if v != ([],) else 0, 1, 1),
    "min": (lambda *v: min(_numbers("min", v)), 1, 16),
    "max": (lambda *v: max(_numbers("max", v)), 1, 16),
    "abs": (_builtin_abs, 1, 1),
    "range": (lambda *v: _range(0, v[0]) if len(v) == 1 else _range(v[0], v[1], step=v[2] if len(v) > 2 else 1), 1, 3),
    "str": (show, 1, 1),
    "int": (_builtin_int, 1, 1),
    "float": (_builtin_float, 1, 1),
    "letter": (_builtin_letter, 1, 1),
}


def condition(e: Evaluator, tree: Any, scope: Scope, frame: Frame | None) -> bool:
    """The value of an expression that must be true or false (`if`, `?:`, `and`, `or`, `not`)."""
    value = e.eval(tree, scope, frame)
    if not isinstance(value, bool):
        raise e.error(f"a condition must be true or false, got {type_name(value)} "
                      f"{brief(value)}: compare it, e.g. `x != 0`", tree)
    return value


# ----- node handlers: (evaluator, tree, scope, frame) -> value -----------------------------------

def _literal_number(written: Callable[[str], Any]):
    def handler(e: Evaluator, tree, scope, frame) -> Any:
        try:
            return written(str(tree.children[0]))
        except EvalError as error:  # `99999999999999999999`, `1e999`
            raise e.error(str(error), tree) from None
    return handler


def _name(e: Evaluator, tree, scope: Scope, frame) -> Any:
    name = str(tree.children[0])
    try:
        return scope.lookup(name)
    except KeyError:
        pass
    if name in BUILTINS:
        raise e.error(f"'{name}' is a function: call it, e.g. {name}(x)", tree)
    close = difflib.get_close_matches(name, sorted(scope.names()), n=1)
    hint = f": did you mean '{close[0]}'?" if close else ""
    raise e.error(f"unknown name '{name}'{hint}", tree)


def _tensor_ref(which: str):
    def handler(e: Evaluator, tree, scope, frame: Frame | None) -> Tensor:
        value = getattr(frame, which, None) if frame is not None else None
        if value is None:
            word = "input" if which == "input" else "current"
            raise e.error(f"'{word}' is only defined inside a block or net body, after an `input`",
                          tree)
        return value
    return handler


def _list(e: Evaluator, tree, scope, frame) -> list:
    return checked([e.eval(child, scope, frame) for child in tree.children if child is not None])


def _dict(e: Evaluator, tree, scope, frame) -> dict:
    table: dict = {}
    for entry in tree.children:
        if entry is None:
            continue
        key = e.eval(entry.children[0], scope, frame)
        if not isinstance(key, (int, float, str, bool)):
            raise e.error(f"a table key must be a number, string or bool, got {type_name(key)}",
                          entry.children[0])
        if key in table:
            other = next(k for k in table if k == key)
            if isinstance(other, bool) == isinstance(key, bool):
                raise e.error(f"table key {brief(key)} appears twice", entry.children[0])
            raise e.error(f"a table cannot have both {show(other)} and {show(key)} as keys: "
                          f"use one kind of key", entry.children[0])
        table[key] = e.eval(entry.children[1], scope, frame)
    return table


def _ternary(e: Evaluator, tree, scope, frame) -> Any:
    test, then_tree, else_tree = tree.children
    return e.eval(then_tree if condition(e, test, scope, frame) else else_tree, scope, frame)


def _logic(is_or: bool):
    def handler(e: Evaluator, tree, scope, frame) -> bool:
        for child in tree.children:
            if condition(e, child, scope, frame) == is_or:
                return is_or
        return not is_or
    return handler


def _not(e: Evaluator, tree, scope, frame) -> bool:
    return not condition(e, tree.children[0], scope, frame)


def _binary_chain(apply: Callable[[str, Any, Any], Any]):
    """`a + b - c` arrives as [a, '+', b, '-', c]: fold left to right."""
    def handler(e: Evaluator, tree, scope, frame) -> Any:
        children = tree.children
        value = e.eval(children[0], scope, frame)
        for index in range(1, len(children), 2):
            symbol = str(children[index])
            right = e.eval(children[index + 1], scope, frame)
            try:
                value = checked(apply(symbol, value, right))
            except EvalError as error:
                raise e.error(str(error), tree) from None
        return value
    return handler


def _range_node(e: Evaluator, tree, scope, frame) -> list[int]:
    return list(range_of(e, tree, scope, frame))


def range_of(e: Evaluator, tree, scope, frame) -> range:
    """A `range_expr` node's integers as a Python range, never materialised: what a parameter's
    `in 1..=100000` needs."""
    start, symbol, stop = tree.children
    try:
        return _integer_range(e.eval(start, scope, frame), e.eval(stop, scope, frame),
                              inclusive=str(symbol) == "..=")
    except EvalError as error:
        raise e.error(str(error), tree) from None


def _unary(e: Evaluator, tree, scope, frame) -> Any:
    sign, operand = tree.children
    value = e.eval(operand, scope, frame)
    if not _number(value):
        raise e.error(f"unary '{sign}' needs a number, got {type_name(value)}", tree)
    return -value if str(sign) == "-" else value


def _index(e: Evaluator, tree, scope, frame) -> Any:
    container_tree, key_tree = tree.children
    container = e.eval(container_tree, scope, frame)
    key = e.eval(key_tree, scope, frame)
    if isinstance(container, dict):
        for candidate, value in container.items():
            if equal(candidate, key):
                return value
        keys = brief(", ".join(show(k) for k in container))
        raise e.error(f"{brief(key)} is not in the table (its keys: {keys})", key_tree)
    if isinstance(container, (list, str)):
        if not (isinstance(key, int) and not isinstance(key, bool)):
            raise e.error(f"a list index must be an integer, got {type_name(key)}", key_tree)
        if not -len(container) <= key < len(container):
            raise e.error(f"index {key} is out of range for a {type_name(container)} of length "
                          f"{len(container)}", key_tree)
        return container[key]
    raise e.error(f"cannot index a {type_name(container)}", container_tree)


def _slice(e: Evaluator, tree, scope, frame) -> Any:
    container_tree, start_tree, stop_tree = tree.children
    container = e.eval(container_tree, scope, frame)
    if not isinstance(container, (list, str)):
        raise e.error(f"cannot slice a {type_name(container)}", container_tree)
    bounds = []
    for bound_tree in (start_tree, stop_tree):
        bound = e.eval(bound_tree, scope, frame) if bound_tree is not None else None
        if bound is not None and not (isinstance(bound, int) and not isinstance(bound, bool)):
            raise e.error(f"a slice bound must be an integer, got {type_name(bound)}", bound_tree)
        bounds.append(bound)
    return container[bounds[0]:bounds[1]]


def _attribute(e: Evaluator, tree, scope, frame) -> Any:
    target_tree, name_token = tree.children
    target = e.eval(target_tree, scope, frame)
    name = str(name_token)
    if not isinstance(target, Tensor):
        raise e.error(f"a {type_name(target)} has no attribute '{name}' (only tensors do: "
                      f"{', '.join(Tensor.ATTRIBUTES)})", name_token)
    try:
        return target.attribute(name)
    except (KeyError, ValueError):
        if name in Tensor.ATTRIBUTES:  # an axis the tensor lacks
            raise e.error(f"a tensor of shape {brief(list(target.shape))} has no axis '{name}': "
                          f"n, c, h, w name the axes of a 4-D tensor; use .shape", name_token) from None
        raise e.error(f"a tensor of shape {brief(list(target.shape))} has no attribute '{name}' "
                      f"(attributes: {', '.join(Tensor.ATTRIBUTES)})", name_token) from None


def _call(e: Evaluator, tree, scope: Scope, frame) -> Any:
    callee, args_tree = tree.children
    name = str(callee.children[0]) if isinstance(callee, lark.Tree) and callee.data == "name_ref" else None
    if name is None or name not in BUILTINS or name in scope.names():
        if name is not None and isinstance(_lookup(scope, name), BlockDef):
            raise e.error(f"'{name}' is a block: apply it as a statement, not inside an expression",
                          callee)
        raise e.error(f"only built-in functions can be called here ({', '.join(BUILTINS)})", callee)
    function, least, most = BUILTINS[name]
    args = []
    for arg in args_tree.children:
        if arg is None:
            continue
        if isinstance(arg, lark.Tree) and arg.data == "kwarg":
            raise e.error(f"{name}() takes no keyword arguments", arg)
        args.append(e.eval(arg, scope, frame))
    if not least <= len(args) <= most:
        count = str(least) if least == most else f"{least} to {most}"
        raise e.error(f"{name}() takes {count} argument{'s' if most > 1 else ''}, got {len(args)}", tree)
    try:
        return checked(function(*args))
    except EvalError as error:
        raise e.error(str(error), tree) from None


def _lookup(scope: Scope, name: str) -> Any:
    try:
        return scope.lookup(name)
    except KeyError:
        return None


HANDLERS: dict[str, Callable[..., Any]] = {
    "int_lit": _literal_number(written_int),
    "float_lit": _literal_number(written_float),
    "string_lit": lambda e, tree, scope, frame: e.string(tree.children[0], scope, frame),
    "true_lit": lambda e, tree, scope, frame: True,
    "false_lit": lambda e, tree, scope, frame: False,
    "input_ref": _tensor_ref("input"),
    "current_ref": _tensor_ref("cursor"),
    "name_ref": _name,
    "list_lit": _list,
    "dict_lit": _dict,
    "ternary": _ternary,
    "or_expr": _logic(is_or=True),
    "and_expr": _logic(is_or=False),
    "not_op": _not,
    "comparison": _binary_chain(_compare),
    "range_expr": _range_node,
    "sum": _binary_chain(_arith),
    "term": _binary_chain(_arith),
    "power": _binary_chain(_arith),
    "unary": _unary,
    "index": _index,
    "slice": _slice,
    "attribute": _attribute,
    "call": _call,
}
